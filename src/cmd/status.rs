//! `sipform status`: where each restaurant stands (synced, out of sync, failed, parked, held,
//! suspended, pending), why and since when; from state and the inventory, `--refresh` to
//! compare with the server, or a running controller's `/v1/status` with `--controller`.

use std::process::ExitCode;

use sipform::model::ids::RestaurantId;
use sipform::ops::status::{self, StatusOptions};
use sipform::output;

use super::{Global, ServerArgs};

#[derive(clap::Args)]
pub struct Args {
    /// Only this restaurant (its id).
    #[arg(long, value_name = "ID")]
    pub restaurant: Option<String>,
    /// Compare with the server (a plan): out of sync when apply would change something.
    #[arg(long, conflicts_with = "controller")]
    pub refresh: bool,
    /// Ask a running controller instead (its listener, e.g. http://127.0.0.1:9464).
    #[arg(long, value_name = "URL")]
    pub controller: Option<String>,
    /// Print the report as JSON (the shape of the controller's /v1/status).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let restaurant = args.restaurant.as_deref().map(RestaurantId::new);
    let report = match &args.controller {
        Some(url) => status::from_controller(url, restaurant.as_ref()).await?,
        None => {
            let ws = super::workspace(global, &args.server.overrides()).await?;
            let opts = StatusOptions {
                refresh: args.refresh,
                restaurant,
            };
            status::status(&ws, &opts).await?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", output::status(&report));
    }
    Ok(ExitCode::SUCCESS)
}
