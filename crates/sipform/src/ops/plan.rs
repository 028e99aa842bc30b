//! `plan`: read the server, diff, and say what apply would do.

use std::collections::BTreeSet;
use std::path::Path;

use crate::model::ids::RestaurantId;
use crate::plan::file::write_plan;
use crate::plan::Plan;
use crate::state::State;

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
    /// See [`crate::diff::PlanOptions::only_changes`].
    pub only_changes: bool,
}

/// The plan from the current state (read, not locked: planning changes nothing).
pub async fn plan(ws: &Workspace, opts: &PlanOptions) -> Result<Plan, OpsError> {
    let client = ws.client()?;
    let state = ws.state().await?;
    check_targets(ws, &state, opts)?;
    ws.plan(&client, &state, opts).await
}

/// Refuses a `--target` that names no restaurant of the inventory nor of state: a typo would
/// otherwise plan "No changes" and pass CI. Checked before any request.
pub fn check_targets(ws: &Workspace, state: &State, opts: &PlanOptions) -> Result<(), OpsError> {
    let desired = ws.desired();
    if desired.hold_all {
        // A restaurant was skipped whose id could not be read: the target may be that one.
        return Ok(());
    }
    let known = state.restaurant_ids();
    let unknown: Vec<&str> = opts
        .targets
        .iter()
        .filter(|t| {
            !known.contains(*t)
                && !desired.held.contains(*t)
                && !desired.restaurants.iter().any(|r| &r.id == *t)
        })
        .map(RestaurantId::as_str)
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(OpsError::NoSuchRestaurant(format!(
            "{}` (--target names no restaurant of the inventory nor of state; nothing was sent",
            unknown.join("`, `")
        )))
    }
}

/// The commit a plan is made from, for the pull-request comment: `GITHUB_SHA` in GitHub
/// Actions, else `git rev-parse HEAD` in `root` when git is there, else none.
pub fn source_commit(root: &Path) -> Option<String> {
    if let Some(sha) = std::env::var("GITHUB_SHA")
        .ok()
        .filter(|s| !s.trim().is_empty())
    {
        return Some(sha.trim().to_string());
    }
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let sha = String::from_utf8(out.stdout).ok()?;
    let sha = sha.trim();
    (out.status.success() && !sha.is_empty() && sha.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| sha.to_string())
}

/// Saves `plan` for `apply FILE` (atomically, owner-readable only).
pub fn save(path: &Path, plan: &Plan) -> Result<(), OpsError> {
    Ok(write_plan(path, plan)?)
}
