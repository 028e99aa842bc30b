//! The rollout record in state: read, written durably through the state writer, and the
//! private file older sipforms kept it in imported once.
//!
//! The record is state's (`State::rollout`, one `Change::Rollout` per write), so it is written
//! under the run's state lock, with the serial fencing of every commit: a deposed leader's
//! write is refused as its ids would be, and controllers on two machines sharing one
//! database read the same record. Which restaurants are done is not in it: state records each
//! restaurant's revision, so progress is read back from state after `kill -9`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Settings;
use crate::model::spec::StateConfig;
use crate::state::{Change, LockInfo, State, StateBackend, StateError, StateWriter};

use super::super::{OpsError, Workspace};

pub use crate::model::rollout::{Halt, RolloutRecord, WaveRecord, RECORD_VERSION};

/// The file older sipforms kept the record in (beside a state file, else in the project
/// folder): read while state holds no record, and removed once state holds it.
pub fn legacy_path(settings: &Settings) -> PathBuf {
    match &settings.state {
        StateConfig::File { path, .. } => {
            let mut p = settings.root.join(path).into_os_string();
            p.push(".rollout.json");
            PathBuf::from(p)
        }
        _ => settings.root.join("sipform.rollout.json"),
    }
}

/// The record `state` holds, else the one an older sipform left in its file (an upgrade in
/// the middle of a rollout resumes it); `None` when no rollout ever ran.
pub fn current(settings: &Settings, state: &State) -> Result<Option<RolloutRecord>, OpsError> {
    match &state.rollout {
        Some(rec) => Ok(Some((**rec).clone())),
        None => read_legacy(&legacy_path(settings)),
    }
}

/// The record of a legacy file, or `None` when there is none.
fn read_legacy(path: &Path) -> Result<Option<RolloutRecord>, OpsError> {
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
    let max = crate::model::rollout::MAX_RECORD_BYTES;
    if meta.len() > max as u64 {
        return Err(bad(format!("larger than {max} bytes")));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let record: RolloutRecord = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    record.check().map_err(bad)?;
    Ok(Some(record))
}

/// Where a rollout's record is written: the project's state, through a [`StateWriter`].
#[derive(Clone)]
pub struct Keeper {
    backend: Arc<dyn StateBackend>,
    store_tokens: bool,
    legacy: PathBuf,
}

impl Keeper {
    /// The record of `ws`'s project.
    pub fn of(ws: &Workspace) -> Keeper {
        Keeper::new(ws.backend(), ws.settings())
    }

    /// The record in `backend`, the state of the project `settings` describes.
    pub fn new(backend: Arc<dyn StateBackend>, settings: &Settings) -> Keeper {
        Keeper {
            backend,
            store_tokens: settings.state.store_tokens(),
            legacy: legacy_path(settings),
        }
    }

    /// Records `rec` in `state` and commits it durably (one `Change::Rollout`) before it
    /// returns. The caller holds the state lock and `state` is current: a stale serial is
    /// refused by the backend like any other commit.
    pub async fn save(&self, state: &mut State, rec: &RolloutRecord) -> Result<(), OpsError> {
        rec.check()
            .map_err(|why| OpsError::Rollout(format!("cannot record the rollout: {why}")))?;
        let writer = StateWriter::new(
            self.backend.clone(),
            std::mem::take(state),
            self.store_tokens,
            None,
        );
        let recorded = writer
            .record(vec![Change::Rollout(Box::new(rec.clone()))])
            .await;
        *state = writer.into_state();
        recorded?;
        self.forget_legacy();
        Ok(())
    }

    /// Imports an older sipform's record file into `state` (under the state lock), once:
    /// when state holds no record yet; the file is removed once state holds it.
    pub async fn import(&self, state: &mut State) -> Result<(), OpsError> {
        if state.rollout.is_some() {
            return Ok(());
        }
        let Some(rec) = read_legacy(&self.legacy)? else {
            return Ok(());
        };
        self.save(state, &rec).await?;
        tracing::info!(target: crate::LOG_TARGET, "rollout: the record {} was imported into state ({}) and removed", self.legacy.display(), self.backend.describe());
        Ok(())
    }

    /// Commits `rec` from outside a lock (the controller's gates between batches): takes the
    /// lock, and writes only if state is still at `read`'s lineage and serial (what `rec` was
    /// judged from); else refuses, and the next poll judges again.
    pub async fn save_fenced(
        &self,
        read: &State,
        rec: &RolloutRecord,
        lock_timeout: std::time::Duration,
    ) -> Result<(), OpsError> {
        let who = LockInfo::for_this_process("controller rollout");
        let _lock = self.backend.lock(&who, lock_timeout).await?;
        let at = (read.lineage, read.serial);
        let mut state = match self.backend.stored_serial().await? {
            Some(stored) if stored == at => read.clone(),
            Some(stored) => return Err(self.moved(stored.1, read.serial)),
            None => self.backend.load().await?.unwrap_or_default(),
        };
        if (state.lineage, state.serial) != at {
            return Err(self.moved(state.serial, read.serial));
        }
        self.save(&mut state, rec).await
    }

    fn moved(&self, stored: u64, serial: u64) -> OpsError {
        OpsError::State(StateError::Stale {
            place: self.backend.describe(),
            stored,
            serial: serial + 1,
        })
    }

    /// Removes the legacy file once state holds the record (nothing to do when absent).
    fn forget_legacy(&self) {
        match std::fs::remove_file(&self.legacy) {
            Ok(()) => {
                tracing::info!(target: crate::LOG_TARGET, "rollout: {} removed: state holds the rollout record now", self.legacy.display())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(target: crate::LOG_TARGET, "rollout: cannot remove {} ({e}); state holds the record, remove it by hand", self.legacy.display())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::model::ids::RestaurantId;
    use crate::model::revision::{ConfigDigest, Revision};
    use crate::state::FileState;

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
            rollback: false,
        }
    }

    fn keeper(dir: &Path) -> (Keeper, Arc<FileState>) {
        let backend = Arc::new(FileState::new(dir.join("s.json")));
        let keeper = Keeper {
            backend: backend.clone(),
            store_tokens: false,
            legacy: dir.join("s.json.rollout.json"),
        };
        (keeper, backend)
    }

    #[tokio::test]
    async fn a_record_is_kept_in_state_and_a_bad_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (keeper, backend) = keeper(dir.path());
        let mut state = State::new();
        let mut rec = record();
        rec.waves[1].started_at = Some(Utc::now());
        keeper.save(&mut state, &rec).await.unwrap();
        assert_eq!(state.serial, 1);
        let back = backend.load().await.unwrap().unwrap();
        assert_eq!(back.rollout.as_deref(), Some(&rec));
        assert_eq!(back.version, crate::state::STATE_FORMAT_VERSION);
        assert_eq!(rec.current(), 1);
        // A policy edited mid-rollout: the record follows, no index past either.
        let mut edited = rec.clone();
        edited.fit(1);
        assert_eq!((edited.waves.len(), edited.current()), (2, 1));
        edited.fit(4);
        assert_eq!(edited.waves.len(), 5);
        // Too large: refused before anything is written.
        let mut huge = rec.clone();
        huge.canary = (0..40_000)
            .map(|i| RestaurantId::new(format!("restaurant-{i:020}")))
            .collect();
        let e = keeper
            .save(&mut state, &huge)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than"), "{e}");
        assert_eq!(state.serial, 1);
    }

    #[tokio::test]
    async fn a_legacy_record_file_is_imported_once_then_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (keeper, backend) = keeper(dir.path());
        let rec = record();
        crate::fsio::write_atomic(&keeper.legacy, &serde_json::to_vec(&rec).unwrap()).unwrap();
        let mut state = State::new();
        keeper.import(&mut state).await.unwrap();
        assert!(!keeper.legacy.exists(), "removed once imported");
        let back = backend.load().await.unwrap().unwrap();
        assert_eq!(back.rollout.as_deref(), Some(&rec));
        // A bad file is named, not skipped.
        std::fs::write(&keeper.legacy, b"{\"version\": 1}").unwrap();
        let e = read_legacy(&keeper.legacy).unwrap_err().to_string();
        assert!(e.contains("is not a rollout record"), "{e}");
        // State holds one: the file is not read again.
        keeper.import(&mut state).await.unwrap();
        assert_eq!(state.serial, 1);
    }

    #[tokio::test]
    async fn a_fenced_save_is_refused_once_state_moved() {
        let dir = tempfile::tempdir().unwrap();
        let (keeper, _) = keeper(dir.path());
        let mut state = State::new();
        keeper.save(&mut state, &record()).await.unwrap();
        let read = state.clone();
        let mut rec = record();
        rec.released = 1;
        keeper.save(&mut state, &rec).await.unwrap();
        let t = std::time::Duration::from_secs(1);
        let e = keeper.save_fenced(&read, &rec, t).await.unwrap_err();
        assert!(
            matches!(e, OpsError::State(StateError::Stale { .. })),
            "{e}"
        );
        keeper.save_fenced(&state, &rec, t).await.unwrap();
    }
}
