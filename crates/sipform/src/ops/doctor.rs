//! `doctor`: is everything sipform needs there? Server reachable, key accepted, which of the
//! contract's assumed endpoints the server has, clock skew, state backend and its lock.

use std::time::Duration;

use reqwest::Method;

use crate::config::Settings;
use crate::model::secret::redact_url;
use crate::remote::{Client, ClientError};
use crate::resources::Kinds;
use crate::state::{self, LockInfo};

use super::OpsError;

/// A nil UUID: no object has it, so probes never touch real data.
const NIL: &str = "00000000-0000-0000-0000-000000000000";

/// Clock skew beyond this fails the clock check.
const MAX_SKEW: Duration = Duration::from_secs(60);

/// One line of the doctor's report, in the order found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Worth knowing, not a failure (no key, plain http to a remote host).
    Warning(String),
    /// A check that passed or failed.
    Check {
        ok: bool,
        what: String,
        detail: String,
    },
    /// Checks that could not run, and why.
    Skipped { what: String, why: String },
}

impl Finding {
    fn check(ok: bool, what: &str, detail: impl Into<String>) -> Finding {
        Finding::Check {
            ok,
            what: what.to_string(),
            detail: detail.into(),
        }
    }

    pub fn failed(&self) -> bool {
        matches!(self, Finding::Check { ok: false, .. })
    }
}

/// Probes the server and the state backend. Only a client that cannot be built is an error;
/// everything else the doctor finds is a [`Finding`].
/// `kinds` name the routes each kind assumes.
pub async fn doctor(settings: &Settings, kinds: &Kinds) -> Result<Vec<Finding>, OpsError> {
    let mut found: Vec<Finding> = settings
        .warnings()
        .into_iter()
        .map(Finding::Warning)
        .collect();
    let client =
        Client::new(settings).map_err(|source| OpsError::server(&settings.server_url, source))?;
    // `windows.live_call_wait` reads the calls in progress: without the route, every update
    // to an existing agent would be held.
    let live_calls = settings.windows().live_call_wait.is_some();
    let extra: &[(&str, &str)] = if live_calls {
        &[("GET", crate::remote::bridges::ROUTE)]
    } else {
        &[]
    };
    let url = redact_url(&settings.server_url);
    server(kinds, extra, &client, &url, &mut found).await;
    state_backend(settings, &mut found).await;
    change_feed(settings, &mut found).await;
    Ok(found)
}

/// A database inventory's change feed: its log and every trigger installed (a platform
/// migration may have dropped one), each missing one named.
async fn change_feed(settings: &Settings, found: &mut Vec<Finding>) {
    if crate::inventory::folder_of(&settings.inventory, &settings.root).is_some() {
        return;
    }
    let inventory = match super::workspace::open_inventory(settings).await {
        Ok(i) => i,
        Err(e) => {
            found.push(Finding::check(false, "inventory", e.to_string()));
            return;
        }
    };
    let Some(log) = inventory.change_log() else {
        return;
    };
    let place = inventory.describe();
    found.push(match log.catalog().await {
        Ok(c) if c.installed() => Finding::check(
            true,
            "change feed",
            format!("the change log and its triggers are installed on {place}"),
        ),
        Ok(c) => Finding::check(
            false,
            "change feed",
            format!(
                "missing on {place}: {}; the controller sees changes only at its full resync \
                 (run `sipform controller install-trigger`, or the controller with --manage-trigger)",
                c.missing.join(", ")
            ),
        ),
        Err(e) => Finding::check(false, "change feed", e.to_string()),
    });
}

/// The server, the key, the clock skew, and the assumed endpoints `kinds` and `extra` name.
async fn server(
    kinds: &Kinds,
    extra: &[(&'static str, &'static str)],
    client: &Client,
    url: &str,
    found: &mut Vec<Finding>,
) {
    let p = match client.probe(Method::GET, "/api/accounts").await {
        Err(e) => {
            let what = match &e {
                ClientError::Transport { .. } => "unreachable",
                _ => "answers wrongly",
            };
            let hint = e.hint().map(|h| format!(" ({h})")).unwrap_or_default();
            found.push(Finding::check(
                false,
                "server",
                format!("{url} {what}: {e}{hint}"),
            ));
            return;
        }
        Ok(p) => p,
    };
    found.push(Finding::check(true, "server", format!("{url} answers")));
    let auth_ok = p.status == 200;
    found.push(Finding::check(
        auth_ok,
        "authentication",
        match p.status {
            200 => "the API key is accepted".to_string(),
            401 | 403 => {
                "the API key is refused (HTTP 401/403): check SIP_ACCOUNT_API_KEY".to_string()
            }
            s => format!("GET /api/accounts answered HTTP {s}"),
        },
    ));
    if let Some(skew) = p.date.as_deref().and_then(skew_of) {
        found.push(Finding::check(
            skew < MAX_SKEW,
            "clock",
            format!("skew with the server {}s", skew.as_secs()),
        ));
    }
    if !auth_ok {
        found.push(Finding::Skipped {
            what: "assumed endpoints".into(),
            why: "cannot probe them without an accepted key".into(),
        });
        return;
    }
    // Assumed endpoints: a route the server has answers JSON (even 404 for the nil id); a
    // missing one answers 404/405 without the API's JSON.
    let assumed = kinds
        .iter()
        .flat_map(|k| k.assumed_routes())
        .chain(extra.iter());
    for (method, template) in assumed {
        let label = format!("assumed endpoint {method} {template}");
        let Ok(method) = Method::from_bytes(method.as_bytes()) else {
            continue;
        };
        let path = template.replace(":id", NIL);
        found.push(match client.probe(method, &path).await {
            Ok(p) if p.json && p.status != 405 => Finding::check(true, &label, "present"),
            Ok(p) => Finding::check(false, &label, format!("missing (HTTP {})", p.status)),
            Err(e) => Finding::check(false, &label, e.to_string()),
        });
    }
}

async fn state_backend(settings: &Settings, found: &mut Vec<Finding>) {
    let project = super::workspace::state_project(settings);
    let backend = match state::open(&settings.state, &settings.root, Some(&project)) {
        Err(e) => {
            found.push(Finding::check(false, "state", e.to_string()));
            return;
        }
        Ok(b) => b,
    };
    found.push(match backend.load().await {
        Ok(Some(s)) => Finding::check(
            true,
            "state",
            format!(
                "{}: serial {}, {} restaurants",
                backend.describe(),
                s.serial,
                s.restaurants.len()
            ),
        ),
        Ok(None) => Finding::check(true, "state", format!("{}: empty", backend.describe())),
        Err(e) => Finding::check(false, "state", e.to_string()),
    });
    found.push(
        match backend
            .lock(&LockInfo::for_this_process("doctor"), Duration::ZERO)
            .await
        {
            Ok(_guard) => Finding::check(true, "state lock", "free"),
            Err(e) => Finding::check(false, "state lock", e.to_string()),
        },
    );
}

/// |server time − local time|, from an HTTP `Date` header.
fn skew_of(date: &str) -> Option<Duration> {
    let server = chrono::DateTime::parse_from_rfc2822(date).ok()?;
    let delta = chrono::Utc::now().signed_duration_since(server);
    delta.abs().to_std().ok()
}

/// `doctor --tools`: an `OPTIONS` probe of every tool's target on the platform at `base_url`
/// (the app URL by default): a missing route or method is a failed check.
pub async fn doctor_tools(
    settings: &Settings,
    base_url: Option<&str>,
) -> Result<Vec<Finding>, OpsError> {
    use crate::contract::probe::{probe_tools, Verdict};
    let tools = crate::front::load::load_tools(&settings.root.join(&settings.tools_dir))?;
    let base = base_url.unwrap_or(&settings.app_url);
    let probes = probe_tools(&tools, base, settings.timeout).await;
    Ok(probes
        .into_iter()
        .map(|p| {
            let what = format!("tool {}", p.tool);
            let target = format!("{} {}", p.method, p.url);
            match p.verdict {
                Verdict::Ok => Finding::check(true, &what, target),
                Verdict::MissingRoute => {
                    Finding::check(false, &what, format!("{target}: no such route (404)"))
                }
                Verdict::MissingMethod(allowed) => Finding::check(
                    false,
                    &what,
                    format!("{target}: the route allows {} only", allowed.join(", ")),
                ),
                Verdict::Unknown(why) => Finding::Skipped {
                    what,
                    why: format!("{target}: {why}"),
                },
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_read_from_an_http_date() {
        let now = chrono::Utc::now() - chrono::Duration::seconds(120);
        let skew = skew_of(&now.to_rfc2822()).unwrap();
        assert!(skew >= Duration::from_secs(119) && skew <= Duration::from_secs(130));
        assert_eq!(skew_of("yesterday"), None);
    }

    #[test]
    fn only_a_failed_check_fails() {
        assert!(Finding::check(false, "x", "y").failed());
        assert!(!Finding::check(true, "x", "y").failed());
        assert!(!Finding::Warning("w".into()).failed());
    }
}
