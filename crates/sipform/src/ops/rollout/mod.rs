//! Rolling a change out in waves (`rollout:` of `sipform.yaml`, `docs/rollout.md`): a change
//! of existing agents across more restaurants than the canary goes to the canary first, then
//! to cumulative waves, each started only when the one before finished within its failure
//! budget, passed the health gate and waited out the pause. New restaurants are never held.
//!
//! Progress is state's: a restaurant is done when state records the rollout's revision for it
//! (recorded by apply as each restaurant is reconciled), so after `kill -9` the next run picks
//! up exactly there. The rollout's own record (`record`, kept in state too) says what the
//! restaurants' revisions cannot: its revisions, canary, wave times and why it halted. Every event goes through one place,
//! [`Events::emit`], where a notifier hooks in.

pub mod abort;
mod control;
pub mod controller;
mod health;
mod newcomers;
mod record;
mod waves;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::apply::{Progress, Report};
use crate::model::ids::RestaurantId;
use crate::model::revision::Revision;
use crate::model::spec::RolloutPolicy;
use crate::plan::{Plan, Summary};
use crate::remote::Client;
use crate::state::State;

use super::{OpsError, Workspace};

pub use control::{resume, status, status_of, Phase, RolloutStatus, WaveStatus};
pub use health::{judge, Calls, Health, CALLS_PER_AGENT};
pub use newcomers::{StableCache, StableFiles};
pub use record::{current, legacy_path, Halt, Keeper, RolloutRecord, WaveRecord, RECORD_VERSION};
pub use waves::{canary_size, choose_canary, rank, Assignment};

/// Restaurants of a wave read back after it is applied (post-apply verification), at most.
pub const VERIFY_SAMPLE: usize = 50;

/// Something a rollout did that people or a webhook may want to hear about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum RolloutEvent {
    Started {
        to: String,
        from: Option<String>,
        canary: usize,
        /// Back to a revision the fleet ran before (`rollout.rollback`'s waves and pause).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        rollback: bool,
    },
    WaveStarted {
        wave: usize,
        restaurants: usize,
    },
    Paused {
        wave: usize,
        why: String,
    },
    Halted {
        wave: usize,
        reason: String,
    },
    Resumed {
        wave: usize,
    },
    Finished {
        to: String,
    },
    Aborted {
        wave: usize,
    },
}

/// The events of one run, in order. [`Events::emit`] is the one place every rollout event
/// passes: it logs it and keeps it for the caller (the CLI prints them; a notifier reads
/// [`Events::list`]).
#[derive(Debug, Default)]
pub struct Events(Vec<RolloutEvent>);

impl Events {
    pub fn emit(&mut self, event: RolloutEvent) {
        match &event {
            RolloutEvent::Halted { wave, reason } => {
                tracing::warn!(target: crate::LOG_TARGET, wave, "rollout halted: {reason}")
            }
            other => tracing::info!(target: crate::LOG_TARGET, "rollout: {other:?}"),
        }
        self.0.push(event);
    }

    pub fn list(&self) -> &[RolloutEvent] {
        &self.0
    }

    /// What a webhook is told of these (`notify:`): a halt, and the end of the rollout
    /// towards `to` with the restaurants it reached.
    pub fn notifications(&self, to: &str, restaurants: u64) -> Vec<crate::notify::Event> {
        use crate::notify::Event;
        self.0
            .iter()
            .filter_map(|e| match e {
                RolloutEvent::Halted { wave, reason } => Some(Event::RolloutHalted {
                    rollout: to.to_string(),
                    reason: format!("wave {wave}: {reason}"),
                }),
                RolloutEvent::Finished { .. } => Some(Event::RolloutFinished {
                    rollout: to.to_string(),
                    restaurants,
                }),
                _ => None,
            })
            .collect()
    }
}

/// How a run under a rollout policy ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The change reached no more restaurants than the canary: applied at once.
    NoRollout,
    /// Waiting for time, calls or `rollout resume`: exit 0.
    Paused(String),
    /// Over the failure budget or the health threshold: exit 1 until `rollout resume`.
    Halted(String),
    /// Every wave done.
    Finished,
}

/// What [`apply_in_waves`] did.
#[derive(Debug)]
pub struct WaveRun {
    /// Every wave's outcomes in one report.
    pub report: Report,
    pub verdict: Verdict,
    pub events: Events,
    pub record: Option<RolloutRecord>,
}

/// The restaurants a rollout spans: those state holds an agent for, not suspended (the same
/// set whichever batch of the inventory a run reads).
pub(crate) fn fleet(state: &State) -> BTreeSet<RestaurantId> {
    state
        .restaurants
        .iter()
        .filter(|(_, r)| r.agent_id.is_some() && !r.suspended)
        .map(|(id, _)| id.clone())
        .collect()
}

/// The restaurants of `plan` with a change to an agent that already exists.
fn changed(plan: &Plan, state: &State) -> BTreeSet<RestaurantId> {
    with_changes(plan, state, true)
}

/// The restaurants of `plan` with changes whose agent state records (`existing`), or not
/// (being created).
pub(super) fn with_changes(plan: &Plan, state: &State, existing: bool) -> BTreeSet<RestaurantId> {
    plan.restaurants
        .iter()
        .filter(|r| r.has_changes())
        .filter(|r| {
            let known = state
                .restaurants
                .get(&r.restaurant_id)
                .is_some_and(|s| s.agent_id.is_some());
            known == existing
        })
        .map(|r| r.restaurant_id.clone())
        .collect()
}

/// Whether state records `to` (by what it makes on the server: its digest) for `id`.
pub(crate) fn done(state: &State, id: &RestaurantId, to: &Revision) -> bool {
    state
        .restaurants
        .get(id)
        .and_then(|r| r.revision.as_ref())
        .is_some_and(|r| r.digest == to.digest)
}

/// The revision most of `fleet` records: the stable one.
fn stable(state: &State, fleet: &BTreeSet<RestaurantId>) -> Option<Revision> {
    let mut counts: Vec<(Revision, usize)> = Vec::new();
    for id in fleet {
        let Some(r) = state.restaurants.get(id).and_then(|r| r.revision.as_ref()) else {
            continue;
        };
        let r = r.revision();
        match counts.iter_mut().find(|(c, _)| *c == r) {
            Some((_, n)) => *n += 1,
            None => counts.push((r, 1)),
        }
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(r, _)| r)
}

/// `plan` with only the restaurants `keep` says.
fn narrow(plan: &Plan, keep: impl Fn(&RestaurantId) -> bool) -> Plan {
    let mut p = plan.clone();
    p.restaurants.retain(|r| keep(&r.restaurant_id));
    p.summary = Summary::of(p.actions());
    p
}

/// The rollout that governs this run: the one in progress towards `own`, or a new one when
/// the change spans more restaurants than the canary (recorded in `state` through `keeper`,
/// under the caller's lock); `None`: apply at once. An older sipform's record file is
/// imported first.
async fn current_or_start(
    keeper: &Keeper,
    (policy, history): (&RolloutPolicy, &std::path::Path),
    own: &Revision,
    state: &mut State,
    changed: usize,
    events: &mut Events,
) -> Result<Option<RolloutRecord>, OpsError> {
    keeper.import(state).await?;
    let existing = state
        .rollout
        .as_deref()
        .filter(|r| r.in_progress())
        .cloned();
    if let Some(rec) = existing.filter(|r| r.to.digest == own.digest) {
        return Ok(Some(rec));
    }
    if changed <= canary_size(policy) {
        return Ok(None);
    }
    let fleet = fleet(state);
    let now = Utc::now();
    let from = stable(state, &fleet);
    let rollback = is_rollback(history, state.rollout.as_deref(), from.as_ref(), own);
    let policy = &policy.for_rollout(rollback);
    let mut waves = vec![WaveRecord::default(); policy.waves.len() + 1];
    waves[0].started_at = Some(now);
    let rec = RolloutRecord {
        version: RECORD_VERSION,
        from,
        to: own.clone(),
        started_at: now,
        canary: choose_canary(policy, &fleet),
        waves,
        released: 0,
        halted: None,
        paused: None,
        finished_at: None,
        aborted_at: None,
        rollback,
    };
    keeper.save(state, &rec).await?;
    events.emit(RolloutEvent::Started {
        to: own.short(),
        from: rec.from.as_ref().map(Revision::short),
        canary: rec.canary.len(),
        rollback,
    });
    events.emit(RolloutEvent::WaveStarted {
        wave: 0,
        restaurants: rec.canary.len(),
    });
    Ok(Some(rec))
}

/// Whether rolling `own` out over a fleet at `from` goes back to a revision it ran before:
/// the one the last rollout (`last`) moved it away from (a `git revert` is a new commit of
/// the same files), or an ancestor of `from`'s commit in `history` (the repository).
fn is_rollback(
    history: &std::path::Path,
    last: Option<&RolloutRecord>,
    from: Option<&Revision>,
    own: &Revision,
) -> bool {
    let undone = last.is_some_and(|l| {
        l.to.digest != own.digest && l.from.as_ref().is_some_and(|f| f.digest == own.digest)
    });
    let behind = match (from.and_then(|f| f.commit.as_ref()), &own.commit) {
        (Some(theirs), Some(ours)) => matches!(
            crate::revision::relation(history, theirs, ours),
            Ok(crate::revision::Relation::Behind)
        ),
        _ => false,
    };
    undone || behind
}

/// Carries `plan` out under `sipform.yaml`'s `rollout:` policy ([`apply_in_waves`]), holding
/// `run`'s lock until done; without a policy, as [`super::apply::ApplyRun::apply`].
pub async fn apply_run_in_waves(
    run: super::apply::ApplyRun<'_>,
    plan: &Plan,
    progress: &dyn Progress,
) -> Result<WaveRun, OpsError> {
    let (ws, client, state, _lock) = run.into_parts();
    apply_in_waves(ws, &client, plan, state, progress).await
}

/// The one apply under a rollout policy: `plan` carried out wave by wave from `state`, as far
/// as the policy lets this run go. Without a policy, or for a change no larger than the
/// canary, it is [`super::apply::apply_plan`] once.
pub async fn apply_in_waves(
    ws: &Workspace,
    client: &Client,
    plan: &Plan,
    mut state: State,
    progress: &dyn Progress,
) -> Result<WaveRun, OpsError> {
    let mut events = Events::default();
    let policy = ws.settings().rollout.clone();
    let own = match &plan.revision {
        Some(r) => r.clone(),
        None => ws.revision()?.clone(),
    };
    let changed = changed(plan, &state);
    let rec = match &policy {
        Some(p) => {
            let keeper = Keeper::of(ws);
            let history = ws.settings().history_root();
            let how = (p, history);
            current_or_start(&keeper, how, &own, &mut state, changed.len(), &mut events).await?
        }
        None => None,
    };
    let (Some(policy), Some(rec)) = (policy, rec) else {
        let (report, after) = apply_once(ws, client, plan, state, progress).await;
        settle(ws, after).await;
        return Ok(WaveRun {
            report,
            verdict: Verdict::NoRollout,
            events,
            record: None,
        });
    };
    let mut rec = rec;
    let policy = policy.for_rollout(rec.rollback);
    rec.fit(policy.waves.len());
    let run = Rollout {
        policy,
        rec,
        changed,
        own,
        events,
    };
    run.go(ws, client, plan, state, progress).await
}

/// A run under a rollout in progress, before its new restaurants are created.
struct Rollout {
    policy: RolloutPolicy,
    rec: RolloutRecord,
    changed: BTreeSet<RestaurantId>,
    own: Revision,
    events: Events,
}

impl Rollout {
    /// New restaurants first (at the stable revision unless their wave started:
    /// `newcomers`), then the waves.
    async fn go(
        self,
        ws: &Workspace,
        client: &Client,
        plan: &Plan,
        state: State,
        progress: &dyn Progress,
    ) -> Result<WaveRun, OpsError> {
        let Rollout {
            policy,
            rec,
            mut changed,
            own,
            events,
        } = self;
        // The fleet as it is once the new restaurants exist: the next run's.
        let new = newcomers::new_restaurants(plan, &state);
        let mut everyone = fleet(&state);
        everyone.extend(new.iter().cloned());
        let assignment = Assignment::new(&policy, &rec.canary, &everyone);
        let later = newcomers::waiting(new, &assignment, &rec);
        let arrived =
            newcomers::create_at_stable(ws, client, plan, state, &rec, later, progress).await?;
        changed.extend(arrived.moved);
        let plan = arrived.plan.as_ref().unwrap_or(plan);
        let mut run = Waves {
            ws: Some(ws),
            keeper: Keeper::of(ws),
            dirty: false,
            client,
            policy,
            assignment,
            changed,
            own,
            rec,
            events,
            reports: arrived.report.into_iter().collect(),
            verified: None,
        };
        let (verdict, state) = run.drive(plan, arrived.state, progress).await?;
        settle(ws, state).await;
        Ok(WaveRun {
            report: merge(run.reports),
            verdict,
            events: run.events,
            record: Some(run.rec),
        })
    }
}

/// Applies `plan` and settles the writer; hands back the report and the state after it.
async fn apply_once(
    ws: &Workspace,
    client: &Client,
    plan: &Plan,
    state: State,
    progress: &dyn Progress,
) -> (Report, State) {
    let (report, writer) = super::apply::apply_plan(ws, client, plan, state, progress).await;
    // Not settled between waves: what is recorded is durable in the journal, and folding a
    // state of 10,000 restaurants in after every wave would cost a whole write each. Taken
    // from the writer, not copied (a whole state per wave).
    let state = writer.into_state();
    (report, state)
}

/// Folds the journal in at the end of a run (as [`super::apply::ApplyRun::apply`] does).
async fn settle(ws: &Workspace, state: State) {
    if let Err(e) = ws.writer(state).settle().await {
        tracing::warn!(target: crate::LOG_TARGET, "could not fold the state journal in ({e}); the next run replays it");
    }
}

/// What a read-back found different in `r`: the first field of its first change.
fn first_difference(r: &crate::plan::RestaurantPlan) -> String {
    let Some(action) = r.actions.iter().find(|a| a.op().is_change()) else {
        return "no difference".into();
    };
    let field = action.changes().first().map_or_else(
        || "the object".to_string(),
        |c| format!("field `{}`", c.path),
    );
    format!(
        "{} {}: {field} is not what was sent (dropped or changed by the server)",
        action.resource(),
        action.name()
    )
}

/// One report out of every wave's.
fn merge(reports: Vec<Report>) -> Report {
    let mut all = Report {
        account_error: None,
        outcomes: Vec::new(),
        requests: 0,
        retries: 0,
        elapsed: std::time::Duration::ZERO,
        parallelism: None,
        revision: None,
        held: Vec::new(),
    };
    for r in reports {
        all.account_error = all.account_error.or(r.account_error);
        all.outcomes.extend(r.outcomes);
        all.held.extend(r.held);
        all.requests += r.requests;
        all.retries += r.retries;
        all.elapsed += r.elapsed;
        all.parallelism = r.parallelism.or(all.parallelism);
        all.revision = r.revision.or(all.revision);
    }
    all.outcomes.sort_by(|a, b| a.restaurant.cmp(&b.restaurant));
    all
}

/// What the gate says after a wave.
enum Step {
    Next,
    Stop(Verdict),
}

/// A run driving one rollout.
struct Waves<'a> {
    /// The workspace applies and verification use (`None`: the controller's gate only).
    ws: Option<&'a Workspace>,
    /// Where the record is committed.
    keeper: Keeper,
    /// The record changed since it was last committed ([`Waves::flush`]).
    dirty: bool,
    client: &'a Client,
    policy: RolloutPolicy,
    assignment: Assignment,
    changed: BTreeSet<RestaurantId>,
    own: Revision,
    rec: RolloutRecord,
    events: Events,
    reports: Vec<Report>,
    /// The wave whose post-apply verification ran and found nothing (the controller reads a
    /// wave back once, not at every poll of its pause).
    verified: Option<usize>,
}

/// The restaurants of wave `cur` post-apply verification reads back: a sample, in the
/// wave's (hashed) order, of those `changed` that state records at `own`.
pub(crate) fn verify_sample(
    assignment: &Assignment,
    changed: &BTreeSet<RestaurantId>,
    state: &State,
    own: &Revision,
    cur: usize,
) -> BTreeSet<RestaurantId> {
    assignment.waves[cur]
        .iter()
        .filter(|id| changed.contains(*id) && done(state, id, own))
        .take(VERIFY_SAMPLE)
        .cloned()
        .collect()
}

impl Waves<'_> {
    /// Applies what the started waves allow, then opens the next wave while the gate says so.
    async fn drive(
        &mut self,
        plan: &Plan,
        mut state: State,
        progress: &dyn Progress,
    ) -> Result<(Verdict, State), OpsError> {
        let mut first = true;
        loop {
            let cur = self.rec.current();
            let halted = self.rec.halted.is_some();
            let part = if first {
                // Everything but the changes of waves not started (all of them while halted):
                // new and unchanged restaurants are never held.
                narrow(plan, |id| {
                    !self.changed.contains(id)
                        || (!halted && self.assignment.wave_of(id).is_some_and(|w| w <= cur))
                })
            } else {
                narrow(plan, |id| {
                    self.changed.contains(id) && self.assignment.wave_of(id) == Some(cur)
                })
            };
            first = false;
            if let (false, Some(ws)) = (part.restaurants.is_empty(), self.ws) {
                let (report, after) = apply_once(ws, self.client, &part, state, progress).await;
                state = after;
                self.reports.push(report);
            }
            if let Some(h) = &self.rec.halted {
                return Ok((Verdict::Halted(h.reason.clone()), state));
            }
            let step = self.gate(&state).await?;
            self.flush(&mut state).await?;
            match step {
                Step::Next => {
                    self.open(cur + 1);
                    // Durably before any of its writes.
                    self.flush(&mut state).await?;
                }
                Step::Stop(verdict) => return Ok((verdict, state)),
            }
        }
    }

    /// Commits the record to `state` when it changed (a `Change::Rollout`, under the run's
    /// lock).
    async fn flush(&mut self, state: &mut State) -> Result<(), OpsError> {
        if std::mem::take(&mut self.dirty) {
            self.keeper.save(state, &self.rec).await?;
        }
        Ok(())
    }

    /// Starts wave `n`; the caller commits the record ([`Waves::flush`]) before its writes.
    fn open(&mut self, n: usize) {
        self.rec.waves[n].started_at = Some(Utc::now());
        self.rec.paused = None;
        self.dirty = true;
        self.events.emit(RolloutEvent::WaveStarted {
            wave: n,
            restaurants: self.assignment.waves[n].len(),
        });
    }

    /// Stops the rollout (committed by the caller before the verdict is returned).
    fn halt(&mut self, wave: usize, reason: String) -> Result<Step, OpsError> {
        self.rec.halted = Some(Halt {
            wave,
            reason: reason.clone(),
            at: Utc::now(),
        });
        self.dirty = true;
        self.events.emit(RolloutEvent::Halted {
            wave,
            reason: reason.clone(),
        });
        Ok(Step::Stop(Verdict::Halted(reason)))
    }

    /// Stops short of the next wave; recorded and told once per reason (the controller asks
    /// again at every poll).
    fn pause(&mut self, wave: usize, why: String) -> Step {
        if self.rec.paused.as_deref() != Some(why.as_str()) {
            self.rec.paused = Some(why.clone());
            self.dirty = true;
            self.events.emit(RolloutEvent::Paused {
                wave,
                why: why.clone(),
            });
        }
        Step::Stop(Verdict::Paused(why))
    }

    /// After the started waves were applied: the failure budget, the end, the health gate,
    /// the pause.
    async fn gate(&mut self, state: &State) -> Result<Step, OpsError> {
        let cur = self.rec.current();
        let mismatched = if cur < self.assignment.last() && self.verified != Some(cur) {
            let found = self.verify(cur, state).await?;
            if found.is_empty() && self.ws.is_some() {
                self.verified = Some(cur);
            }
            found
        } else {
            Vec::new()
        };
        let failed: Vec<&RestaurantId> = self.assignment.waves[..=cur]
            .iter()
            .flatten()
            .filter(|id| {
                (self.changed.contains(*id) && !done(state, id, &self.own))
                    || mismatched.iter().any(|(m, _)| m == *id)
            })
            .collect();
        if let Some((id, why)) = mismatched.first() {
            if failed.len() > self.policy.max_failures as usize {
                let reason = format!(
                    "wave {cur}: post-apply verification failed for {} restaurant(s), over max_failures {} (first: {id}: {why})",
                    mismatched.len(),
                    self.policy.max_failures
                );
                return self.halt(cur, reason);
            }
        }
        for (i, w) in self.rec.waves.iter_mut().enumerate().take(cur + 1) {
            let n = failed
                .iter()
                .filter(|id| self.assignment.wave_of(id) == Some(i))
                .count();
            self.dirty |= w.failed != n;
            w.failed = n;
        }
        if failed.len() > self.policy.max_failures as usize {
            let reason = format!(
                "wave {cur}: {} restaurant(s) failed, over max_failures {} (first: {})",
                failed.len(),
                self.policy.max_failures,
                failed[0]
            );
            return self.halt(cur, reason);
        }
        let now = Utc::now();
        let retry = (!failed.is_empty()).then(|| {
            format!(
                "{} restaurant(s) of the started waves failed (within max_failures): apply again to retry them",
                failed.len()
            )
        });
        if cur == self.assignment.last() {
            if let Some(why) = retry {
                return Ok(self.pause(cur, why));
            }
            self.rec.finished_at = Some(now);
            self.dirty = true;
            self.events.emit(RolloutEvent::Finished {
                to: self.own.short(),
            });
            return Ok(Step::Stop(Verdict::Finished));
        }
        let completed = match self.rec.waves[cur].completed_at {
            Some(t) => t,
            None => {
                self.rec.waves[cur].completed_at = Some(now);
                self.dirty = true;
                now
            }
        };
        if let Some(step) = self.health(cur, state).await? {
            return Ok(step);
        }
        Ok(self.waited(cur, completed, now))
    }

    /// Post-apply verification: wave `cur`'s changed restaurants read back from the server
    /// and compared with what was sent (a plan over them); each that still differs, with the
    /// first field the server dropped or changed. Not for the last wave: no wave is left to
    /// hold back.
    async fn verify(
        &self,
        cur: usize,
        state: &State,
    ) -> Result<Vec<(RestaurantId, String)>, OpsError> {
        // A sample in the wave's (hashed) order: what the server does to one write it does to
        // all, and reading back every restaurant of a 10% wave would cost a plan of its own.
        let targets = verify_sample(&self.assignment, &self.changed, state, &self.own, cur);
        let Some(ws) = self.ws.filter(|_| !targets.is_empty()) else {
            return Ok(Vec::new());
        };
        let opts = super::plan::PlanOptions {
            targets,
            only_changes: true,
            ..Default::default()
        };
        let plan = ws.plan(self.client, state, &opts).await?;
        Ok(plan
            .restaurants
            .iter()
            .filter(|r| r.has_changes())
            .map(|r| (r.restaurant_id.clone(), first_difference(r)))
            .collect())
    }

    /// The health gate on wave `cur`'s agents; `None`: healthy (or no gate).
    async fn health(&mut self, cur: usize, state: &State) -> Result<Option<Step>, OpsError> {
        let Some(policy) = self.policy.health.clone() else {
            return Ok(None);
        };
        let wave = &self.rec.waves[cur];
        let since = wave
            .health_since
            .or(wave.started_at)
            .unwrap_or(self.rec.started_at);
        let agents = self.assignment.waves[cur]
            .iter()
            .filter_map(|id| state.restaurants.get(id))
            .filter_map(|r| Some((r.agent_id.clone()?, r.api_token.clone())))
            .collect();
        let calls = health::observe(self.client, agents, since).await;
        match judge(&policy, &calls) {
            Health::Healthy => Ok(None),
            Health::Waiting(why) => Ok(Some(self.pause(cur, format!("wave {cur}: {why}")))),
            Health::Unhealthy(why) => self.halt(cur, format!("wave {cur}: {why}")).map(Some),
        }
    }

    /// The pause after wave `cur`, completed at `completed`: next wave, or paused.
    fn waited(&mut self, cur: usize, completed: DateTime<Utc>, now: DateTime<Utc>) -> Step {
        let next = cur + 1;
        match crate::config::rollout_pause(&self.policy) {
            Ok(None) if self.rec.released < next => self.pause(
                cur,
                format!("pause: manual; `sipform rollout resume` starts wave {next}"),
            ),
            Ok(Some(d)) => {
                let until = completed + chrono::Duration::from_std(d).unwrap_or_default();
                if now < until {
                    let at = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    return self.pause(cur, format!("wave {next} starts after {at} (pause)"));
                }
                Step::Next
            }
            _ => Step::Next,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::model::revision::{ConfigDigest, GitCommit};

    /// A repository with two commits; their shas, oldest first.
    fn two_commits(dir: &std::path::Path) -> (GitCommit, GitCommit) {
        let git = |args: &[&str]| {
            let out = Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(["-c", "commit.gpgsign=false"])
                .args(args)
                .env_remove("GIT_DIR")
                .env_remove("GIT_WORK_TREE")
                .output()
                .expect("git runs");
            assert!(out.status.success(), "git {args:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        git(&["init", "-q"]);
        let mut shas = Vec::new();
        for n in ["1", "2"] {
            std::fs::write(dir.join("f"), n).expect("write");
            git(&["add", "-A"]);
            git(&["commit", "-q", "-m", n]);
            shas.push(GitCommit::parse(&git(&["rev-parse", "HEAD"])).expect("a sha"));
        }
        (shas[0].clone(), shas[1].clone())
    }

    fn at(commit: Option<&GitCommit>, digest: u8) -> Revision {
        Revision {
            commit: commit.cloned(),
            dirty: false,
            digest: ConfigDigest::from_sha256([digest; 32]),
        }
    }

    #[test]
    fn a_rollback_is_back_to_an_ancestor_or_to_what_the_last_rollout_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (old, new) = two_commits(dir.path());
        let d = dir.path();
        // An older checkout rolled out over a fleet at the newer commit: going back.
        assert!(is_rollback(
            d,
            None,
            Some(&at(Some(&new), 2)),
            &at(Some(&old), 1)
        ));
        // Forward, or nothing recorded to compare with: not a rollback.
        assert!(!is_rollback(
            d,
            None,
            Some(&at(Some(&old), 1)),
            &at(Some(&new), 2)
        ));
        assert!(!is_rollback(d, None, None, &at(Some(&old), 1)));
        // A revert (a new commit of the files the last rollout moved the fleet from).
        let last = RolloutRecord {
            version: RECORD_VERSION,
            from: Some(at(Some(&old), 1)),
            to: at(Some(&new), 2),
            started_at: Utc::now(),
            canary: Vec::new(),
            waves: vec![WaveRecord::default(); 2],
            released: 0,
            halted: None,
            paused: None,
            finished_at: Some(Utc::now()),
            aborted_at: None,
            rollback: false,
        };
        let revert = at(None, 1);
        assert!(is_rollback(
            d,
            Some(&last),
            Some(&at(Some(&new), 2)),
            &revert
        ));
        // The same rollout again is not a rollback.
        assert!(!is_rollback(
            d,
            Some(&last),
            Some(&at(Some(&new), 2)),
            &at(None, 2)
        ));
    }
}
