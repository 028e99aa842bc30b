//! `sipform call TOOL --restaurant ID --param k=v …`: the exact request sip-agent-server would
//! make for one call of a tool, built offline; `--send` sends it and shows what the server
//! would derive from the answer.

use std::process::ExitCode;

use sipform::config::Settings;
use sipform::contract::Request;
use sipform::model::secret::redact_url;
use sipform::ops::call::{call, CallError, CallOptions, CallOutcome};
use sipform::ops::OpsError;

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    /// The tool's name (as in tools/).
    pub tool: String,
    /// The restaurant whose agent makes the call (its config and apiBaseUrl are used).
    #[arg(long, value_name = "ID")]
    pub restaurant: String,
    /// An argument of the voice model, KEY=VALUE (repeatable); JSON for non-string parameters.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// A key of the call's context store, KEY=VALUE (repeatable); JSON when it parses as JSON.
    #[arg(long = "ctx", value_name = "KEY=VALUE")]
    pub ctx: Vec<String>,
    /// Send the request and show the answer and what the server derives from it.
    #[arg(long)]
    pub send: bool,
    /// The platform's base URL instead of the agent's apiBaseUrl.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Header names whose value is never printed.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "x-api-key",
    "cookie",
    "proxy-authorization",
];

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let Some(settings): Option<Settings> = super::validate::settings(&global.project)? else {
        return Ok(ExitCode::FAILURE);
    };
    let opts = CallOptions {
        tool: args.tool,
        restaurant: args.restaurant,
        params: args.params,
        ctx: args.ctx,
        send: args.send,
        base_url: args.base_url,
    };
    let mut outcome = match call(&settings, &opts).await {
        Ok(o) => o,
        Err(CallError::Ops(e)) => match *e {
            OpsError::Invalid(d) => {
                super::validate::report_in(&global.project, &d);
                return Ok(ExitCode::FAILURE);
            }
            other => return Err(other.into()),
        },
        Err(e) => return Err(e.into()),
    };
    redact(&mut outcome.request);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print!("{}", human(&outcome));
    }
    Ok(ExitCode::SUCCESS)
}

/// Credentials in the URL and secret headers replaced before anything is printed.
fn redact(req: &mut Request) {
    req.url = redact_url(&req.url);
    for (k, v) in &mut req.headers {
        if SECRET_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
            *v = "<redacted>".into();
        }
    }
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn human(o: &CallOutcome) -> String {
    let mut out = format!("{} {}\n", o.request.method, o.request.url);
    for (k, v) in &o.request.headers {
        out.push_str(&format!("{k}: {v}\n"));
    }
    if let Some(body) = &o.request.body {
        out.push('\n');
        out.push_str(&pretty(body));
        out.push('\n');
    }
    if let Some(a) = &o.answer {
        out.push_str(&format!("\n=> {}\n{}\n", a.status, pretty(&a.body)));
    }
    if let Some(d) = &o.derived {
        if !d.context_updates.is_empty() {
            out.push_str("\ncontextUpdates:\n");
            for (k, v) in &d.context_updates {
                out.push_str(&format!("  ctx.{k} = {v}\n"));
            }
        }
        if let Some(c) = &d.extra_cost {
            out.push_str(&format!("\nextraCostResponseField = {c}\n"));
        }
        out.push_str(&format!("\nthe model sees:\n{}\n", pretty(&d.model_sees)));
    }
    out
}
