//! `sipform import`: take objects that already exist on the server into state, and nothing else.

use std::process::ExitCode;

use sipform::ops::import::{self, ImportOptions};
use sipform::output;

use sipform::config::Overrides;

use super::{Global, LockArgs, ParallelismArg, ServerArgs};

#[derive(clap::Args)]
pub struct Args {
    /// Restaurant ids to import.
    #[arg(
        value_name = "RESTAURANT_ID",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub restaurants: Vec<String>,
    /// Import every restaurant of the inventory.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub parallelism: ParallelismArg,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        parallelism: Some(args.parallelism.get()),
        lock_timeout: Some(args.lock.lock_timeout),
        ..args.server.overrides()
    };
    let ws = super::workspace(global, &overrides).await?;
    let code = import(&ws, &args).await?;
    // Restaurants skipped for invalid input: the others are imported, but the run fails.
    if !ws.skipped().is_empty() {
        eprint!("{}", output::skipped(ws.skipped()));
        return Ok(ExitCode::FAILURE);
    }
    Ok(code)
}

async fn import(ws: &sipform::ops::Workspace, args: &Args) -> anyhow::Result<ExitCode> {
    let opts = ImportOptions {
        targets: super::target_set(&args.restaurants),
    };
    let run = import::prepare(ws, &opts).await?;
    if !run.plan().has_changes() {
        println!("Nothing to import: every existing object is already in state.");
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", output::imports(run.plan()));
    let report = run.apply().await;
    print!("{}", output::report(&report));
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
