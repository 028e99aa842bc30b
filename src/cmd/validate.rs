//! `sipform validate [DIR]`: every file and every rendered agent, without contacting
//! sip-agent-server (a database inventory is read from the platform's table).

use std::path::PathBuf;
use std::process::ExitCode;

use sipform::config::{ConfigError, Overrides, Settings};
use sipform::front::diagnostics::Diagnostics;
use sipform::ops::{self, OpsError};

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    /// The project folder (default: -C, else the current folder).
    pub dir: Option<PathBuf>,
}

/// Prints each diagnostic on its own line to stderr.
pub fn report(diags: &Diagnostics) {
    for d in diags.iter() {
        eprintln!("{d}");
    }
    eprintln!(
        "error: {} problem{} found",
        diags.len(),
        if diags.len() == 1 { "" } else { "s" }
    );
}

/// The settings of the project at `root`; `None` once its problems are printed.
pub fn settings(root: &std::path::Path) -> anyhow::Result<Option<Settings>> {
    super::require_project(root)?;
    match Settings::load(root, &Overrides::default()) {
        Ok(s) => Ok(Some(s)),
        Err(ConfigError::Invalid(d)) => {
            report(&d);
            Ok(None)
        }
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let root = args.dir.unwrap_or_else(|| global.project.clone());
    let Some(settings) = settings(&root)? else {
        return Ok(ExitCode::FAILURE);
    };
    match ops::validate::validate(&settings).await {
        Ok(r) => {
            for w in r.warnings.iter() {
                eprintln!("warning: {w}");
            }
            if global.verbose > 0 {
                for one in &r.validated.desired.restaurants {
                    eprintln!(
                        "rendered {} ({}): {} tools",
                        one.id,
                        one.agent.name,
                        one.tools.len()
                    );
                }
            }
            println!(
                "ok: {} tools, {} restaurants, {} agents rendered",
                r.tools,
                r.validated.desired.restaurants.len(),
                r.agents
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(OpsError::Invalid(d)) => {
            report(&d);
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}
