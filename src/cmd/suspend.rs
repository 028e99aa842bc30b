//! `sipform suspend` / `sipform resume`: set restaurants aside (plan, apply and the controller
//! leave them as they are, status says "suspended"), and take them back. Recorded in state,
//! under its lock; nothing on the server is touched.

use std::process::ExitCode;

use sipform::model::ids::RestaurantId;
use sipform::ops::status::{self, Which};
use sipform::output::escape;

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    /// The restaurant (its id); repeat for several.
    #[arg(
        long = "restaurant",
        value_name = "ID",
        required_unless_present = "all"
    )]
    pub restaurants: Vec<String>,
    /// Every restaurant of the inventory and of state.
    #[arg(long, conflicts_with = "restaurants")]
    pub all: bool,
}

/// `suspend` when `suspended`, else `resume`.
pub async fn run(global: &Global, args: Args, suspended: bool) -> anyhow::Result<ExitCode> {
    let ws = super::workspace(global, &Default::default()).await?;
    let which = if args.all {
        Which::All
    } else {
        Which::Some(
            args.restaurants
                .iter()
                .map(|r| RestaurantId::new(r.as_str()))
                .collect(),
        )
    };
    let changed = status::set_suspended(&ws, &which, suspended).await?;
    let (done, already) = if suspended {
        ("suspended", "already suspended")
    } else {
        ("resumed", "none of them was suspended")
    };
    if changed.is_empty() {
        println!("nothing to do: {already}");
    } else {
        let ids: Vec<String> = changed
            .iter()
            .map(|id| escape(id.as_str()).into_owned())
            .collect();
        println!("{done} {} restaurant(s): {}", changed.len(), ids.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
