//! New restaurants while a rollout is in progress: never delayed, and provisioned at the
//! fleet's stable revision (the record's `from`), not at the one being rolled out. Their
//! agents are created from the stable commit's files (`git archive`, as `rollout abort`
//! takes them) with the project's own restaurants, and state records the stable revision for
//! them; from then on they are in the fleet, and their wave moves them forward like any
//! other restaurant.
//!
//! A new restaurant whose wave has already started (and the rollout is not halted) would be
//! moved at once: it is created at the rolled-out revision directly, one write instead of two.
//!
//! The controller does the same from [`StableCache`]: the stable files taken once per
//! rollout (from the project's repository, or a followed branch's mirror), which its batches
//! plan their new restaurants from.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use crate::apply::{Progress, Report};
use crate::config::Settings;
use crate::model::ids::RestaurantId;
use crate::model::revision::Revision;
use crate::plan::{Plan, Summary};
use crate::remote::Client;
use crate::state::State;

use super::super::plan::PlanOptions;
use super::super::{OpsError, Workspace};
use super::{abort, apply_once, narrow, Assignment, RolloutRecord};

/// The restaurants of `plan` being created: a change, and no agent in state.
pub(super) fn new_restaurants(plan: &Plan, state: &State) -> BTreeSet<RestaurantId> {
    super::with_changes(plan, state, false)
}

/// Of `new` (new restaurants, placed in `assignment`), those created at the stable revision:
/// all while the rollout is halted, else those whose wave has not started (one of a started
/// wave would be moved at once: it is created at the rolled-out revision).
pub(super) fn waiting(
    new: BTreeSet<RestaurantId>,
    assignment: &Assignment,
    rec: &RolloutRecord,
) -> BTreeSet<RestaurantId> {
    let (cur, halted) = (rec.current(), rec.halted.is_some());
    new.into_iter()
        .filter(|id| halted || assignment.wave_of(id).is_none_or(|w| w > cur))
        .collect()
}

/// What [`create_at_stable`] did.
pub(super) struct Arrivals {
    /// The run's plan: the restaurants created at the stable revision now planned from it to
    /// the rolled-out one (`None`: none was created, the plan is as it was).
    pub plan: Option<Plan>,
    /// The creation's outcomes.
    pub report: Option<Report>,
    pub state: State,
    /// The restaurants created at the stable revision the rolled-out one changes: their wave
    /// moves them.
    pub moved: BTreeSet<RestaurantId>,
}

/// The stable revision's files, taken out of git once for a rollout: settings that render
/// and plan as the stable revision, with the project's own restaurants and state.
pub struct StableFiles {
    pub revision: Revision,
    pub settings: Settings,
    /// Where the files are; removed when the last holder lets go.
    _scratch: tempfile::TempDir,
}

impl std::fmt::Debug for StableFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StableFiles({})", self.revision.short())
    }
}

/// The controller's [`StableFiles`]: taken at the first new restaurant of a rollout and kept
/// while the stable revision stays the same (one `git archive` per rollout, not per batch).
#[derive(Default)]
pub struct StableCache(Mutex<Option<Arc<StableFiles>>>);

impl StableCache {
    /// The stable files of `rec`'s rollout of `project`; `None` when its stable revision is
    /// not a clean commit (there are no files to take).
    pub fn for_rollout(
        &self,
        project: &Settings,
        rec: &RolloutRecord,
    ) -> Result<Option<Arc<StableFiles>>, OpsError> {
        let Some(stable) = stable_of(rec) else {
            return Ok(None);
        };
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(files) = held.as_ref().filter(|f| &f.revision == stable) {
            return Ok(Some(files.clone()));
        }
        let scratch = abort::scratch()?;
        let settings = abort::stable_settings(project, stable, scratch.path())?;
        let settings = abort::with_project_inventory(settings, project)?;
        tracing::info!(target: crate::LOG_TARGET, "rollout: new restaurants are created at the stable revision {} while the rollout is in progress", stable.short());
        let files = Arc::new(StableFiles {
            revision: stable.clone(),
            settings,
            _scratch: scratch,
        });
        *held = Some(files.clone());
        Ok(Some(files))
    }
}

/// The stable revision new restaurants get: the record's `from`, when it is a clean commit
/// other than the one rolled out (else there are no stable files to create them from).
fn stable_of(rec: &RolloutRecord) -> Option<&Revision> {
    rec.from
        .as_ref()
        .filter(|r| r.commit.is_some() && !r.dirty && r.digest != rec.to.digest)
}

/// Creates `ids` (new restaurants of `plan`) from the stable revision's files, recording that
/// revision for them, then plans them again from `ws` (the rolled-out revision) so their wave
/// moves them. Without a committed stable revision they stay in `plan` (created at the
/// rolled-out revision, with a warning): a new restaurant is never delayed.
pub(super) async fn create_at_stable(
    ws: &Workspace,
    client: &Client,
    plan: &Plan,
    state: State,
    rec: &RolloutRecord,
    ids: BTreeSet<RestaurantId>,
    progress: &dyn Progress,
) -> Result<Arrivals, OpsError> {
    let unchanged = |state| Arrivals {
        plan: None,
        report: None,
        state,
        moved: BTreeSet::new(),
    };
    if ids.is_empty() {
        return Ok(unchanged(state));
    }
    let Some(stable) = stable_of(rec) else {
        tracing::warn!(target: crate::LOG_TARGET, "{} new restaurant(s) created at the rolled-out revision: the stable revision is not a committed git revision", ids.len());
        return Ok(unchanged(state));
    };
    let scratch = abort::scratch()?;
    let stable_ws = stable_workspace(ws, stable, scratch.path())
        .await
        .map_err(|e| {
            OpsError::Rollout(format!(
                "new restaurants are created at the stable revision {} while the rollout is in progress, and its files cannot be read: {e}; finish or abort the rollout (`sipform rollout abort`), or apply with `--target` to leave them out",
                stable.short()
            ))
        })?;
    let wanted = ids.len();
    let opts = PlanOptions {
        targets: ids,
        ..PlanOptions::default()
    };
    let mut at_stable = stable_ws.plan(client, &state, &opts).await?;
    // One the stable files cannot render (skipped there) stays in the run's plan.
    at_stable.restaurants.retain(|r| r.has_changes());
    at_stable.summary = Summary::of(at_stable.actions());
    if at_stable.restaurants.len() < wanted {
        tracing::warn!(target: crate::LOG_TARGET, "{} new restaurant(s) created at the rolled-out revision: the stable revision's files do not provision them", wanted - at_stable.restaurants.len());
    }
    if at_stable.restaurants.is_empty() {
        return Ok(unchanged(state));
    }
    let created: BTreeSet<RestaurantId> = at_stable
        .restaurants
        .iter()
        .map(|r| r.restaurant_id.clone())
        .collect();
    let (report, state) = apply_once(&stable_ws, client, &at_stable, state, progress).await;
    let (plan, moved) = forward(ws, client, plan, &state, &created).await?;
    Ok(Arrivals {
        plan: Some(plan),
        report: Some(report),
        state,
        moved,
    })
}

/// The workspace of the stable revision's files (taken into `into`) with the project's own
/// restaurants.
async fn stable_workspace(
    ws: &Workspace,
    stable: &Revision,
    into: &std::path::Path,
) -> Result<Workspace, OpsError> {
    let settings = abort::stable_settings(ws.settings(), stable, into)?;
    let settings = abort::with_project_inventory(settings, ws.settings())?;
    abort::stable_workspace(settings, stable).await
}

/// `plan` with `created` (just created at the stable revision) planned again from `ws`, the
/// rolled-out revision, and which of them it changes. One whose creation failed is left out:
/// the next apply creates it (at the stable revision again).
async fn forward(
    ws: &Workspace,
    client: &Client,
    plan: &Plan,
    state: &State,
    created: &BTreeSet<RestaurantId>,
) -> Result<(Plan, BTreeSet<RestaurantId>), OpsError> {
    let targets: BTreeSet<RestaurantId> = created
        .iter()
        .filter(|id| {
            state
                .restaurants
                .get(*id)
                .is_some_and(|s| s.agent_id.is_some())
        })
        .cloned()
        .collect();
    let mut forward = if targets.is_empty() {
        Vec::new()
    } else {
        let opts = PlanOptions {
            targets,
            ..PlanOptions::default()
        };
        ws.plan(client, state, &opts).await?.restaurants
    };
    forward.retain(|r| r.has_changes());
    let moved = forward.iter().map(|r| r.restaurant_id.clone()).collect();
    let mut plan = narrow(plan, |id| !created.contains(id));
    plan.restaurants.extend(forward);
    plan.summary = Summary::of(plan.actions());
    Ok((plan, moved))
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::super::{choose_canary, Halt, WaveRecord, RECORD_VERSION};
    use super::*;
    use crate::model::revision::{ConfigDigest, GitCommit};
    use crate::model::spec::{Canary, RolloutPolicy, WaveSize};

    fn revision(n: u8, commit: bool, dirty: bool) -> Revision {
        Revision {
            commit: commit.then(|| GitCommit::parse(&format!("{n:040x}")).expect("a commit id")),
            dirty,
            digest: ConfigDigest::from_sha256([n; 32]),
        }
    }

    fn record(from: Option<Revision>) -> RolloutRecord {
        let mut waves = vec![WaveRecord::default(); 3];
        waves[0].started_at = Some(Utc::now());
        RolloutRecord {
            version: RECORD_VERSION,
            from,
            to: revision(2, true, false),
            started_at: Utc::now(),
            canary: Vec::new(),
            waves,
            released: 0,
            halted: None,
            paused: None,
            finished_at: None,
            aborted_at: None,
            rollback: false,
        }
    }

    #[test]
    fn new_restaurants_wait_at_the_stable_revision_unless_their_wave_started() {
        let policy = RolloutPolicy {
            canary: Canary::Count(2),
            waves: vec![
                WaveSize::Percent("50%".into()),
                WaveSize::Percent("100%".into()),
            ],
            pause: "0s".into(),
            max_failures: 0,
            health: None,
            rollback: None,
        };
        let fleet: BTreeSet<RestaurantId> = (0..40)
            .map(|i| RestaurantId::new(format!("r{i:04}")))
            .collect();
        let new: BTreeSet<RestaurantId> = fleet.iter().skip(30).cloned().collect();
        let old: BTreeSet<RestaurantId> = fleet.difference(&new).cloned().collect();
        let mut rec = record(Some(revision(1, true, false)));
        rec.canary = choose_canary(&policy, &old);
        let a = Assignment::new(&policy, &rec.canary, &fleet);
        // Only the canary started: every new restaurant waits at the stable revision.
        assert_eq!(waiting(new.clone(), &a, &rec), new);
        // Wave 1 started: its new restaurants are created at the new revision directly.
        rec.waves[1].started_at = Some(Utc::now());
        let later = waiting(new.clone(), &a, &rec);
        assert!(later.iter().all(|id| a.wave_of(id) == Some(2)));
        assert!(later.len() < new.len(), "some new restaurant is in wave 1");
        // Halted: none moves forward, all wait.
        rec.halted = Some(Halt {
            wave: 1,
            reason: "errors".into(),
            at: Utc::now(),
        });
        assert_eq!(waiting(new.clone(), &a, &rec), new);
    }

    #[test]
    fn only_a_clean_committed_stable_revision_gives_files() {
        assert!(stable_of(&record(Some(revision(1, true, false)))).is_some());
        assert!(stable_of(&record(Some(revision(1, true, true)))).is_none());
        assert!(stable_of(&record(Some(revision(1, false, false)))).is_none());
        assert!(stable_of(&record(None)).is_none());
        // The stable revision is the one rolled out: nothing to create it from apart.
        assert!(stable_of(&record(Some(revision(2, true, false)))).is_none());
    }
}
