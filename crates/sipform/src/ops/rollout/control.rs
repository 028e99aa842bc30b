//! `sipform rollout status` and `rollout resume`: the record read with state's progress, and
//! a halted or manually paused rollout let go on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::revision::Revision;

use super::super::{OpsError, Workspace};
use super::{current, done, fleet, Assignment, Events, Halt, Keeper, RolloutEvent};

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// No rollout was ever recorded.
    #[default]
    None,
    InProgress,
    Halted,
    Finished,
    Aborted,
}

/// `sipform rollout status`, and its `--json`. The default: no rollout recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    pub phase: Phase,
    pub from: Option<Revision>,
    pub to: Option<Revision>,
    pub started_at: Option<DateTime<Utc>>,
    pub halted: Option<Halt>,
    /// Why the last apply stopped short of the next wave.
    pub paused: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
    pub aborted_at: Option<DateTime<Utc>>,
    /// Back to a revision the fleet ran before: `rollout.rollback`'s waves and pause.
    #[serde(default)]
    pub rollback: bool,
    pub waves: Vec<WaveStatus>,
}

/// One wave: its size, and how many of its restaurants state records at the new revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaveStatus {
    pub wave: usize,
    /// `canary`, or the policy's size (`25%`, `300`).
    pub label: String,
    pub restaurants: usize,
    pub done: usize,
    pub pending: usize,
    pub failed: usize,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// The rollout's record with each wave's progress read from state.
pub async fn status(ws: &Workspace) -> Result<RolloutStatus, OpsError> {
    let state = ws.state().await?;
    status_of(ws.settings(), &state)
}

/// [`status`] from state already read (the controller's board).
pub fn status_of(
    settings: &crate::config::Settings,
    state: &crate::state::State,
) -> Result<RolloutStatus, OpsError> {
    let Some(mut rec) = current(settings, state)? else {
        return Ok(RolloutStatus::default());
    };
    let waves = match settings.rollout.as_ref() {
        Some(policy) => {
            let policy = policy.for_rollout(rec.rollback);
            rec.fit(policy.waves.len());
            wave_statuses(&policy, &rec, &fleet(state), state)
        }
        None => Vec::new(),
    };
    let phase = if rec.aborted_at.is_some() {
        Phase::Aborted
    } else if rec.finished_at.is_some() {
        Phase::Finished
    } else if rec.halted.is_some() {
        Phase::Halted
    } else {
        Phase::InProgress
    };
    Ok(RolloutStatus {
        phase,
        from: rec.from,
        to: Some(rec.to),
        started_at: Some(rec.started_at),
        halted: rec.halted,
        paused: rec.paused,
        finished_at: rec.finished_at,
        aborted_at: rec.aborted_at,
        rollback: rec.rollback,
        waves,
    })
}

/// Each wave of `rec` under `policy`: its size, and what state records of it.
fn wave_statuses(
    policy: &crate::model::spec::RolloutPolicy,
    rec: &super::RolloutRecord,
    fleet: &std::collections::BTreeSet<crate::model::ids::RestaurantId>,
    state: &crate::state::State,
) -> Vec<WaveStatus> {
    let a = Assignment::new(policy, &rec.canary, fleet);
    a.waves
        .iter()
        .enumerate()
        .map(|(i, members)| {
            let done = members.iter().filter(|id| done(state, id, &rec.to)).count();
            let w = rec.waves.get(i).cloned().unwrap_or_default();
            let label = match i.checked_sub(1).and_then(|k| policy.waves.get(k)) {
                None => "canary".to_string(),
                Some(crate::model::spec::WaveSize::Count(n)) => n.to_string(),
                Some(crate::model::spec::WaveSize::Percent(p)) => p.clone(),
            };
            WaveStatus {
                wave: i,
                label,
                restaurants: members.len(),
                done,
                pending: members.len() - done,
                failed: w.failed,
                started_at: w.started_at,
                completed_at: w.completed_at,
            }
        })
        .collect()
}

/// `sipform rollout resume`: a halted rollout goes on (its wave's calls are judged again from
/// now: those that halted it are not counted twice); under `pause: manual`, the next wave is
/// released. The next `apply` (or the controller) does the sending.
pub async fn resume(ws: &Workspace) -> Result<Events, OpsError> {
    let _lock = ws.lock("rollout resume").await?;
    let mut state = ws.state().await?;
    let mut rec = current(ws.settings(), &state)?
        .filter(super::RolloutRecord::in_progress)
        .ok_or_else(|| OpsError::Rollout("no rollout in progress to resume".into()))?;
    let mut events = Events::default();
    let wave = match rec.halted.take() {
        Some(h) => {
            if let Some(w) = rec.waves.get_mut(h.wave) {
                w.health_since = Some(Utc::now());
            }
            h.wave
        }
        None => {
            rec.released = rec.released.max(rec.current() + 1);
            rec.current() + 1
        }
    };
    rec.paused = None;
    Keeper::of(ws).save(&mut state, &rec).await?;
    events.emit(RolloutEvent::Resumed { wave });
    Ok(events)
}
