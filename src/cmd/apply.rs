//! `sipform apply [PLAN]`: carry out a saved plan, or plan and apply.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::progress::TerminalProgress;
use sipform::apply;
use sipform::plan::{render, Plan};
use sipform::state::StateWriter;

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
    let client = ws.client()?;
    let _lock = ws.lock("apply", args.run.lock_timeout).await?;
    let existing = ws.backend.load().await?;
    let state_exists = existing.is_some();
    let mut state = existing.unwrap_or_default();
    let healed = ws.reconcile_inventory(&state).await?;
    if healed > 0 {
        eprintln!(
            "Wrote back the ids of {healed} restaurant rows that a previous run left behind."
        );
    }

    let plan: Plan = match &args.plan {
        Some(path) => {
            let saved = sipform::pipeline::read_plan(path)?;
            if !state_exists {
                // A first apply continues the history the plan was made in.
                state.lineage = saved.lineage;
            }
            ws.check_fresh(&client, &saved, &state, state_exists)
                .await?;
            saved
        }
        None => {
            let (plan, _) = ws
                .plan(
                    &client,
                    &state,
                    args.run.allow_destroy,
                    &args.run.target_set(),
                )
                .await?;
            print!("{}", render::human(&plan, super::color_stdout()));
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

    let writer = StateWriter::new(
        ws.backend.clone(),
        state,
        ws.project.state.store_tokens(),
        ws.commit_hook(),
    );
    let total = plan
        .actions()
        .filter(|a| a.op() != sipform::plan::Op::NoOp)
        .count() as u64;
    let progress = TerminalProgress::new(total);
    let report = apply::apply(&plan, &client, &writer, &progress).await;
    progress.finish();
    print!("{}", report.render());
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
