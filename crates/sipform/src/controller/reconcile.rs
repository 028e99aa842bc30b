//! One reconcile: a targeted plan and apply of a few restaurants, with `apply`'s guarantees.
//!
//! The rows are read by id, rendered and validated with the configuration in use; then, under
//! the state lock (held for this batch only, so CI's `apply` waits at most one batch), state is
//! read, the server is refreshed for these restaurants only, and the plan is applied by the
//! same executor as `apply`: every id recorded (and written back to its row) before anything
//! depends on it, a failed create re-read before any retry. Each restaurant gets a verdict the
//! queue acts on, and one log line.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use super::cache::{Cache, CachedServer, Recorder};
use crate::apply::{self, ApplyError, Outcome, Report};
use crate::config::Settings;
use crate::inventory::Inventory;
use crate::model::ids::{ObjectId, RestaurantId};
use crate::ops::plan::PlanOptions;
use crate::ops::{self, OpsError, Workspace};
use crate::plan::Plan;
use crate::remote::Client;
use crate::resources::Kinds;
use crate::state::State;
use crate::state::StateBackend;
use crate::LOG_TARGET;

/// What a reconcile needs that outlives it.
pub struct Ctx<'a> {
    pub settings: &'a Settings,
    pub backend: Arc<dyn StateBackend>,
    /// Where restaurants come from.
    pub inventory: &'a dyn Inventory,
    pub client: &'a Client,
    /// The kinds of server object, built once by the controller.
    pub kinds: &'a Kinds,
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
        // Out of file descriptors (EMFILE, ENFILE) passes: never a reason to park.
        other => crate::fsio::out_of_file_descriptors(other),
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
    } else if e.is_transient()
        || matches!(e, ApplyError::State(s) if s.is_transient())
        || crate::fsio::out_of_file_descriptors(e)
    {
        Verdict::Transient(e.to_string())
    } else {
        Verdict::Fatal(e.to_string())
    }
}

/// Reconciles `ids`. Never fails as a whole: every restaurant asked for gets a verdict.
pub async fn reconcile(
    ctx: &Ctx<'_>,
    ids: &BTreeSet<RestaurantId>,
    cache: &mut Cache,
) -> Vec<(RestaurantId, Verdict)> {
    let started = Instant::now();
    let verdicts = match run(ctx, ids, cache).await {
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
    cache: &mut Cache,
) -> Result<Vec<(RestaurantId, Verdict)>, OpsError> {
    let read = ctx.inventory.read_some(ids).await?;
    let ws = Workspace::for_read(
        ctx.settings.clone(),
        ctx.backend.clone(),
        ctx.inventory,
        read,
        ctx.kinds.clone(),
    )?;
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
    if targets.is_empty() {
        return Ok(verdicts);
    }
    let t = Instant::now();
    let _lock = ws.lock("controller").await?;
    tracing::debug!(target: LOG_TARGET, "reconcile: rows read and checked, state locked in {} ms", t.elapsed().as_millis());
    let mut found: BTreeMap<RestaurantId, Verdict> = BTreeMap::new();
    let mut round = targets;
    // A second round for the restaurants the server answered 404 or 409: the cache was
    // wrong about them; they are re-read and planned again at once.
    for _ in 0..2 {
        let (v, again) = cached_round(ctx, &ws, &round, cache).await?;
        found.extend(v);
        if again.is_empty() {
            break;
        }
        round = again;
    }
    verdicts.extend(found);
    Ok(verdicts)
}

fn plan_options(ctx: &Ctx<'_>, targets: &BTreeSet<RestaurantId>) -> PlanOptions {
    PlanOptions {
        allow_destroy: ctx.allow_destroy,
        allow_replace: false,
        targets: targets.clone(),
        only_changes: false,
    }
}

/// Applies `plan` when it changes anything; the report, and the account's id state holds
/// after it.
async fn apply_if_needed(
    ctx: &Ctx<'_>,
    ws: &Workspace,
    plan: &Plan,
    state: State,
    progress: &dyn apply::Progress,
) -> (Option<Report>, Option<ObjectId>) {
    if plan.restaurants.iter().any(|r| r.has_changes()) || plan.account.op().is_change() {
        let (report, writer) = ops::apply::apply_plan(ws, ctx.client, plan, state, progress).await;
        let account = writer.read(|s| s.account_id.as_ref().and_then(|a| a.to_object_id().ok()));
        (Some(report), account)
    } else {
        (None, None)
    }
}

/// One plan + apply of `targets` against the cache (under the state lock); the verdicts, and
/// the restaurants to try again now (the server said 404 or 409: the cache was wrong).
async fn cached_round(
    ctx: &Ctx<'_>,
    ws: &Workspace,
    targets: &BTreeSet<RestaurantId>,
    cache: &mut Cache,
) -> Result<(Vec<(RestaurantId, Verdict)>, BTreeSet<RestaurantId>), OpsError> {
    let kinds = ws.kinds();
    let mut lap = Lap(Instant::now(), Vec::new());
    let state = ws.state().await?;
    lap.mark("state");
    let mut server = CachedServer {
        cache: &mut *cache,
        client: ctx.client,
        account_name: &ctx.settings.account.name,
    };
    let planned = ops::plan::plan_over(ws, &state, &plan_options(ctx, targets), &mut server).await;
    let plan = match planned {
        Ok(p) => p,
        Err(e) => {
            targets.iter().for_each(|t| cache.forget(t));
            return Err(e);
        }
    };
    let recorder = Recorder::default();
    lap.mark("plan");
    let (report, account) = apply_if_needed(ctx, ws, &plan, state, &recorder).await;
    lap.mark("apply");
    let mut again = BTreeSet::new();
    if let Some(r) = &report {
        let failed: Vec<&Outcome> = r.outcomes.iter().filter(|o| o.error.is_some()).collect();
        again.extend(
            failed
                .iter()
                .filter(|o| o.error.as_ref().is_some_and(wrong_cache))
                .map(|o| o.restaurant.clone()),
        );
        cache.applied(kinds, &plan, recorder, &failed, account);
        if r.account_error.is_some() {
            cache.invalidate();
        }
        // Part of making the account: the next restaurant costs its writes only. A failure
        // leaves them due at the next plan.
        if let Err(e) = cache.read_plans_if_due(kinds, ctx.client).await {
            cache.invalidate();
            tracing::debug!(target: LOG_TARGET, "controller: reading the new account's plans: {e}");
        }
    }
    lap.mark("cache update");
    tracing::debug!(target: LOG_TARGET, "reconcile of {} restaurant(s): {}", targets.len(), lap.1.join(", "));
    Ok((verdicts_of(&plan, report.as_ref(), targets), again))
}

/// Where a reconcile's time goes, for the debug log.
struct Lap(Instant, Vec<String>);

impl Lap {
    fn mark(&mut self, what: &str) {
        self.1
            .push(format!("{what} {} ms", self.0.elapsed().as_millis()));
        self.0 = Instant::now();
    }
}

/// A 404 or 409 from the server: what the cache said was not so.
fn wrong_cache(e: &ApplyError) -> bool {
    match e {
        ApplyError::Server { source, .. } => matches!(source.status(), Some(404 | 409)),
        ApplyError::Several { first, .. } => wrong_cache(first),
        _ => false,
    }
}

/// Each restaurant's verdict from the plan and what apply did.
fn verdicts_of(
    plan: &Plan,
    report: Option<&Report>,
    targets: &BTreeSet<RestaurantId>,
) -> Vec<(RestaurantId, Verdict)> {
    if let Some(e) = report.and_then(|r| r.account_error.as_ref()) {
        let v = verdict_of_apply(e);
        return targets.iter().map(|id| (id.clone(), v.clone())).collect();
    }
    let mut verdicts = Vec::new();
    for rp in &plan.restaurants {
        let outcome =
            report.and_then(|r| r.outcomes.iter().find(|o| o.restaurant == rp.restaurant_id));
        let v = match outcome {
            Some(o) => match &o.error {
                Some(e) => verdict_of_apply(e),
                None => Verdict::Done { changes: o.done },
            },
            None => Verdict::Done { changes: 0 },
        };
        let v = match v {
            Verdict::Done { .. } if !rp.notes.is_empty() => Verdict::Held(rp.notes.join("; ")),
            v => v,
        };
        verdicts.push((rp.restaurant_id.clone(), v));
    }
    let seen: BTreeSet<&RestaurantId> = plan.restaurants.iter().map(|r| &r.restaurant_id).collect();
    // Asked for, with nothing to say: up to date (or no row and nothing in state).
    verdicts.extend(
        targets
            .iter()
            .filter(|id| !seen.contains(id))
            .map(|id| (id.clone(), Verdict::Done { changes: 0 })),
    );
    verdicts
}
