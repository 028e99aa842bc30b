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
    /// Takes the lock, reads state and heals the platform rows a crashed run left behind.
    pub async fn start(ws: &'w Workspace) -> Result<ApplyRun<'w>, OpsError> {
        let client = ws.client()?;
        let lock = ws.lock("apply").await?;
        let existing = ws.load_state().await?;
        let state_exists = existing.is_some();
        let state = existing.unwrap_or_else(|| ws.fresh_state());
        let healed = super::repair::repair_rows(ws, &client, &state, None).await?;
        Ok(ApplyRun {
            ws,
            client,
            state,
            state_exists,
            healed,
            _lock: lock,
        })
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
        Ok(saved)
    }

    /// A fresh plan from the state this run holds.
    pub async fn plan(&self, opts: &PlanOptions) -> Result<Plan, OpsError> {
        super::plan::check_targets(self.ws, &self.state, opts)?;
        self.ws.plan(&self.client, &self.state, opts).await
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

/// The one way anything is applied: `plan` carried out from `state` (held under the lock by
/// the caller) by the executor, every id recorded as it comes through `ws`'s state writer (and
/// written back to the inventory when it takes them). The CLI's [`ApplyRun`] and the
/// controller call it; the writer is handed back to be settled or read.
pub async fn apply_plan(
    ws: &Workspace,
    client: &Client,
    plan: &Plan,
    state: State,
    progress: &dyn Progress,
) -> (Report, StateWriter) {
    let writer = ws.writer(state);
    let report = apply::apply_with(ws.kinds(), plan, client, &writer, progress).await;
    (report, writer)
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
