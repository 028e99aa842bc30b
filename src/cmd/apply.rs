//! `sipform apply [PLAN]`: carry out a saved plan, or plan and apply.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use sipform::apply::Report;
use sipform::config::Overrides;
use sipform::ops::apply::ApplyRun;
use sipform::ops::guardrails;
use sipform::ops::rollout;
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
    /// Print one JSON document on stdout: each restaurant's outcome, request counts, timing
    /// (docs/apply-report.md). The plan and the summary go to stderr.
    #[arg(long)]
    pub json: bool,
    /// Apply a plan over its `guardrails:` limits (deletes, deactivations, changed
    /// restaurants) when none of its counts is above N: name the count the plan shows.
    #[arg(long, value_name = "N")]
    pub allow_changes: Option<u64>,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    // Until the first write, a signal ends the run at once; from then on, see below.
    let interrupts = Interrupts::listen()?;
    let overrides = Overrides {
        lock_timeout: Some(args.lock.lock_timeout),
        ..args.run.overrides()
    };
    let json = args.json;
    let result = async {
        let mut ws = super::workspace(global, &overrides).await?;
        let code = apply(&mut ws, args, &interrupts).await?;
        anyhow::Ok((ws, code))
    }
    .await;
    let (ws, code) = match result {
        Ok(done) => done,
        Err(e) => {
            // Even a run that stopped before its first write is one document for CI.
            if json {
                let message = format!("{e:#}");
                print!(
                    "{}",
                    output::apply_json(&output::ApplyRunView {
                        plan: None,
                        report: None,
                        skipped: &[],
                        interrupted_by: None,
                        error: Some(&message),
                        rollout: None,
                    })
                );
            }
            return Err(e);
        }
    };
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
    ws: &mut sipform::ops::Workspace,
    args: Args,
    interrupts: &Interrupts,
) -> anyhow::Result<ExitCode> {
    // The restaurants are read again under the lock: `ws` is the run's from here on.
    let mut run = ApplyRun::start(ws).await?;
    let ws = run.workspace();
    let healed = run.healed();
    if healed > 0 {
        eprintln!(
            "Rewrote the ids and tokens of {healed} restaurant rows that differed from state."
        );
    }

    if args.json && args.plan.is_none() && !args.auto_approve {
        anyhow::bail!("--json needs --auto-approve or a saved plan: stdout carries only the report, so there is no question to answer");
    }
    let plan = match chosen_plan(&mut run, ws, &args).await? {
        Chosen::Apply(plan) => *plan,
        Chosen::Done(code) => return Ok(code),
    };

    // The first signal from here on stops new writes; what is in flight finishes and is
    // recorded, then the summary is printed as for any other run.
    let stopper = run.stopper();
    interrupts.arm(move |sig| stopper.stop(&format!("interrupted by {}", sig.name())));

    let total = plan.actions().filter(|a| a.op() != Op::NoOp).count() as u64;
    let progress = TerminalProgress::new(total);
    if ws.settings().rollout.is_none() {
        let report = run.apply(&plan, &progress).await;
        progress.finish();
        return Ok(outcome(ws, &args, &plan, &report, interrupts, None));
    }
    // A policy: as far as its waves allow; a halted rollout fails the run (docs/rollout.md).
    let waves = rollout::apply_run_in_waves(run, &plan, &progress).await?;
    progress.finish();
    let ended = Some((&waves.verdict, waves.events.list()));
    let code = outcome(ws, &args, &plan, &waves.report, interrupts, ended);
    let told = output::rollout_run(waves.events.list(), &waves.verdict);
    if args.json {
        eprint!("{told}");
    } else {
        print!("{told}");
    }
    notify_rollout(ws, &plan, &waves.events).await;
    Ok(match waves.verdict {
        rollout::Verdict::Halted(_) => ExitCode::FAILURE,
        _ => code,
    })
}

/// A halt or the end of the rollout told to `notify:`'s webhook (a few seconds at most for
/// its retries: the run is over).
async fn notify_rollout(ws: &sipform::ops::Workspace, plan: &Plan, events: &rollout::Events) {
    let to = plan
        .revision
        .as_ref()
        .map_or_else(|| "unknown".to_string(), |r| r.short());
    let events = events.notifications(&to, plan.restaurants.len() as u64);
    if events.is_empty() {
        return;
    }
    let settings = ws.settings();
    let project = settings
        .project
        .as_deref()
        .unwrap_or(&settings.account.name);
    let policy = sipform::notify::RetryPolicy::default();
    match sipform::notify::Notifier::start(&settings.notify, project, policy) {
        Ok((notifier, worker)) => {
            events.into_iter().for_each(|e| notifier.notify(e));
            drop(notifier);
            worker.finish(std::time::Duration::from_secs(10)).await;
        }
        Err(e) => tracing::warn!(target: "sip-provisioning", "{e}"),
    }
}

/// What [`chosen_plan`] settled.
enum Chosen {
    /// A plan with changes, to apply.
    Apply(Box<Plan>),
    /// Nothing to apply (no changes, or the user said no): the run's exit code.
    Done(ExitCode),
}

/// The plan to apply: the saved one, or a fresh one, shown and confirmed unless
/// `--auto-approve`. A plan without changes is reported here and not applied.
async fn chosen_plan(
    run: &mut ApplyRun<'_>,
    ws: &sipform::ops::Workspace,
    args: &Args,
) -> anyhow::Result<Chosen> {
    let plan: Plan = match &args.plan {
        Some(path) => {
            let plan = run.saved_plan(path).await?;
            guardrails::enforce(&plan.guardrails, args.allow_changes)?;
            plan
        }
        None => {
            let plan = run.plan(&args.run.plan_options()).await?;
            // Unattended (a CI log): the plan grouped, with at most a few restaurants listed
            // apart, never megabytes; `plan --out`/`--json` keep every action.
            let unattended = args.auto_approve && !std::io::stdout().is_terminal();
            if args.json {
                eprint!("{}", output::human_brief(&plan, false));
            } else if unattended {
                print!("{}", output::human_brief(&plan, super::color_stdout()));
            } else {
                print!("{}", output::plan(&plan, super::human()));
            }
            if !plan.has_changes() {
                run.record_checked(&plan).await?;
                no_changes_json(ws, args, &plan);
                return Ok(Chosen::Done(ExitCode::SUCCESS));
            }
            // Refused before the question: the plan above says which limit and by how much.
            guardrails::enforce(&plan.guardrails, args.allow_changes)?;
            if !args.auto_approve && !confirm()? {
                println!("Apply cancelled.");
                return Ok(Chosen::Done(ExitCode::FAILURE));
            }
            plan
        }
    };
    if !plan.has_changes() {
        run.record_checked(&plan).await?;
        if args.json {
            no_changes_json(ws, args, &plan);
        } else {
            println!("No changes to apply.");
        }
        return Ok(Chosen::Done(ExitCode::SUCCESS));
    }
    Ok(Chosen::Apply(Box::new(plan)))
}

/// With `--json`, the one document of a run that had nothing to apply.
fn no_changes_json(ws: &sipform::ops::Workspace, args: &Args, plan: &Plan) {
    if args.json {
        print!(
            "{}",
            output::apply_json(&output::ApplyRunView {
                plan: Some(plan),
                report: None,
                skipped: ws.skipped(),
                interrupted_by: None,
                error: None,
                rollout: None,
            })
        );
    }
}

/// Prints what the apply did (the summary, and the JSON document with `--json`) and returns
/// the run's exit code: a signal's, else failure when any restaurant failed.
fn outcome(
    ws: &sipform::ops::Workspace,
    args: &Args,
    plan: &Plan,
    report: &Report,
    interrupts: &Interrupts,
    rollout: Option<(&rollout::Verdict, &[rollout::RolloutEvent])>,
) -> ExitCode {
    if args.json {
        eprint!("{}", output::report(report));
        let signal = interrupts.received().map(|s| s.name());
        print!(
            "{}",
            output::apply_json(&output::ApplyRunView {
                plan: Some(plan),
                report: Some(report),
                skipped: ws.skipped(),
                interrupted_by: signal,
                error: None,
                rollout,
            })
        );
    } else {
        print!("{}", output::report(report));
    }
    if let Some(sig) = interrupts.received() {
        eprintln!(
            "Interrupted by {}: the requests in flight finished and were recorded; run `sipform apply` again to finish.",
            sig.name()
        );
        return ExitCode::from(sig.exit_code());
    }
    if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Terraform's question; only `yes` goes ahead. Refuses to guess without a terminal.
pub(super) fn confirm() -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("stdin is not a terminal: pass --auto-approve to apply without confirmation, or apply a saved plan");
    }
    print!("\nDo you want to perform these actions? Only 'yes' will be accepted: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}
