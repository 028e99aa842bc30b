//! `plan`: read the server, diff, and say what apply would do.

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;

use crate::diff::{Lookups, Owners, Planner};
use crate::model::ids::RestaurantId;
use crate::model::secret::redact_url;
use crate::plan::file::write_plan;
use crate::plan::Plan;
use crate::refresh::ServerView;
use crate::state::State;

use super::{OpsError, Workspace};

/// What to plan for: the one set of choices, from the CLI's flags or the controller's.
pub use crate::diff::PlanOptions;

/// Restaurants planned together: their children lists are read at once (enough to keep the
/// client's slots busy) and dropped once compared.
const PLAN_BATCH: usize = 64;
/// Batches whose children lists are read while an earlier one is planned.
const READ_AHEAD: usize = 3;

/// The plan from the current state (read, not locked: planning changes nothing).
pub async fn plan(ws: &Workspace, opts: &PlanOptions) -> Result<Plan, OpsError> {
    let client = ws.client()?;
    let state = ws.state().await?;
    check_targets(ws, &state, opts)?;
    let mut plan = ws.plan(&client, &state, opts).await?;
    // The platform's own provisioning's copies in a second account of the same name.
    super::twins::twin_duplicates(ws, &client, &state, &mut plan).await?;
    Ok(plan)
}

/// The one way anything is planned: `ws`'s desired restaurants against what `server` has, from
/// `state`. The CLI runs it over a refresh of the server, the controller over its cache.
///
/// The objects under each parent (tools under agents) are read, compared and dropped a batch
/// of restaurants at a time: memory stays flat in the number of restaurants. The next batches'
/// lists are read while one is planned, so the server's round trips and the comparing overlap
/// instead of taking turns.
pub(crate) async fn plan_over<S: ServerView>(
    ws: &Workspace,
    state: &State,
    opts: &PlanOptions,
    server: &mut S,
) -> Result<Plan, OpsError> {
    let kinds = ws.kinds();
    // Who state records each object for: kept by the view for this very state (the
    // controller's cache), or built once here.
    let owners = server
        .owners(kinds, state)
        .filter(|o| o.is_of(state))
        .unwrap_or_else(|| std::sync::Arc::new(Owners::of(kinds, state)));
    check_owners(&owners)?;
    let unsuspended;
    let desired = match without_suspended(ws.desired(), state) {
        Some(d) => {
            unsuspended = d;
            &unsuspended
        }
        None => ws.desired(),
    };
    let scope = (!opts.targets.is_empty()).then_some(&opts.targets);
    // The agents and final customers stay from here to the end of the plan (packed as they
    // are read when they come from the server: see `ServerObject::pack`).
    let actual = server
        .singles(kinds, desired, state, scope)
        .await
        .map_err(|e| ws.refresh_error(e))?;
    // Rows naming another project's agent are held, with a note: never created for, never
    // overwritten.
    let foreign = super::repair::foreign_rows(ws, state, &actual, scope).await?;
    let held;
    let desired = if foreign.is_empty() {
        desired
    } else {
        held = super::repair::hold(desired, &foreign);
        &held
    };
    // The index the view keeps (the controller's cache), or one built for this plan.
    let kept = server.index();
    let lookups = Lookups {
        index: kept.as_deref(),
        owners: Some(&owners),
    };
    let mut planner = Planner::new(kinds, desired, &actual, lookups, state, opts);
    plan_batches(ws, server, &mut planner).await?;
    let mut plan = planner.finish();
    plan.restaurants.extend(
        foreign
            .iter()
            .map(|f| super::repair::held_plan(ws.desired(), f)),
    );
    // A plan is printed, posted and saved: it names the server without its user-info.
    plan.server_url = redact_url(&ws.settings().server_url);
    annotate(ws, &mut plan, state)?;
    Ok(plan)
}

/// Plans `planner`'s restaurants batch by batch: the children lists of the next batches are
/// read while one is planned, so the server's round trips and the comparing overlap.
async fn plan_batches<S: ServerView>(
    ws: &Workspace,
    server: &mut S,
    planner: &mut Planner<'_>,
) -> Result<(), OpsError> {
    let kinds = ws.kinds();
    let mut ahead = VecDeque::new();
    loop {
        // Batches read ahead: the later ones keep every slot busy while the first's last
        // answers trickle in.
        while ahead.len() < READ_AHEAD {
            let Some(b) = planner.next_batch(PLAN_BATCH) else {
                break;
            };
            ahead.push_back((server.start_children(kinds, &b.parents), b));
        }
        let Some((reading, mut batch)) = ahead.pop_front() else {
            break;
        };
        let server_error = |e| ws.server_error(e);
        let mut children = server
            .finish_children(reading)
            .await
            .map_err(server_error)?;
        // An object a batch read ahead of turns out to be needed (one the batch before
        // adopted): its lists are read now.
        let missing: BTreeSet<_> = planner
            .recheck(&mut batch)
            .into_iter()
            .filter(|p| !children.contains_key(p))
            .collect();
        if !missing.is_empty() {
            let more = server.start_children(kinds, &missing);
            children.extend(server.finish_children(more).await.map_err(server_error)?);
        }
        planner.plan_batch(batch, &children);
    }
    Ok(())
}

/// What a plan says besides its actions: which revision it is made from, where applying it
/// would go back or be refused, which updates wait for their change window (as of now), and
/// the guardrails it goes over.
fn annotate(ws: &Workspace, plan: &mut Plan, state: &State) -> Result<(), OpsError> {
    let revision = ws.revision()?.clone();
    plan.revision_notes =
        super::revision_guard::judge(ws.settings().history_root(), &revision, plan, state);
    plan.revision = Some(revision);
    plan.holds = super::hold::window_holds(ws, plan, ws.settings().clock.now());
    plan.guardrails = super::guardrails::breaches(&ws.settings().guardrails, plan, state);
    Ok(())
}

/// `desired` without the restaurants state records as suspended (`sipform suspend`), which are
/// held instead: neither planned nor taken for gone. `None` when none is suspended (the
/// common case: no copy).
fn without_suspended(
    desired: &crate::model::spec::Desired,
    state: &State,
) -> Option<crate::model::spec::Desired> {
    let suspended = state.suspended();
    if suspended.is_empty() {
        return None;
    }
    let mut d = desired.clone();
    d.restaurants.retain(|r| !suspended.contains(&r.id));
    d.held.extend(suspended);
    Some(d)
}

/// Refuses to plan from a state that maps two restaurants to one remote object: nothing is
/// planned with an id another restaurant owns.
pub(crate) fn check_owners(owners: &Owners) -> Result<(), OpsError> {
    match owners.shared() {
        None => Ok(()),
        Some((what, id, first, second)) => Err(OpsError::Conflict(format!(
            "state maps restaurants {first} and {second} to the same {what} {id}: one object belongs to one restaurant; remove the wrong one with `sipform state rm` and plan again"
        ))),
    }
}

/// Refuses a `--target` that names no restaurant of the inventory nor of state: a typo would
/// otherwise plan "No changes" and pass CI. Checked before any request.
pub(crate) fn check_targets(
    ws: &Workspace,
    state: &State,
    opts: &PlanOptions,
) -> Result<(), OpsError> {
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
