//! The rollout record: what a rollout is (from and to which revision, its canary, when each
//! wave started and finished, why it halted). State keeps it (`State::rollout`), on every
//! backend, so controllers on two machines sharing one database share it too. Which
//! restaurants are done is not here: state records each restaurant's revision. The logic
//! that writes it is `ops::rollout`; this is the data both layers share.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::RestaurantId;
use super::revision::Revision;

/// Format version of the record.
pub const RECORD_VERSION: u32 = 1;

/// A record whose JSON is larger than this is refused, written or read (a canary is a handful
/// of ids and a wave a few timestamps, not megabytes).
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// One rollout, from its start to its end (finished or aborted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutRecord {
    pub version: u32,
    /// The revision most of the fleet ran when the rollout began: the stable one, which new
    /// restaurants get and `rollout abort` goes back to (`None`: state recorded none).
    pub from: Option<Revision>,
    /// The revision being rolled out.
    pub to: Revision,
    pub started_at: DateTime<Utc>,
    /// The canary chosen at the start (kept: a restaurant added later moves no one out).
    pub canary: Vec<RestaurantId>,
    /// `waves[0]` is the canary, then one per policy wave.
    pub waves: Vec<WaveRecord>,
    /// Waves `sipform rollout resume` released under `pause: manual`: wave `n` may start
    /// when `released >= n`.
    #[serde(default)]
    pub released: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<Halt>,
    /// Why the last run stopped short of the next wave (time, calls, a manual pause).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted_at: Option<DateTime<Utc>>,
    /// A rollback of a whole revision (back to one the fleet ran before): it goes by
    /// `rollout.rollback`'s waves and pause.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
}

/// When one wave started and finished; since when its calls count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaveRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Calls before this are not judged (set by `rollout resume` after a halt for health).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_since: Option<DateTime<Utc>>,
    /// Restaurants of this wave the last run left failed.
    #[serde(default)]
    pub failed: usize,
}

/// Why a rollout stopped sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Halt {
    pub wave: usize,
    pub reason: String,
    pub at: DateTime<Utc>,
}

impl RolloutRecord {
    /// Whether it still governs applies (neither finished nor aborted).
    pub fn in_progress(&self) -> bool {
        self.finished_at.is_none() && self.aborted_at.is_none()
    }

    /// Fits the record to a policy of `waves` waves (edited since the rollout began): wave
    /// times for each, so no index runs past either.
    pub fn fit(&mut self, waves: usize) {
        self.waves.resize(waves + 1, WaveRecord::default());
    }

    /// The last wave that started (the canary starts with the rollout).
    pub fn current(&self) -> usize {
        self.waves
            .iter()
            .rposition(|w| w.started_at.is_some())
            .unwrap_or(0)
    }

    /// Why this record cannot be kept: another format, or larger than [`MAX_RECORD_BYTES`]
    /// once encoded. Checked before it is written and as it is read.
    pub fn check(&self) -> Result<(), String> {
        if self.version != RECORD_VERSION {
            return Err(format!(
                "format {} (this sipform reads {RECORD_VERSION})",
                self.version
            ));
        }
        let len = serde_json::to_vec(self).map_or(usize::MAX, |v| v.len());
        if len > MAX_RECORD_BYTES {
            return Err(format!(
                "{len} bytes encoded, larger than {MAX_RECORD_BYTES}"
            ));
        }
        Ok(())
    }
}
