//! One reconcile: a targeted plan and apply of a few restaurants, with `apply`'s guarantees.
//!
//! The rows are read by id, rendered and validated with the configuration in use; then, under
//! the state lock (held for this batch only, so CI's `apply` waits at most one batch), state is
//! read, the server is refreshed for these restaurants only, and the plan is applied by the
//! same executor as `apply`: every id recorded (and written back to its row) before anything
//! depends on it, a failed create re-read before any retry. Each restaurant gets a verdict the
//! queue acts on, and one log line.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use crate::apply::{self, ApplyError, Silent};
use crate::config::Settings;
use crate::inventory::PlatformTable;
use crate::model::ids::RestaurantId;
use crate::ops::plan::PlanOptions;
use crate::ops::{OpsError, Workspace};
use crate::remote::Client;
use crate::state::StateBackend;
use crate::LOG_TARGET;

/// What a reconcile needs that outlives it.
pub struct Ctx<'a> {
    pub settings: &'a Settings,
    pub backend: Arc<dyn StateBackend>,
    /// The platform's table; `None` for a files inventory (read whole at each reconcile).
    pub table: Option<&'a PlatformTable>,
    pub client: &'a Client,
    pub allow_destroy: bool,
}

/// How one restaurant's reconcile ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Matches its row now; `changes` actions were carried out.
    Done { changes: usize },
    /// Failed in a way worth retrying later (server or database down, lock held).
    Transient(String),
    /// Will fail again until someone changes something (an invalid row, a 4xx).
    Fatal(String),
    /// Not started: the controller is stopping.
    NotStarted,
    /// Something looks due but is not done: a row deleted without `--allow-destroy`.
    Held(String),
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Done { changes: 0 } => "unchanged",
            Verdict::Done { .. } => "changed",
            Verdict::Transient(_) => "transient",
            Verdict::Fatal(_) => "fatal",
            Verdict::NotStarted => "not_started",
            Verdict::Held(_) => "held",
        }
    }
}

/// Whether `e` may go away by itself.
pub fn ops_is_transient(e: &OpsError) -> bool {
    match e {
        OpsError::Server { source, .. } => source.is_transient(),
        OpsError::State(e) => e.is_transient(),
        OpsError::Database(e) => e.is_transient(),
        _ => false,
    }
}

fn verdict_of_ops(e: &OpsError) -> Verdict {
    if ops_is_transient(e) {
        Verdict::Transient(e.to_string())
    } else {
        Verdict::Fatal(e.to_string())
    }
}

fn verdict_of_apply(e: &ApplyError) -> Verdict {
    if e.is_halt() {
        Verdict::NotStarted
    } else if e.is_transient() || matches!(e, ApplyError::State(s) if s.is_transient()) {
        Verdict::Transient(e.to_string())
    } else {
        Verdict::Fatal(e.to_string())
    }
}

/// Reconciles `ids` (every restaurant when empty, which only a files inventory asks for).
/// Never fails as a whole: every restaurant asked for gets a verdict.
pub async fn reconcile(
    ctx: &Ctx<'_>,
    ids: &BTreeSet<RestaurantId>,
) -> Vec<(RestaurantId, Verdict)> {
    let started = Instant::now();
    let verdicts = match run(ctx, ids).await {
        Ok(v) => v,
        Err(e) => {
            let v = verdict_of_ops(&e);
            ids.iter().map(|id| (id.clone(), v.clone())).collect()
        }
    };
    let ms = started.elapsed().as_millis();
    for (id, v) in &verdicts {
        log(id, v, ms);
    }
    verdicts
}

/// One line per restaurant under `sip-provisioning`. Messages come from typed errors, which
/// never carry a secret.
fn log(id: &RestaurantId, v: &Verdict, ms: u128) {
    match v {
        Verdict::Done { changes: 0 } => {
            tracing::debug!(target: LOG_TARGET, restaurant = %id, "reconciled: up to date ({ms} ms)")
        }
        Verdict::Done { changes } => tracing::info!(
            target: LOG_TARGET, restaurant = %id, "reconciled: {changes} change(s) applied ({ms} ms)"
        ),
        Verdict::Transient(e) => tracing::warn!(
            target: LOG_TARGET, restaurant = %id, "reconcile failed, will retry: {e}"
        ),
        Verdict::Fatal(e) => tracing::error!(
            target: LOG_TARGET, restaurant = %id, "reconcile failed, parked until its row changes: {e}"
        ),
        Verdict::NotStarted => tracing::info!(
            target: LOG_TARGET, restaurant = %id, "reconcile not started: stopping"
        ),
        Verdict::Held(why) => tracing::warn!(
            target: LOG_TARGET, restaurant = %id, "reconcile held: {why}"
        ),
    }
}

async fn run(
    ctx: &Ctx<'_>,
    ids: &BTreeSet<RestaurantId>,
) -> Result<Vec<(RestaurantId, Verdict)>, OpsError> {
    let ws = match ctx.table {
        Some(table) => {
            let rows = table.read_some(ids).await?;
            Workspace::for_rows(
                ctx.settings.clone(),
                ctx.backend.clone(),
                table.clone(),
                rows,
            )?
        }
        None => Workspace::load(ctx.settings.clone()).await?,
    };
    let mut verdicts: Vec<(RestaurantId, Verdict)> = Vec::new();
    let mut skipped = BTreeSet::new();
    for s in ws.skipped() {
        if let Some(id) = &s.id {
            let id = RestaurantId::new(id.as_str());
            skipped.insert(id.clone());
            verdicts.push((id, Verdict::Fatal(s.diagnostics.to_string())));
        }
    }
    let targets: BTreeSet<RestaurantId> = ids.difference(&skipped).cloned().collect();
    if targets.is_empty() && !ids.is_empty() {
        return Ok(verdicts);
    }
    let _lock = ws.lock("controller").await?;
    let state = ws.state().await?;
    let opts = PlanOptions {
        allow_destroy: ctx.allow_destroy,
        allow_replace: false,
        targets: targets.clone(),
    };
    let plan = ws.plan(ctx.client, &state, &opts).await?;
    let report =
        if plan.restaurants.iter().any(|r| r.has_changes()) || plan.account.op().is_change() {
            Some(apply::apply(&plan, ctx.client, &ws.writer(state), &Silent).await)
        } else {
            None
        };
    if let Some(e) = report.as_ref().and_then(|r| r.account_error.as_ref()) {
        let v = verdict_of_apply(e);
        verdicts.extend(targets.iter().map(|id| (id.clone(), v.clone())));
        return Ok(verdicts);
    }
    let seen: BTreeSet<RestaurantId> = plan
        .restaurants
        .iter()
        .map(|r| r.restaurant_id.clone())
        .collect();
    for rp in &plan.restaurants {
        let outcome = report
            .as_ref()
            .and_then(|r| r.outcomes.iter().find(|o| o.restaurant == rp.restaurant_id));
        let v = match outcome {
            Some(o) => match &o.error {
                Some(e) => verdict_of_apply(e),
                None => Verdict::Done { changes: o.done },
            },
            None if !rp.notes.is_empty() => Verdict::Held(rp.notes.join("; ")),
            None => Verdict::Done { changes: 0 },
        };
        let v = match v {
            Verdict::Done { .. } if !rp.notes.is_empty() => Verdict::Held(rp.notes.join("; ")),
            v => v,
        };
        verdicts.push((rp.restaurant_id.clone(), v));
    }
    // Asked for, with nothing to say: up to date (or no row and nothing in state).
    verdicts.extend(
        targets
            .iter()
            .filter(|id| !seen.contains(*id))
            .map(|id| (id.clone(), Verdict::Done { changes: 0 })),
    );
    Ok(verdicts)
}
