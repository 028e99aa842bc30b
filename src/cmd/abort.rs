//! `sipform rollout abort`: the restaurants of the started waves back on the stable revision,
//! planned and shown like any change, then the rollout recorded aborted.

use std::process::ExitCode;

use sipform::ops::apply::ApplyRun;
use sipform::ops::plan::PlanOptions;
use sipform::ops::rollout::abort;
use sipform::output;
use sipform::plan::Op;

use super::progress::TerminalProgress;
use super::Global;

#[derive(clap::Args)]
pub struct Args {
    /// Apply the plan that puts them back without asking (required when stdin is not a
    /// terminal).
    #[arg(long)]
    pub auto_approve: bool,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let ws = super::workspace(global, &Default::default()).await?;
    let target = abort::abort_target(&ws).await?;
    let scratch = abort::scratch()?;
    if !target.restaurants.is_empty() {
        let settings = abort::stable_settings(ws.settings(), &target.stable, scratch.path())?;
        let mut stable = abort::stable_workspace(settings, &target.stable).await?;
        let run = ApplyRun::start(&mut stable).await?;
        let opts = PlanOptions {
            targets: target.restaurants.clone(),
            allow_rollback: true,
            ..PlanOptions::default()
        };
        let plan = run.plan(&opts).await?;
        print!("{}", output::plan(&plan, super::human()));
        if plan.has_changes() {
            if !args.auto_approve && !super::apply::confirm()? {
                println!("Abort cancelled: the rollout stays as it is.");
                return Ok(ExitCode::FAILURE);
            }
            let progress =
                TerminalProgress::new(plan.actions().filter(|a| a.op() != Op::NoOp).count() as u64);
            let report = run.apply(&plan, &progress).await;
            progress.finish();
            print!("{}", output::report(&report));
            if report.failed() {
                eprintln!("Some restaurants did not go back: the rollout stays halted; run `sipform rollout abort` again.");
                return Ok(ExitCode::FAILURE);
            }
        } else {
            run.record_checked(&plan).await?;
        }
    }
    let events = abort::record_aborted(&ws, target.record).await?;
    print!(
        "{}",
        output::rollout_run(events.list(), &sipform::ops::rollout::Verdict::NoRollout)
    );
    Ok(ExitCode::SUCCESS)
}
