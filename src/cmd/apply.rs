//! `sipform apply [PLAN]`: carry out a saved plan, or plan and apply.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use sipform::config::Overrides;
use sipform::ops::apply::ApplyRun;
use sipform::output;
use sipform::plan::{Op, Plan};

use super::progress::TerminalProgress;
use super::signals::Interrupts;
use super::{Global, LockArgs, PlanArgs};

#[derive(clap::Args)]
pub struct Args {
    /// A plan saved with `sipform plan --out FILE`: applied exactly, or refused if stale.
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub run: PlanArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Apply without asking (required when stdin is not a terminal).
    #[arg(long)]
    pub auto_approve: bool,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    // Until the first write, a signal ends the run at once; from then on, see below.
    let interrupts = Interrupts::listen()?;
    let overrides = Overrides {
        lock_timeout: Some(args.lock.lock_timeout),
        ..args.run.overrides()
    };
    let ws = super::workspace(global, &overrides).await?;
    let code = apply(&ws, args, &interrupts).await?;
    // Restaurants skipped for invalid input: everything else is applied, but the run fails
    // (an interrupted run keeps its signal's code).
    if !ws.skipped().is_empty() {
        eprint!("{}", output::skipped(ws.skipped()));
        if interrupts.received().is_none() {
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(code)
}

async fn apply(
    ws: &sipform::ops::Workspace,
    args: Args,
    interrupts: &Interrupts,
) -> anyhow::Result<ExitCode> {
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

    // The first signal from here on stops new writes; what is in flight finishes and is
    // recorded, then the summary is printed as for any other run.
    let stopper = run.stopper();
    interrupts.arm(move |sig| stopper.stop(&format!("interrupted by {}", sig.name())));

    let total = plan.actions().filter(|a| a.op() != Op::NoOp).count() as u64;
    let progress = TerminalProgress::new(total);
    let report = run.apply(&plan, &progress).await;
    progress.finish();
    print!("{}", output::report(&report));
    if let Some(sig) = interrupts.received() {
        eprintln!(
            "Interrupted by {}: the requests in flight finished and were recorded; run `sipform apply` again to finish.",
            sig.name()
        );
        return Ok(ExitCode::from(sig.exit_code()));
    }
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
