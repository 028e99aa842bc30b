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

/// Prints each diagnostic on its own line to stderr; in GitHub Actions (`GITHUB_ACTIONS=true`)
/// also as `::error file=…,line=…::` workflow commands on stdout, so the pull request shows each
/// problem on its line.
pub fn report(diags: &Diagnostics) {
    report_in(std::path::Path::new("."), diags);
}

/// [`report`] for the project at `root` (file paths in diagnostics are relative to it).
pub fn report_in(root: &std::path::Path, diags: &Diagnostics) {
    if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
        let cwd = std::env::current_dir().unwrap_or_default();
        let base = std::env::var_os("GITHUB_WORKSPACE")
            .map(PathBuf::from)
            .unwrap_or_else(|| cwd.clone());
        let root = cwd.join(root);
        print!(
            "{}",
            sipform::output::github_annotations(diags, &root, &base)
        );
    }
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
            report_in(root, &d);
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
            report_in(&root, &d);
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}
