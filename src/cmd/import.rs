//! `sipform import`: take objects that already exist on the server into state, and nothing else.

use std::process::ExitCode;

use sipform::apply::{self, Silent};
use sipform::state::StateWriter;

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
    let client = ws.client()?;
    let _lock = ws.lock("import", args.run.lock_timeout).await?;
    let state = ws.state().await?;
    let (plan, _) = ws
        .plan(&client, &state, false, &args.run.target_set())
        .await?;
    let account_name = plan.account.name().to_string();
    let Some(plan) = plan.into_import() else {
        anyhow::bail!("account {account_name:?} does not exist on the server: nothing to import");
    };
    if !plan.has_changes() {
        println!("Nothing to import: every existing object is already in state.");
        return Ok(ExitCode::SUCCESS);
    }
    for r in &plan.restaurants {
        for a in &r.actions {
            println!(
                "import {:?} {} ({}) for restaurant {}: {}",
                a.resource(),
                a.name(),
                a.remote_id().unwrap_or("?"),
                r.restaurant_id,
                a.reason().unwrap_or_else(|| "found".into())
            );
        }
    }
    let writer = StateWriter::new(
        ws.backend.clone(),
        state,
        ws.project.state.store_tokens(),
        ws.commit_hook(),
    );
    let report = apply::apply(&plan, &client, &writer, &Silent).await;
    print!("{}", report.render());
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
