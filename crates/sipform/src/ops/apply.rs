//! `apply`: carry out a saved plan, or plan and apply, under the state lock.
//!
//! Split in steps because the CLI shows the plan and may ask for confirmation between planning
//! and applying, all while the lock is held.

use std::path::Path;

use crate::apply::{self, Progress, Report};
use crate::plan::file::read_plan;
use crate::plan::Plan;
use crate::remote::Client;
use crate::state::{LockGuard, State, StateWriter};

use super::plan::PlanOptions;
use super::revision_guard::Judged;
use super::{OpsError, Workspace};

/// An apply holding the state lock, from reading state to the last recorded id.
pub struct ApplyRun<'w> {
    ws: &'w Workspace,
    client: Client,
    state: State,
    state_exists: bool,
    healed: super::repair::Repaired,
    _lock: Box<dyn LockGuard>,
}

impl<'w> ApplyRun<'w> {
    /// Takes the lock, reads state, then the inventory again (one snapshot with state: what
    /// another writer, the controller, provisioned before the lock was taken is in both), and
    /// heals the platform rows a crashed run left behind.
    pub async fn start(ws: &'w mut Workspace) -> Result<ApplyRun<'w>, OpsError> {
        let client = ws.client()?;
        let lock = ws.lock("apply").await?;
        let existing = ws.load_state().await?;
        let state_exists = existing.is_some();
        let mut state = existing.unwrap_or_else(|| ws.fresh_state());
        ws.reread_inventory(&state).await?;
        let ws: &'w Workspace = ws;
        let healed = super::repair::repair_rows(ws, &client, &mut state, None).await?;
        Ok(ApplyRun {
            ws,
            client,
            state,
            state_exists,
            healed,
            _lock: lock,
        })
    }

    /// The workspace this run reads, as re-read under its lock.
    pub fn workspace(&self) -> &'w Workspace {
        self.ws
    }

    /// Platform rows rewritten at start (their ids or tokens were not state's).
    pub fn healed(&self) -> u64 {
        self.healed.rewritten
    }

    /// Platform rows left alone at start: they name another project's agent.
    pub fn foreign_rows(&self) -> &[super::repair::ForeignRow] {
        &self.healed.foreign
    }

    /// A plan saved with `plan --out`, refused when stale (another server, lineage or serial,
    /// or objects changed on the server since).
    pub async fn saved_plan(&mut self, path: &Path) -> Result<Plan, OpsError> {
        let saved = read_plan(path)?;
        if !self.state_exists {
            // A first apply continues the history the plan was made in.
            self.state.lineage = saved.lineage;
        }
        self.ws
            .check_fresh(&self.client, &saved, &self.state, self.state_exists)
            .await?;
        // This checkout plans what the file says (checked just above): its revision is the
        // one judged and recorded. The plan's may be a commit this history never holds (CI
        // plans a pull request's merge ref; the branch gets another commit).
        let mut saved = saved;
        saved.revision = Some(self.ws.revision()?.clone());
        // Judged by this run's settings and fleet, whatever the file says.
        saved.guardrails =
            super::guardrails::breaches(&self.ws.settings().guardrails, &saved, &self.state);
        Ok(saved)
    }

    /// A fresh plan from the state this run holds.
    pub async fn plan(&self, opts: &PlanOptions) -> Result<Plan, OpsError> {
        super::plan::check_targets(self.ws, &self.state, opts)?;
        self.ws.plan(&self.client, &self.state, opts).await
    }

    /// A plan with nothing to change still checked every restaurant in it: records its
    /// revision for them (no request sent), as an apply would. Returns how many were recorded.
    pub async fn record_checked(&self, plan: &Plan) -> Result<usize, OpsError> {
        let own = match &plan.revision {
            Some(r) => r.clone(),
            None => self.ws.revision()?.clone(),
        };
        let judged = Judged::new(self.ws.settings().history_root(), &own, plan, &self.state);
        let ids = plan.restaurants.iter().map(|r| &r.restaurant_id);
        let records = judged.records(&own, ids, &self.state);
        if records.is_empty() {
            return Ok(0);
        }
        let n = records.len();
        let writer = self.ws.writer(self.state.clone());
        writer.record(records).await?;
        writer.settle().await?;
        Ok(n)
    }

    /// A handle another task (a signal listener) uses to stop this run's writes.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.client.clone())
    }

    /// Carries `plan` out, recording every id as it comes; releases the lock when done.
    pub async fn apply(self, plan: &Plan, progress: &dyn Progress) -> Report {
        let (report, writer) = apply_plan(self.ws, &self.client, plan, self.state, progress).await;
        if let Err(e) = writer.settle().await {
            // What is recorded is durable in the journal: the next run replays it.
            tracing::warn!(target: crate::LOG_TARGET, "could not fold the state journal in ({e}); the next run replays it");
        }
        report
    }
}

/// [`ApplyRun::record_checked`] for a caller holding the lock and `state` (the controller, a
/// batch whose plan changes nothing during a rollout): the state after.
pub async fn record_checked_in(
    ws: &Workspace,
    plan: &Plan,
    state: State,
) -> Result<State, OpsError> {
    let own = match &plan.revision {
        Some(r) => r.clone(),
        None => ws.revision()?.clone(),
    };
    let judged = Judged::new(ws.settings().history_root(), &own, plan, &state);
    let ids = plan.restaurants.iter().map(|r| &r.restaurant_id);
    let records = judged.records(&own, ids, &state);
    if records.is_empty() {
        return Ok(state);
    }
    let writer = ws.writer(state);
    writer.record(records).await?;
    Ok(writer.into_state())
}

impl<'w> ApplyRun<'w> {
    /// The run taken apart for an apply in several passes (`ops::rollout`): the workspace,
    /// the client, the state read under the lock, and the lock (held until dropped).
    pub(super) fn into_parts(self) -> (&'w Workspace, Client, State, Box<dyn LockGuard>) {
        (self.ws, self.client, self.state, self._lock)
    }
}

/// The one way anything is applied: `plan` carried out from `state` (held under the lock by
/// the caller) by the executor, every id recorded as it comes through `ws`'s state writer (and
/// written back to the inventory when it takes them). The CLI's [`ApplyRun`] and the
/// controller call it; the writer is handed back to be settled or read.
///
/// No writer goes backwards: a restaurant state records at a newer, diverged or unknown
/// revision is left alone and reported failed, naming both (`--allow-rollback` lets it go
/// back); every restaurant reconciled gets the plan's revision recorded. An update due inside
/// its restaurant's change window, or to an agent in a call, is held (`ops::hold`): left
/// alone and reported in [`Report::held`], not failed.
pub async fn apply_plan(
    ws: &Workspace,
    client: &Client,
    plan: &Plan,
    state: State,
    progress: &dyn Progress,
) -> (Report, StateWriter) {
    // A version-1 saved plan names no revision: it is applied as of this configuration's.
    let own = plan
        .revision
        .clone()
        .or_else(|| ws.revision().ok().cloned());
    let judged = own
        .as_ref()
        .map(|own| Judged::new(ws.settings().history_root(), own, plan, &state));
    let to_apply = judged
        .as_ref()
        .and_then(|j| j.narrowed.as_ref())
        .unwrap_or(plan);
    // Change windows judged now (a saved plan's holds were as of its making).
    let mut holds = super::hold::window_holds(ws, to_apply, ws.settings().clock.now());
    let held: std::collections::BTreeSet<_> = holds.iter().map(|h| &h.restaurant_id).collect();
    let open = super::hold::without(to_apply, &held);
    let to_apply = open.as_ref().unwrap_or(to_apply);
    let writer = ws.writer(state);
    let (mut report, busy) =
        super::hold::apply_between_calls(ws, client, to_apply, &writer, progress).await;
    holds.extend(busy);
    holds.sort_by(|a, b| a.restaurant_id.cmp(&b.restaurant_id));
    report.held = holds;
    if let (Some(own), Some(judged)) = (&own, &judged) {
        // Reported like any failure: the CLI's summary and the controller's log name them.
        report.outcomes.extend(judged.refused_outcomes(plan));
        report
            .outcomes
            .sort_by(|a, b| a.restaurant.cmp(&b.restaurant));
        let records = writer.read(|s| judged.records(own, Judged::reconciled(&report), s));
        if !records.is_empty() {
            if let Err(e) = writer.record(records).await {
                // The ids are recorded; only the revision is not: the next apply records it.
                tracing::warn!(target: crate::LOG_TARGET, "could not record the revision applied: {e}");
            }
        }
    }
    report.revision = own;
    (report, writer)
}

/// [`apply_plan`] without the revision guard or record: for `import`, which writes nothing to
/// the server (so cannot go back) and adopts objects no revision of this one necessarily made.
pub(super) async fn apply_adoptions(
    ws: &Workspace,
    client: &Client,
    plan: &Plan,
    state: State,
) -> Report {
    let writer = ws.writer(state);
    apply::apply_with(ws.kinds(), plan, client, &writer, &apply::Silent).await
}

/// Stops an apply from outside, e.g. on SIGINT: writes not yet holding a request slot are not
/// sent (their restaurants are reported as not started); those in flight finish and are
/// recorded, so state names exactly what the server has.
#[derive(Clone)]
pub struct Stopper(Client);

impl Stopper {
    /// `why` ends up in the report (`interrupted by SIGINT`); the first reason given stays.
    pub fn stop(&self, why: &str) {
        self.0.halt_writes(why);
    }
}
