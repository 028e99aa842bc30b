//! `doctor --tools`: a safe live probe of each tool's target on a running platform. An
//! `OPTIONS` request changes nothing; Next.js answers it with `Allow:` listing the methods the
//! route exports, and a path without a route with 404.

use std::time::Duration;

use reqwest::header::ALLOW;

use crate::front::load::LoadedTool;
use crate::model::secret::redact_url;

use super::request::split_url;

/// What the probe learnt about one tool's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub tool: String,
    pub method: String,
    /// The URL probed (redacted).
    pub url: String,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The route answers the tool's method.
    Ok,
    /// 404: no route at this path.
    MissingRoute,
    /// The route exists, without the tool's method; the methods it allows.
    MissingMethod(Vec<String>),
    /// The answer says neither (no `Allow`, another status) or there was none.
    Unknown(String),
}

impl Probe {
    pub fn ok(&self) -> bool {
        self.verdict == Verdict::Ok
    }
}

/// Probes every tool with an `http` on the platform at `base_url`, in tool order.
pub(crate) async fn probe_tools(
    tools: &[LoadedTool],
    base_url: &str,
    timeout: Duration,
) -> Vec<Probe> {
    let client = reqwest::Client::builder().timeout(timeout).build();
    let base = base_url.trim_end_matches('/');
    let mut out = Vec::new();
    for t in tools {
        let Some(http) = &t.spec.http else { continue };
        let method = format!("{:?}", http.method).to_ascii_uppercase();
        let parts = match split_url(&http.url) {
            Ok(p) if p.on_platform => p,
            Ok(_) => continue,
            Err(e) => {
                out.push(Probe {
                    tool: t.spec.name.clone(),
                    method,
                    url: http.url.clone(),
                    verdict: Verdict::Unknown(e.to_string()),
                });
                continue;
            }
        };
        let url = format!("{base}{}", parts.path);
        let verdict = match &client {
            Err(e) => Verdict::Unknown(format!("no HTTP client: {e}")),
            Ok(c) => match c.request(reqwest::Method::OPTIONS, &url).send().await {
                Err(e) => Verdict::Unknown(format!("no answer: {e}")),
                Ok(a) if a.status().as_u16() == 404 => Verdict::MissingRoute,
                Ok(a) => match a.headers().get(ALLOW).and_then(|v| v.to_str().ok()) {
                    Some(allow) => {
                        let allowed: Vec<String> = allow
                            .split(',')
                            .map(|m| m.trim().to_ascii_uppercase())
                            .filter(|m| !m.is_empty())
                            .collect();
                        if allowed.contains(&method) {
                            Verdict::Ok
                        } else {
                            Verdict::MissingMethod(allowed)
                        }
                    }
                    None => Verdict::Unknown(format!(
                        "OPTIONS answered {} without an Allow header",
                        a.status()
                    )),
                },
            },
        };
        out.push(Probe {
            tool: t.spec.name.clone(),
            method,
            url: redact_url(&url),
            verdict,
        });
    }
    out
}
