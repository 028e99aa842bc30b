//! `sipform doctor`: is everything sipform needs there? Server reachable, key accepted, which
//! of the contract's assumed endpoints the server has, clock skew, state backend and its lock.

use std::process::ExitCode;

use sipform::ops::doctor::{doctor, Finding};

use super::{Global, ServerArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Instead: probe each tool's target on the running platform (OPTIONS), reporting
    /// missing routes and methods.
    #[arg(long)]
    pub tools: bool,
    /// With --tools: the platform's base URL (default: NEXT_PUBLIC_APP_URL, else app.url).
    #[arg(long, value_name = "URL", requires = "tools")]
    pub platform_url: Option<String>,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let settings = super::settings(&global.project, &args.server.overrides())?;
    let findings = if args.tools {
        sipform::ops::doctor::doctor_tools(&settings, args.platform_url.as_deref()).await?
    } else {
        // The kinds of server object, built once for the run.
        doctor(&settings, &sipform::resources::Kinds::builtin()).await?
    };
    for f in &findings {
        match f {
            Finding::Warning(w) => println!("warn {w}"),
            Finding::Check { ok, what, detail } => {
                println!("{} {what}: {detail}", if *ok { "ok  " } else { "FAIL" })
            }
            Finding::Skipped { what, why } => println!("skip {what}: {why}"),
        }
    }
    Ok(if findings.iter().any(Finding::failed) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
