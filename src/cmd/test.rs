//! `sipform test`: the tool tests of `tool-tests/` (one line per case, `N passed, N failed`,
//! exit 1 on a failure; `::error` annotations in GitHub Actions).

use std::path::PathBuf;
use std::process::ExitCode;

use sipform::ops::call::CallError;
use sipform::ops::tooltest::{run as run_tests, TestError, TestOptions};
use sipform::ops::OpsError;

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    /// The folder of cases, relative to the project (default: tool-tests).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Also send the cases that have a `live` part to this platform base URL and check their
    /// status and response fields.
    #[arg(long, value_name = "URL")]
    pub platform: Option<String>,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let Some(settings) = super::validate::settings(&global.project)? else {
        return Ok(ExitCode::FAILURE);
    };
    let opts = TestOptions {
        dir: args.dir,
        platform: args.platform,
    };
    let invalid = |d| {
        super::validate::report_in(&global.project, &d);
        Ok(ExitCode::FAILURE)
    };
    let report = match run_tests(&settings, &opts).await {
        Ok(r) => r,
        Err(TestError::Invalid(d)) => return invalid(d),
        Err(TestError::Call(CallError::Ops(e))) => match *e {
            OpsError::Invalid(d) => return invalid(d),
            other => return Err(other.into()),
        },
        Err(e) => return Err(e.into()),
    };
    for c in &report.cases {
        let place = format!("{}:{}", shown(&c.file, &settings.root), c.line);
        let live = if c.live { " (live)" } else { "" };
        if c.passed() {
            println!("ok   {place} {} / {}{live}", c.tool, c.name);
        } else {
            println!(
                "FAIL {place} {} / {}{live}: {}",
                c.tool,
                c.name,
                c.failures.join("; ")
            );
        }
    }
    println!("{} passed, {} failed", report.passed(), report.failed());
    if report.failed() == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
        let cwd = std::env::current_dir().unwrap_or_default();
        let base = std::env::var_os("GITHUB_WORKSPACE")
            .map(PathBuf::from)
            .unwrap_or_else(|| cwd.clone());
        print!(
            "{}",
            sipform::output::github_annotations(&report.diagnostics(), &cwd, &base)
        );
    }
    Ok(ExitCode::FAILURE)
}

/// A case file's path relative to the project, as written in the repository.
fn shown(file: &std::path::Path, root: &std::path::Path) -> String {
    file.strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string()
}
