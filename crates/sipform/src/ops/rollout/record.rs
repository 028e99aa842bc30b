//! The rollout record: what a rollout is (from and to which revision, its canary, when each
//! wave started and finished, why it halted), kept in a private file beside state. Which
//! restaurants are done is not here: state records each restaurant's revision, so progress
//! is read back from state after `kill -9` and nothing is done twice.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::model::ids::RestaurantId;
use crate::model::revision::Revision;
use crate::model::spec::StateConfig;

use super::super::OpsError;

/// Format version of the record file.
pub const RECORD_VERSION: u32 = 1;

/// A record larger than this is refused (a canary is a handful of ids, not megabytes).
const MAX_RECORD_BYTES: u64 = 16 << 20;

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
}

/// Where the record of `settings`' project lives: beside a state file, else in the project
/// folder.
pub fn record_path(settings: &Settings) -> PathBuf {
    match &settings.state {
        StateConfig::File { path, .. } => {
            let mut p = settings.root.join(path).into_os_string();
            p.push(".rollout.json");
            PathBuf::from(p)
        }
        _ => settings.root.join("sipform.rollout.json"),
    }
}

/// The record, or `None` when no rollout ever ran.
pub fn load(path: &Path) -> Result<Option<RolloutRecord>, OpsError> {
    let io = |source| OpsError::Io {
        what: "cannot read the rollout record",
        path: path.display().to_string(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let bad = |why: String| {
        OpsError::Rollout(format!(
            "{} is not a rollout record: {why} (move it away to forget the rollout)",
            path.display()
        ))
    };
    if meta.len() > MAX_RECORD_BYTES {
        return Err(bad(format!("larger than {MAX_RECORD_BYTES} bytes")));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let record: RolloutRecord = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if record.version != RECORD_VERSION {
        return Err(bad(format!(
            "format {} (this sipform reads {RECORD_VERSION})",
            record.version
        )));
    }
    Ok(Some(record))
}

/// Writes the record durably (atomic replace, 0600) before any wave it starts sends.
pub fn save(path: &Path, record: &RolloutRecord) -> Result<(), OpsError> {
    let text = serde_json::to_vec_pretty(record)
        .map_err(|e| OpsError::Rollout(format!("cannot encode the rollout record: {e}")))?;
    crate::fsio::write_atomic(path, &text).map_err(|source| OpsError::Io {
        what: "cannot write the rollout record",
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::revision::ConfigDigest;

    fn record() -> RolloutRecord {
        RolloutRecord {
            version: RECORD_VERSION,
            from: None,
            to: Revision {
                commit: None,
                dirty: false,
                digest: ConfigDigest::from_sha256([7; 32]),
            },
            started_at: Utc::now(),
            canary: vec![RestaurantId::new("r1")],
            waves: vec![WaveRecord::default(); 3],
            released: 0,
            halted: None,
            paused: None,
            finished_at: None,
            aborted_at: None,
        }
    }

    #[test]
    fn a_record_survives_a_save_and_a_bad_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        assert_eq!(load(&path).unwrap(), None);
        let mut rec = record();
        rec.waves[1].started_at = Some(Utc::now());
        save(&path, &rec).unwrap();
        let back = load(&path).unwrap().unwrap();
        assert_eq!(back, rec);
        assert_eq!(back.current(), 1);
        assert!(back.in_progress());
        // A policy edited mid-rollout: the record follows, no index past either.
        let mut edited = back.clone();
        edited.fit(1);
        assert_eq!(edited.waves.len(), 2);
        assert_eq!(edited.current(), 1);
        edited.fit(4);
        assert_eq!(edited.waves.len(), 5);
        std::fs::write(&path, b"{\"version\": 1}").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("is not a rollout record"), "{e}");
    }
}
