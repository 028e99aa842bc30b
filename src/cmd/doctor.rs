//! `sipform doctor`: is everything sipform needs there? Server reachable, key accepted, which
//! of the contract's assumed endpoints the server has, clock skew, state backend and its lock.

use std::process::ExitCode;
use std::time::Duration;

use reqwest::Method;
use sipform::config::Settings;
use sipform::remote::Client;
use sipform::state::LockInfo;

use super::Global;

#[derive(clap::Args)]
pub struct Args {}

/// A nil UUID: no object has it, so probes never touch real data.
const NIL: &str = "00000000-0000-0000-0000-000000000000";

pub async fn run(global: &Global, _args: Args) -> anyhow::Result<ExitCode> {
    let project = sipform::front::load::load_project_file(&global.project)?;
    let settings = Settings::resolve(&project);
    let mut failed = false;
    let mut line = |ok: bool, what: &str, detail: String| {
        if !ok {
            failed = true;
        }
        println!("{} {what}: {detail}", if ok { "ok  " } else { "FAIL" });
    };
    for w in settings.warnings() {
        println!("warn {w}");
    }

    let client = Client::new(&settings)?;
    match client.probe(Method::GET, "/api/accounts").await {
        Err(e) => line(
            false,
            "server",
            format!("{} unreachable: {e}", settings.server_url),
        ),
        Ok(p) => {
            line(true, "server", format!("{} answers", settings.server_url));
            let auth_ok = p.status == 200;
            line(
                auth_ok,
                "authentication",
                match p.status {
                    200 => "the API key is accepted".to_string(),
                    401 | 403 => "the API key is refused (HTTP 401/403): check SIP_ACCOUNT_API_KEY"
                        .to_string(),
                    s => format!("GET /api/accounts answered HTTP {s}"),
                },
            );
            if let Some(skew) = p.date.as_deref().and_then(skew_of) {
                line(
                    skew.as_secs() < 60,
                    "clock",
                    format!("skew with the server {}s", skew.as_secs()),
                );
            }
            // Assumed endpoints: a route the server has answers JSON (even 404 for the nil id);
            // a missing one answers 404/405 without the API's JSON.
            let assumed = [
                (Method::GET, format!("/api/final-customers?accountId={NIL}")),
                (Method::GET, format!("/api/final-customers/{NIL}")),
                (Method::PUT, format!("/api/final-customers/{NIL}")),
                (Method::DELETE, format!("/api/final-customers/{NIL}")),
                (Method::DELETE, format!("/api/agents/{NIL}")),
                (Method::GET, format!("/api/agents/{NIL}/tools")),
                (Method::PUT, format!("/api/agents/{NIL}/tools/{NIL}")),
                (Method::DELETE, format!("/api/agents/{NIL}/tools/{NIL}")),
                (
                    Method::DELETE,
                    format!("/api/agents/{NIL}/phone-lines/{NIL}"),
                ),
            ];
            if !auth_ok {
                println!("skip assumed endpoints: cannot probe them without an accepted key");
            }
            for (method, path) in assumed.into_iter().filter(|_| auth_ok) {
                let label = format!("assumed endpoint {method} {}", path.replace(NIL, ":id"));
                match client.probe(method, &path).await {
                    Ok(p) if p.json && p.status != 405 => line(true, &label, "present".into()),
                    Ok(p) => line(false, &label, format!("missing (HTTP {})", p.status)),
                    Err(e) => line(false, &label, e.to_string()),
                }
            }
        }
    }

    match sipform::state::open(&project.state, &global.project) {
        Err(e) => line(false, "state", e.to_string()),
        Ok(backend) => {
            match backend.load().await {
                Ok(Some(s)) => line(
                    true,
                    "state",
                    format!(
                        "{}: serial {}, {} restaurants",
                        backend.describe(),
                        s.serial,
                        s.restaurants.len()
                    ),
                ),
                Ok(None) => line(true, "state", format!("{}: empty", backend.describe())),
                Err(e) => line(false, "state", e.to_string()),
            }
            match backend
                .lock(&LockInfo::for_this_process("doctor"), Duration::ZERO)
                .await
            {
                Ok(_guard) => line(true, "state lock", "free".into()),
                Err(e) => line(false, "state lock", e.to_string()),
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// |server time − local time|, from an HTTP `Date` header.
fn skew_of(date: &str) -> Option<Duration> {
    let server = chrono::DateTime::parse_from_rfc2822(date).ok()?;
    let delta = chrono::Utc::now().signed_duration_since(server);
    delta.abs().to_std().ok()
}
