//! `plan`: read the server, diff, and say what apply would do.

use std::collections::BTreeSet;
use std::path::Path;

use crate::model::ids::RestaurantId;
use crate::plan::file::write_plan;
use crate::plan::Plan;

use super::{OpsError, Workspace};

/// What to plan for.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Delete the objects of restaurants gone from the inventory.
    pub allow_destroy: bool,
    /// Replace objects the server cannot update (a subscription to another plan).
    pub allow_replace: bool,
    /// Restaurants to consider; empty means all.
    pub targets: BTreeSet<RestaurantId>,
}

/// The plan from the current state (read, not locked: planning changes nothing).
pub async fn plan(ws: &Workspace, opts: &PlanOptions) -> Result<Plan, OpsError> {
    let client = ws.client()?;
    let state = ws.state().await?;
    ws.plan(&client, &state, opts).await
}

/// Saves `plan` for `apply FILE` (atomically, owner-readable only).
pub fn save(path: &Path, plan: &Plan) -> Result<(), OpsError> {
    Ok(write_plan(path, plan)?)
}
