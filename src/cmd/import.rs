//! `sipform import`: take objects that already exist on the server into state, and nothing else.

use std::process::ExitCode;

use sipform::ops::import::{self, ImportOptions};
use sipform::output;

use super::{Global, RunArgs};

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
    pub run: RunArgs,
}

pub async fn run(global: &Global, mut args: Args) -> anyhow::Result<ExitCode> {
    args.run.targets.extend(args.restaurants.iter().cloned());
    let ws = super::workspace(global, &args.run).await?;
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
        targets: args.run.target_set(),
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
