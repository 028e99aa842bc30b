//! The controller's side of a rollout: each batch's plan loses the changes of waves not yet
//! started ([`hold`]); between batches, [`advance`] opens the next wave once the current one
//! is done and the gates allow, and names its restaurants to reconcile. A new revision
//! reaches the fleet through the same waves as an `apply`, from the same record, kept in
//! state: a controller taking over on another machine reads where the last one was.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::config::Settings;
use crate::model::ids::RestaurantId;
use crate::model::revision::Revision;
use crate::plan::Plan;
use crate::remote::Client;
use crate::state::State;

use super::super::{OpsError, Workspace};
use super::newcomers::{self, StableCache, StableFiles};
use super::{
    current, current_or_start, done, fleet, narrow, Assignment, Events, Keeper, RolloutRecord,
    Step, Verdict, Waves,
};

/// A batch's plan under the policy.
#[derive(Debug)]
pub struct Held {
    /// The plan without the held restaurants (`None`: nothing held, apply it as it is).
    pub plan: Option<Plan>,
    /// Held restaurants, with why.
    pub held: BTreeMap<RestaurantId, String>,
    /// Whether a rollout is in progress (its unchanged restaurants are recorded as checked).
    pub rolling: bool,
    /// New restaurants to create at the stable revision (their wave has not started), and
    /// its files; still in the plan, which the caller narrows once they exist.
    pub at_stable: Option<(Arc<StableFiles>, BTreeSet<RestaurantId>)>,
    pub events: Events,
}

/// The restaurants of `plan` a new revision changes: those with a change whose recorded
/// revision is another (a row's own edit, at the revision in use, is never held).
fn revision_changes(plan: &Plan, state: &State, own: &Revision) -> BTreeSet<RestaurantId> {
    super::changed(plan, state)
        .into_iter()
        .filter(|id| !done(state, id, own))
        .collect()
}

/// `plan` (a controller batch's, at revision `own`) with the changes of waves not started
/// left out; starts a rollout when the fleet has more restaurants to take `own` than the
/// canary, recording it in `state` (the batch holds the state lock). New restaurants whose
/// wave has not started are named for the stable revision (`stable`'s files).
pub async fn hold(
    ws: &Workspace,
    plan: &Plan,
    state: &mut State,
    own: &Revision,
    stable: &StableCache,
) -> Result<Held, OpsError> {
    let mut events = Events::default();
    let nothing = |events| Held {
        plan: None,
        held: BTreeMap::new(),
        rolling: false,
        at_stable: None,
        events,
    };
    let Some(policy) = &ws.settings().rollout else {
        return Ok(nothing(events));
    };
    let changed = revision_changes(plan, state, own);
    let fleet = fleet(state);
    let behind = fleet.iter().filter(|id| !done(state, id, own)).count();
    let starts = if changed.is_empty() { 0 } else { behind };
    let keeper = Keeper::of(ws);
    let how = (policy, ws.settings().history_root());
    let Some(mut rec) = current_or_start(&keeper, how, own, state, starts, &mut events).await?
    else {
        return Ok(nothing(events));
    };
    let policy = &policy.for_rollout(rec.rollback);
    rec.fit(policy.waves.len());
    let a = Assignment::new(policy, &rec.canary, &fleet);
    let cur = rec.current();
    let held: BTreeMap<RestaurantId, String> = changed
        .into_iter()
        .filter_map(|id| {
            let why = match (&rec.halted, a.wave_of(&id)) {
                (Some(h), _) => format!("rollout halted: {}", h.reason),
                (None, Some(w)) if w > cur => format!("rollout: in wave {w}, not started yet"),
                _ => return None,
            };
            Some((id, why))
        })
        .collect();
    let narrowed = (!held.is_empty()).then(|| narrow(plan, |id| !held.contains_key(id)));
    let mut everyone = fleet;
    let new = newcomers::new_restaurants(plan, state);
    everyone.extend(new.iter().cloned());
    let later = newcomers::waiting(new, &Assignment::new(policy, &rec.canary, &everyone), &rec);
    Ok(Held {
        plan: narrowed,
        held,
        rolling: true,
        at_stable: at_stable(ws.settings(), &rec, later, stable),
        events,
    })
}

/// `ids` (new restaurants) with the stable files they are created from; `None` when there
/// are none, or no stable files (not a clean commit, or unreadable: they are created at the
/// rolled-out revision, with a warning; a new restaurant is never delayed).
fn at_stable(
    settings: &Settings,
    rec: &RolloutRecord,
    ids: BTreeSet<RestaurantId>,
    stable: &StableCache,
) -> Option<(Arc<StableFiles>, BTreeSet<RestaurantId>)> {
    if ids.is_empty() {
        return None;
    }
    let why = match stable.for_rollout(settings, rec) {
        Ok(Some(files)) => return Some((files, ids)),
        Ok(None) => "the stable revision is not a committed git revision".to_string(),
        Err(e) => format!("the stable revision's files cannot be read: {e}"),
    };
    tracing::warn!(target: crate::LOG_TARGET, "controller: {} new restaurant(s) created at the rolled-out revision: {why}", ids.len());
    None
}

/// What the gate between waves reads a wave back with (post-apply verification, as `apply`
/// does): the platform's rows of the sample, planned against the server itself, not the
/// controller's cache. It remembers the wave it last found right, so a wave is read back
/// once, not at every poll of its pause.
pub struct Verifier<'a> {
    pub inventory: &'a dyn crate::inventory::Inventory,
    pub backend: Arc<dyn crate::state::StateBackend>,
    pub kinds: crate::resources::Kinds,
    /// The rollout (its revision's digest) and wave found right.
    pub verified: Option<(crate::model::revision::ConfigDigest, usize)>,
}

impl Verifier<'_> {
    /// A workspace of `ids`' rows at `own`, for a plan of them against the server.
    async fn workspace(
        &self,
        settings: &Settings,
        ids: &BTreeSet<RestaurantId>,
        own: &Revision,
    ) -> Result<Workspace, OpsError> {
        let read = self.inventory.read_some(ids).await?;
        Ok(Workspace::for_read(
            settings.clone(),
            self.backend.clone(),
            self.inventory,
            read,
            self.kinds.clone(),
        )?
        .with_revision(own.clone()))
    }

    /// The wave of the rollout to `own` already found right, if any.
    fn verified_wave(&self, own: &Revision) -> Option<usize> {
        self.verified
            .as_ref()
            .filter(|(d, _)| *d == own.digest)
            .map(|(_, w)| *w)
    }
}

/// What [`advance`] did.
#[derive(Debug, Default)]
pub struct Advanced {
    /// The restaurants of a wave just opened: to reconcile now.
    pub opened: Vec<RestaurantId>,
    pub events: Events,
}

/// Whether `state` records a rollout towards `own` going on (and not halted): only then does
/// [`advance`] judge its gates at a poll.
pub fn going_on(settings: &Settings, state: &State, own: &Revision) -> bool {
    settings.rollout.is_some()
        && current(settings, state).is_ok_and(|r| {
            r.is_some_and(|r| r.in_progress() && r.halted.is_none() && r.to.digest == own.digest)
        })
}

/// Between batches: the rollout towards `own` goes on when its started waves are done (every
/// restaurant recorded at `own`: a failing one holds the wave, retried by the queue), the
/// health gate passes and the pause is over. What changed in the record is committed to
/// state through `keeper` (taking the lock, refused if state moved since `state` was read)
/// before the opened wave's restaurants are named.
pub async fn advance(
    settings: &Settings,
    keeper: &Keeper,
    state: &State,
    client: &Client,
    own: &Revision,
    verifier: Option<&mut Verifier<'_>>,
) -> Result<Advanced, OpsError> {
    let Some(policy) = settings.rollout.clone() else {
        return Ok(Advanced::default());
    };
    let Some(mut rec) = current(settings, state)?
        .filter(RolloutRecord::in_progress)
        .filter(|r| r.to.digest == own.digest && r.halted.is_none())
    else {
        return Ok(Advanced::default());
    };
    let policy = policy.for_rollout(rec.rollback);
    rec.fit(policy.waves.len());
    let fleet = fleet(state);
    let assignment = Assignment::new(&policy, &rec.canary, &fleet);
    let cur = rec.current();
    let pending = assignment.waves[..=cur]
        .iter()
        .flatten()
        .filter(|id| !done(state, id, own))
        .count();
    if pending > 0 {
        return Ok(Advanced::default());
    }
    // The wave read back once it is complete, before the next opens (not the last: no wave
    // is left to hold back).
    let sample = super::verify_sample(&assignment, &fleet, state, own, cur);
    let verified = verifier.as_ref().and_then(|v| v.verified_wave(own));
    let ws = match &verifier {
        Some(v) if cur < assignment.last() && !sample.is_empty() && verified != Some(cur) => {
            Some(v.workspace(settings, &sample, own).await?)
        }
        _ => None,
    };
    let mut waves = Waves {
        ws: ws.as_ref(),
        keeper: keeper.clone(),
        dirty: false,
        client,
        policy,
        assignment,
        changed: fleet,
        own: own.clone(),
        rec,
        events: Events::default(),
        reports: Vec::new(),
        verified,
    };
    let opened = match waves.gate(state).await? {
        Step::Next => {
            waves.open(cur + 1);
            waves.assignment.waves[cur + 1].clone()
        }
        Step::Stop(Verdict::Halted(_) | Verdict::Paused(_) | Verdict::Finished) => Vec::new(),
        Step::Stop(Verdict::NoRollout) => Vec::new(),
    };
    if waves.dirty {
        keeper
            .save_fenced(state, &waves.rec, settings.lock_timeout)
            .await?;
    }
    if let (Some(v), Some(w)) = (verifier, waves.verified) {
        v.verified = Some((own.digest.clone(), w));
    }
    Ok(Advanced {
        opened,
        events: waves.events,
    })
}
