//! `sipform doctor`: is everything sipform needs there? Server reachable, key accepted, which
//! of the contract's assumed endpoints the server has, clock skew, state backend and its lock.

use std::process::ExitCode;

use sipform::ops::doctor::{doctor, Finding};

use super::{Global, ServerArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let settings = super::settings(&global.project, &args.server.overrides())?;
    // The kinds of server object, built once for the run.
    let findings = doctor(&settings, &sipform::resources::Kinds::builtin()).await?;
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
