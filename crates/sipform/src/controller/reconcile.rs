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
use crate::ops::guardrails::{self, Counts, Refused};
use crate::ops::plan::PlanOptions;
use crate::ops::status::{describe_action, describe_changes};
use crate::ops::{self, OpsError, Workspace};
use crate::plan::{Op, Plan};
use crate::remote::Client;
use crate::resources::Kinds;
use crate::state::State;
use crate::state::StateBackend;
use crate::LOG_TARGET;

/// What a reconcile needs that outlives it.
pub struct Ctx<'a> {
    pub settings: &'a Settings,
    /// The configuration's revision (its files are a copy, not a repository).
    pub revision: &'a crate::revision::Revision,
    pub backend: Arc<dyn StateBackend>,
    /// Where restaurants come from.
    pub inventory: &'a dyn Inventory,
    pub client: &'a Client,
    /// The kinds of server object, built once by the controller.
    pub kinds: &'a Kinds,
    pub allow_destroy: bool,
    /// `--allow-changes N` (see [`crate::ops::guardrails::enforce`]).
    pub allow_changes: Option<u64>,
    /// What the controller applied over the guardrails' window before this batch: a batch
    /// is judged with it.
    pub recent: Counts,
    /// `--ignore-windows`: change windows and live calls hold nothing.
    pub ignore_windows: bool,
    /// The stable revision's files new restaurants are created from while a rollout is in
    /// progress, taken once per rollout.
    pub stable: &'a ops::rollout::StableCache,
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
    /// Suspended in state (`sipform suspend`): left as it is.
    Suspended,
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
            Verdict::Suspended => "suspended",
        }
    }
}

/// Whether `e` may go away by itself.
pub(crate) fn ops_is_transient(e: &OpsError) -> bool {
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

/// What a batch's reconcile found: a verdict per restaurant asked for, what its plan said of
/// each (name, what changed) for the logs and the status board, and what it showed of the
/// server.
#[derive(Debug, Default)]
pub struct Batch {
    pub verdicts: Vec<(RestaurantId, Verdict)>,
    pub said: BTreeMap<RestaurantId, Said>,
    /// A call got no answer (refused, timed out), or the account's own calls failed: the
    /// server, not one tenant, is the problem.
    pub unreachable: bool,
    /// What the guardrails made of the batch.
    pub guard: GuardNote,
}

/// The guardrails' word on a batch: refused (nothing applied, its restaurants held), or what
/// was applied, counted for the window.
#[derive(Debug, Default)]
pub struct GuardNote {
    pub refused: Option<Refused>,
    pub applied: Counts,
}

impl Batch {
    /// Whether the server is up as far as this batch tells (`None`: it tells nothing). An
    /// error the server answered for one restaurant (a 500 on its agent) is that tenant's.
    pub(crate) fn server_up(&self) -> Option<bool> {
        let done = self
            .verdicts
            .iter()
            .any(|(_, v)| matches!(v, Verdict::Done { .. } | Verdict::Held(_)));
        if self.unreachable && !done {
            Some(false)
        } else if done || !self.verdicts.is_empty() {
            Some(true)
        } else {
            None
        }
    }
}

/// Whether `e` means the server did not answer at all.
fn unanswered(e: &crate::remote::ClientError) -> bool {
    e.is_transient() && e.status().is_none()
}

/// A restaurant as its plan names it, and what its plan changes (`agent name`,
/// `tool end_call: description`): field names only, never a value.
#[derive(Debug, Default, Clone)]
pub struct Said {
    pub name: String,
    pub changed: Vec<String>,
    /// Its plan creates its agent (the restaurant goes live).
    pub created_agent: bool,
    /// Its changes wait (a change window, live calls): why, and until when it is known.
    pub hold: Option<(
        crate::plan::HoldReason,
        Option<chrono::DateTime<chrono::Utc>>,
    )>,
}

/// Reconciles `ids`. Never fails as a whole: every restaurant asked for gets a verdict.
pub async fn reconcile(ctx: &Ctx<'_>, ids: &BTreeSet<RestaurantId>, cache: &mut Cache) -> Batch {
    let started = Instant::now();
    let batch = match run(ctx, ids, cache).await {
        Ok(b) => b,
        Err(e) => {
            let v = verdict_of_ops(&e);
            Batch {
                verdicts: ids.iter().map(|id| (id.clone(), v.clone())).collect(),
                said: BTreeMap::new(),
                unreachable: matches!(&e, OpsError::Server { source, .. } if unanswered(source)),
                guard: GuardNote::default(),
            }
        }
    };
    let ms = started.elapsed().as_millis();
    for (id, v) in &batch.verdicts {
        log(id, batch.said.get(id), v, ms);
    }
    batch
}

/// One line per restaurant under `sip-provisioning`, naming it (name and id) and what changed.
/// Messages come from typed errors and field names, which never carry a secret; the name is
/// tenant data, escaped.
fn log(id: &RestaurantId, said: Option<&Said>, v: &Verdict, ms: u128) {
    // `"Pizzeria Napoli" (3f6c…)`, or the id alone when no row or plan named it.
    let who = match said {
        Some(s) => format!("\"{}\" ({id})", crate::escape::escape(&s.name)),
        None => format!("restaurant {id}"),
    };
    match v {
        Verdict::Done { changes: 0 } => {
            tracing::debug!(target: LOG_TARGET, restaurant = %id, "reconciled {who}: up to date ({ms} ms)")
        }
        Verdict::Done { changes } => {
            let what = said.map_or(String::new(), |s| describe_changes(&s.changed));
            tracing::info!(
                target: LOG_TARGET, restaurant = %id,
                "reconciled {who}: {changes} change(s) applied: {what} ({ms} ms)"
            )
        }
        Verdict::Suspended => tracing::debug!(
            target: LOG_TARGET, restaurant = %id, "{who} is suspended: left as it is"
        ),
        Verdict::Transient(e) => tracing::warn!(
            target: LOG_TARGET, restaurant = %id, "reconcile of {who} failed, will retry: {e}"
        ),
        Verdict::Fatal(e) => tracing::error!(
            target: LOG_TARGET, restaurant = %id, "reconcile of {who} failed, parked until its row changes: {e}"
        ),
        Verdict::NotStarted => tracing::info!(
            target: LOG_TARGET, restaurant = %id, "reconcile of {who} not started: stopping"
        ),
        Verdict::Held(why) => tracing::warn!(
            target: LOG_TARGET, restaurant = %id, "reconcile of {who} held: {why}"
        ),
    }
}

/// What each restaurant's plan changes, by object and field (`agent name`,
/// `tool end_call: description`, `create tool end_call`).
fn said_of(plan: &Plan) -> BTreeMap<RestaurantId, Said> {
    plan.restaurants
        .iter()
        .map(|rp| {
            let changed = rp
                .actions
                .iter()
                .filter(|a| a.op().is_change())
                .map(describe_action)
                .collect();
            (
                rp.restaurant_id.clone(),
                Said {
                    name: rp.name.clone(),
                    changed,
                    created_agent: rp.actions.iter().any(|a| {
                        a.op() == Op::Create && a.resource() == crate::plan::Resource::AGENT
                    }),
                    hold: None,
                },
            )
        })
        .collect()
}

async fn run(
    ctx: &Ctx<'_>,
    ids: &BTreeSet<RestaurantId>,
    cache: &mut Cache,
) -> Result<Batch, OpsError> {
    let read = ctx.inventory.read_some(ids).await?;
    let ws = Workspace::for_read(
        no_call_wait(ctx.settings),
        ctx.backend.clone(),
        ctx.inventory,
        read,
        ctx.kinds.clone(),
    )?
    .with_revision(ctx.revision.clone());
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
        return Ok(Batch {
            verdicts,
            said: BTreeMap::new(),
            unreachable: false,
            guard: GuardNote::default(),
        });
    }
    let t = Instant::now();
    let _lock = ws.lock("controller").await?;
    tracing::debug!(target: LOG_TARGET, "reconcile: rows read and checked, state locked in {} ms", t.elapsed().as_millis());
    let mut found: BTreeMap<RestaurantId, Verdict> = BTreeMap::new();
    let mut said = BTreeMap::new();
    let mut unreachable = false;
    let mut round = targets.clone();
    let mut state: Option<State> = None;
    let mut guard = GuardNote::default();
    // A second round for the restaurants the server answered 404 or 409: the cache was
    // wrong about them; they are re-read and planned again at once.
    for _ in 0..2 {
        let (v, s, again, down, after) = cached_round(ctx, &ws, &round, cache, &mut guard).await?;
        found.extend(v);
        said.extend(s);
        unreachable |= down;
        if again.is_empty() {
            state = Some(after);
            break;
        }
        // The second round starts from it.
        cache.keep_state(after);
        round = again;
    }
    let state = state.or_else(|| cache.take_state());
    if let Some(state) = repair_rows(ctx, cache, &ws, &targets, state, &mut found).await {
        cache.keep_state(state);
    }
    verdicts.extend(found);
    Ok(Batch {
        verdicts,
        said,
        unreachable,
        guard,
    })
}

/// The rows of `targets` whose written-back ids or tokens are not state's are rewritten (the
/// platform's settings page saved a stale whole object), even when the plan changed nothing; a
/// row naming another project's agent is held, never overwritten. Gives the state back, for
/// the next batch to reuse.
async fn repair_rows(
    ctx: &Ctx<'_>,
    cache: &mut Cache,
    ws: &Workspace,
    targets: &BTreeSet<RestaurantId>,
    state: Option<State>,
    found: &mut BTreeMap<RestaurantId, Verdict>,
) -> Option<State> {
    // State as the last round left it (still under the lock): no second load.
    let state = match state {
        Some(s) => Ok(s),
        None => ws.state().await,
    };
    let (repaired, state) = match state {
        Ok(mut state) => {
            let before = (state.lineage, state.serial);
            let repaired =
                ops::repair::repair_rows(ws, ctx.client, &mut state, Some(targets)).await;
            cache.state_written(ctx.kinds, before, &state, targets);
            (repaired, Some(state))
        }
        Err(e) => (Err(e), None),
    };
    match repaired {
        Ok(r) => {
            for f in r.foreign {
                found.insert(f.restaurant.clone(), Verdict::Held(f.message()));
            }
        }
        Err(e) => {
            let v = verdict_of_ops(&e);
            for t in targets {
                found.entry(t.clone()).and_modify(|old| {
                    if matches!(old, Verdict::Done { .. }) {
                        *old = v.clone();
                    }
                });
            }
        }
    }
    state
}

/// The settings a reconcile runs with: an agent in a call is held at once instead of waited
/// for, since the wait would hold the state lock (CI's apply and every other batch behind it);
/// the queue reads its calls again after `windows.live_call_check` (see `run::wake_at`).
fn no_call_wait(settings: &Settings) -> Settings {
    let mut s = settings.clone();
    if s.windows.live_call_wait.is_some() {
        s.windows.live_call_wait = Some("0s".into());
    }
    s
}

fn plan_options(ctx: &Ctx<'_>, targets: &BTreeSet<RestaurantId>) -> PlanOptions {
    PlanOptions {
        allow_destroy: ctx.allow_destroy,
        allow_replace: false,
        targets: targets.clone(),
        only_changes: false,
        allow_rollback: false,
        allow_dirty: false,
        ignore_windows: ctx.ignore_windows,
    }
}

/// Applies `plan` when it does anything, adoptions included (an adopt writes state: a create
/// a killed run sent but never recorded is recorded here, as the CLI's apply does); the report,
/// and the account's id state holds after it.
async fn apply_if_needed(
    ctx: &Ctx<'_>,
    ws: &Workspace,
    plan: &Plan,
    state: State,
    progress: &dyn apply::Progress,
    cache: &mut Cache,
) -> (Option<Report>, Option<ObjectId>, State) {
    if plan.actions().any(|a| a.op() != Op::NoOp) {
        let (report, writer) = ops::apply::apply_plan(ws, ctx.client, plan, state, progress).await;
        if writer.is_poisoned() {
            // Memory holds what may not be durable: nothing is followed from it.
            cache.forget_owners();
        }
        // Taken, not copied: a copy of every restaurant's ids per batch.
        let after = writer.into_state();
        let account = after
            .account_id
            .as_ref()
            .and_then(|a| a.to_object_id().ok());
        (Some(report), account, after)
    } else {
        (None, None, state)
    }
}

/// `plan` under the rollout policy (`ops::rollout::controller::hold`): the plan to apply,
/// the held restaurants with why, whether a rollout is in progress, and the new restaurants
/// to create at the stable revision first.
async fn rollout_hold(
    ctx: &Ctx<'_>,
    ws: &Workspace,
    plan: Plan,
    state: &mut State,
) -> Result<(Plan, BTreeMap<RestaurantId, String>, bool, AtStable), OpsError> {
    let held = ops::rollout::controller::hold(ws, &plan, state, ctx.revision, ctx.stable).await?;
    let plan = held.plan.unwrap_or(plan);
    Ok((plan, held.held, held.rolling, held.at_stable))
}

/// New restaurants to create at a rollout's stable revision, with its files.
type AtStable = Option<(Arc<ops::rollout::StableFiles>, BTreeSet<RestaurantId>)>;

/// What [`create_at_stable`] did: the verdicts and what the plan said of the restaurants it
/// created, which the batch's plan then leaves out.
#[derive(Default)]
struct Arrivals {
    verdicts: Vec<(RestaurantId, Verdict)>,
    said: BTreeMap<RestaurantId, Said>,
    created: BTreeSet<RestaurantId>,
}

/// Creates `at_stable`'s new restaurants from the stable revision's files, planned against
/// the cache and applied like any batch (state records the stable revision for them; their
/// wave moves them). One the stable files do not provision, or any failure before sending,
/// stays in the batch's plan: created at the rolled-out revision, never delayed.
///
/// `read` is the (lineage, serial) of the state the batch read, before the rollout recorded
/// itself in it (which changes no restaurant's ids): the kept owners follow.
async fn create_at_stable(
    ctx: &Ctx<'_>,
    cache: &mut Cache,
    at_stable: AtStable,
    state: State,
    read: (uuid::Uuid, u64),
) -> (Arrivals, State) {
    cache.state_written(ctx.kinds, read, &state, std::iter::empty());
    let Some((files, ids)) = at_stable else {
        return (Arrivals::default(), state);
    };
    let planned = async {
        let read = ctx.inventory.read_some(&ids).await?;
        let ws = Workspace::for_read(
            no_call_wait(&files.settings),
            ctx.backend.clone(),
            ctx.inventory,
            read,
            ctx.kinds.clone(),
        )?
        .with_revision(files.revision.clone());
        let mut server = CachedServer {
            cache: &mut *cache,
            client: ctx.client,
            account_name: &ctx.settings.account.name,
        };
        let mut plan =
            ops::plan::plan_over(&ws, &state, &plan_options(ctx, &ids), &mut server).await?;
        plan.restaurants.retain(|r| r.has_changes());
        plan.summary = crate::plan::Summary::of(plan.actions());
        Ok::<_, OpsError>((ws, plan))
    };
    let (ws, plan) = match planned.await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(target: LOG_TARGET, "controller: {} new restaurant(s) created at the rolled-out revision: planning them at the stable revision {}: {e}", ids.len(), files.revision.short());
            return (Arrivals::default(), state);
        }
    };
    let created: BTreeSet<RestaurantId> = plan
        .restaurants
        .iter()
        .map(|r| r.restaurant_id.clone())
        .collect();
    let recorder = Recorder::default();
    let before = (state.lineage, state.serial);
    let (report, account, after) = apply_if_needed(ctx, &ws, &plan, state, &recorder, cache).await;
    cache.state_written(ctx.kinds, before, &after, &created);
    if let Some(r) = &report {
        let failed: Vec<&Outcome> = r.outcomes.iter().filter(|o| o.error.is_some()).collect();
        cache.applied(ctx.kinds, &plan, recorder, &failed, account);
    }
    let why = format!(
        "rollout: created at the stable revision {}; its wave moves it",
        files.revision.short()
    );
    let verdicts = verdicts_of(&plan, report.as_ref(), &created)
        .into_iter()
        .map(|(id, v)| match v {
            Verdict::Done { .. } => (id, Verdict::Held(why.clone())),
            other => (id, other),
        })
        .collect();
    let arrivals = Arrivals {
        verdicts,
        said: said_of(&plan),
        created,
    };
    (arrivals, after)
}

/// A round's verdicts, what its plan said of each restaurant, the restaurants to try again
/// now, whether the server was unreachable (see [`Batch::unreachable`]), and state as the
/// round left it.
type Round = (
    Vec<(RestaurantId, Verdict)>,
    BTreeMap<RestaurantId, Said>,
    BTreeSet<RestaurantId>,
    bool,
    State,
);

/// One plan + apply of `targets` against the cache (under the state lock); the verdicts, and
/// the restaurants to try again now (the server said 404 or 409: the cache was wrong).
async fn cached_round(
    ctx: &Ctx<'_>,
    ws: &Workspace,
    targets: &BTreeSet<RestaurantId>,
    cache: &mut Cache,
    guard: &mut GuardNote,
) -> Result<Round, OpsError> {
    let kinds = ws.kinds();
    let mut lap = Lap(Instant::now(), Vec::new());
    let mut state = cache.state_for(ws).await?;
    let read = (state.lineage, state.serial);
    let suspended: BTreeSet<RestaurantId> = targets
        .iter()
        .filter(|id| state.restaurants.get(*id).is_some_and(|r| r.suspended))
        .cloned()
        .collect();
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
    let (mut plan, waiting, rolling, at_stable) = rollout_hold(ctx, ws, plan, &mut state).await?;
    let (arrived, state) = create_at_stable(ctx, cache, at_stable, state, read).await;
    let before = (state.lineage, state.serial);
    arrived.leave_out(&mut plan);
    let recorder = Recorder::default();
    lap.mark("plan");
    if let Some(held) = over_guardrails(ctx, ws, &plan, &state, guard) {
        return Ok((held, said_of(&plan), BTreeSet::new(), false, state));
    }
    let (report, account, mut after) =
        apply_if_needed(ctx, ws, &plan, state, &recorder, cache).await;
    if report.is_none() && rolling {
        // Checked at the rollout's revision: the wave counts them done.
        after = ops::apply::record_checked_in(ws, &plan, after).await?;
    }
    let wrote = targets
        .iter()
        .chain(plan.restaurants.iter().map(|r| &r.restaurant_id));
    cache.state_written(kinds, before, &after, wrote);
    lap.mark("apply");
    let mut again = BTreeSet::new();
    let unreachable = report.as_ref().is_some_and(server_down);
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
    let mut verdicts = verdicts_of(&plan, report.as_ref(), targets);
    set_aside(&mut verdicts, &waiting, &suspended);
    let mut said = said_of(&plan);
    arrive(arrived, &mut verdicts, &mut said);
    held(report.as_ref(), &mut verdicts, &mut said);
    Ok((verdicts, said, again, unreachable, after))
}

/// Restaurants whose wave has not started are held; those the plan left out because they are
/// suspended are suspended, not up to date.
fn set_aside(
    verdicts: &mut [(RestaurantId, Verdict)],
    waiting: &BTreeMap<RestaurantId, String>,
    suspended: &BTreeSet<RestaurantId>,
) {
    for (id, v) in verdicts {
        if let Some(why) = waiting.get(id) {
            *v = Verdict::Held(why.clone());
        }
        if suspended.contains(id) {
            *v = Verdict::Suspended;
        }
    }
}

impl Arrivals {
    /// The batch's plan without the restaurants created at the stable revision.
    fn leave_out(&self, plan: &mut Plan) {
        if !self.created.is_empty() {
            plan.restaurants
                .retain(|r| !self.created.contains(&r.restaurant_id));
            plan.summary = crate::plan::Summary::of(plan.actions());
        }
    }
}

/// The verdicts of the new restaurants created at the stable revision replace the batch's.
fn arrive(
    arrived: Arrivals,
    verdicts: &mut Vec<(RestaurantId, Verdict)>,
    said: &mut BTreeMap<RestaurantId, Said>,
) {
    verdicts.retain(|(id, _)| !arrived.created.contains(id));
    verdicts.extend(arrived.verdicts);
    said.extend(arrived.said);
}

/// The restaurants apply held (a change window, live calls): held, not done, with when to
/// come back.
fn held(
    report: Option<&Report>,
    verdicts: &mut [(RestaurantId, Verdict)],
    said: &mut BTreeMap<RestaurantId, Said>,
) {
    for h in report.map(|r| r.held.as_slice()).unwrap_or_default() {
        if let Some((_, v)) = verdicts.iter_mut().find(|(id, _)| id == &h.restaurant_id) {
            *v = Verdict::Held(h.message.clone());
        }
        said.entry(h.restaurant_id.clone()).or_default().hold = Some((h.reason, h.until));
    }
}

/// A plan over the guardrails (with what the window holds) unless `--allow-changes` covers
/// it: nothing is applied, and each restaurant with changes is held with the reason (the next
/// resync or a row change judges it again). `None`: go ahead (its counts noted for the window).
fn over_guardrails(
    ctx: &Ctx<'_>,
    ws: &Workspace,
    plan: &Plan,
    state: &State,
    guard: &mut GuardNote,
) -> Option<Vec<(RestaurantId, Verdict)>> {
    let counts = Counts::of(plan);
    let breaches = guardrails::judge(
        &ws.settings().guardrails,
        counts.plus(ctx.recent),
        guardrails::fleet(plan, state),
    );
    match guardrails::enforce(&breaches, ctx.allow_changes) {
        Ok(()) => {
            guard.applied = guard.applied.plus(counts);
            None
        }
        Err(refused) => {
            let why = refused.to_string();
            guard.refused = Some(refused);
            let held = plan.restaurants.iter().map(|rp| {
                let v = if rp.has_changes() {
                    Verdict::Held(why.clone())
                } else {
                    Verdict::Done { changes: 0 }
                };
                (rp.restaurant_id.clone(), v)
            });
            Some(held.collect())
        }
    }
}

/// Whether an apply's failures are the server's rather than its tenants': a call that got no
/// answer, or the account's own call failing.
fn server_down(r: &Report) -> bool {
    fn no_answer(e: &ApplyError) -> bool {
        match e {
            ApplyError::Server { source, .. } => unanswered(source),
            ApplyError::Several { first, .. } => no_answer(first),
            _ => false,
        }
    }
    r.account_error.as_ref().is_some_and(|e| e.is_transient())
        || r.outcomes
            .iter()
            .filter_map(|o| o.error.as_ref())
            .any(no_answer)
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
