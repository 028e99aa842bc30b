//! `sipform apply [PLAN]`: carry out a saved plan, or plan and apply.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use sipform::ops::apply::ApplyRun;
use sipform::output;
use sipform::plan::{Op, Plan};

use super::progress::TerminalProgress;
use super::{Global, RunArgs};

#[derive(clap::Args)]
pub struct Args {
    /// A plan saved with `sipform plan --out FILE`: applied exactly, or refused if stale.
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Apply without asking (required when stdin is not a terminal).
    #[arg(long)]
    pub auto_approve: bool,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let ws = super::workspace(global, &args.run).await?;
    let code = apply(&ws, args).await?;
    // Restaurants skipped for invalid input: everything else is applied, but the run fails.
    if !ws.skipped().is_empty() {
        eprint!("{}", output::skipped(ws.skipped()));
        return Ok(ExitCode::FAILURE);
    }
    Ok(code)
}

async fn apply(ws: &sipform::ops::Workspace, args: Args) -> anyhow::Result<ExitCode> {
    let mut run = ApplyRun::start(ws).await?;
    let healed = run.healed();
    if healed > 0 {
        eprintln!(
            "Wrote back the ids of {healed} restaurant rows that a previous run left behind."
        );
    }

    let plan: Plan = match &args.plan {
        Some(path) => run.saved_plan(path).await?,
        None => {
            let plan = run.plan(&args.run.plan_options()).await?;
            print!("{}", output::plan(&plan, super::human()));
            if !plan.has_changes() {
                return Ok(ExitCode::SUCCESS);
            }
            if !args.auto_approve && !confirm()? {
                println!("Apply cancelled.");
                return Ok(ExitCode::FAILURE);
            }
            plan
        }
    };
    if !plan.has_changes() {
        println!("No changes to apply.");
        return Ok(ExitCode::SUCCESS);
    }

    let total = plan.actions().filter(|a| a.op() != Op::NoOp).count() as u64;
    let progress = TerminalProgress::new(total);
    let report = run.apply(&plan, &progress).await;
    progress.finish();
    print!("{}", output::report(&report));
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Terraform's question; only `yes` goes ahead. Refuses to guess without a terminal.
fn confirm() -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("stdin is not a terminal: pass --auto-approve to apply without confirmation, or apply a saved plan");
    }
    print!("\nDo you want to perform these actions? Only 'yes' will be accepted: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}
