//! The JSON file backend: `sipform.state.json` by default.
//!
//! Writes are atomic (temp file in the same folder, fsync, rename, fsync of the folder) so a
//! crash leaves either the old or the new document, never half of one. The file is created with
//! mode 0600 because it may hold tokens. A `<file>.lock` beside it, held with an OS file lock,
//! keeps a second apply out; it also records who holds it, for the message the other one sees.
//! Taking the lock also removes temporary files a crashed write left behind.
//!
//! A file holds one project's state. Opened for a project ([`FileState::for_project`]), a
//! document recorded for another project is refused; one that records none (written before
//! projects were recorded) is adopted, and the project is written into it on the next write.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::backend::{LockGuard, LockInfo, StateBackend, StateError};
use super::model::{Change, ProjectRef, State, STATE_FORMAT_VERSION};
use crate::fsio::{remove_stale_temps, write_atomic};

pub struct FileState {
    path: PathBuf,
    /// The project this run is; `None` takes whatever the file records.
    project: Option<ProjectRef>,
}

impl FileState {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileState {
            path: path.into(),
            project: None,
        }
    }

    /// The same file, bound to `project`: another project's state is refused.
    pub fn for_project(self, project: Option<ProjectRef>) -> Self {
        FileState { project, ..self }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".lock");
        PathBuf::from(p)
    }

    fn io(&self, action: &'static str, cause: std::io::Error) -> StateError {
        StateError::io(action, &self.path, cause)
    }
}

/// Parses a state document, refusing a newer format before looking at anything else.
pub fn parse_state(text: &str, place: &str) -> Result<State, StateError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| StateError::Corrupt {
        place: place.to_string(),
        message: format!("not valid state JSON: {e}"),
    })?;
    let version = value.get("version").and_then(|v| v.as_u64());
    match version {
        None => {
            return Err(StateError::Corrupt {
                place: place.to_string(),
                message: "not valid state JSON: missing or non-numeric \"version\"".into(),
            })
        }
        Some(v) if v > u64::from(STATE_FORMAT_VERSION) => {
            return Err(StateError::FutureVersion {
                place: place.to_string(),
                found: u32::try_from(v).unwrap_or(u32::MAX),
            })
        }
        Some(_) => {}
    }
    // Name the field: a hand-edited state is fixed by someone who needs to know which one.
    serde_path_to_error::deserialize(value).map_err(|e| StateError::Corrupt {
        place: place.to_string(),
        message: format!("not valid state JSON: {}", with_field(&e)),
    })
}

/// Checks that `state` belongs to `project` and records it there (adopting state that records
/// no project). `None` accepts any state as it is.
pub(crate) fn bind(
    state: &mut State,
    project: Option<&ProjectRef>,
    place: &str,
) -> Result<(), StateError> {
    let Some(project) = project else {
        return Ok(());
    };
    match &state.project {
        Some(found) if found != project => Err(StateError::OtherProject {
            place: place.to_string(),
            found: Box::new(found.clone()),
            expected: Box::new(project.clone()),
        }),
        _ => {
            state.bind(project);
            Ok(())
        }
    }
}

/// `field: message` from a serde path error (`message` alone at the root).
pub(crate) fn with_field(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    if path == "." {
        e.inner().to_string()
    } else {
        format!("{path}: {}", e.inner())
    }
}

struct FileLock {
    file: File,
}

impl LockGuard for FileLock {}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[async_trait]
impl StateBackend for FileState {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    async fn lock(
        &self,
        who: &LockInfo,
        timeout: Duration,
    ) -> Result<Box<dyn LockGuard>, StateError> {
        let lock_path = self.lock_path();
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts
            .open(&lock_path)
            .map_err(|e| StateError::io("open the lock file", &lock_path, e))?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if start.elapsed() >= timeout {
                        let mut holder = String::new();
                        let _ = file.read_to_string(&mut holder);
                        let holder = serde_json::from_str::<LockInfo>(&holder)
                            .map(|h| h.to_string())
                            .unwrap_or_else(|_| format!("lock file {}", lock_path.display()));
                        return Err(StateError::Locked {
                            place: self.describe(),
                            holder,
                            waited: start.elapsed(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(StateError::io("lock", &lock_path, e))
                }
            }
        }
        let info = serde_json::to_vec(who).map_err(|e| StateError::Backend {
            place: lock_path.display().to_string(),
            message: format!("cannot record the lock holder: {e}"),
        })?;
        let record = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&info)?;
            file.sync_all()
        };
        record(&mut file).map_err(|e| StateError::io("write the lock file", &lock_path, e))?;
        // Holding the lock, no other writer is mid-write: what is left is a crash's.
        let removed = remove_stale_temps(&self.path);
        if removed > 0 {
            tracing::info!(
                target: crate::LOG_TARGET,
                "removed {removed} temporary file(s) a crashed write left beside {}",
                self.path.display()
            );
        }
        Ok(Box::new(FileLock { file }))
    }

    async fn load(&self) -> Result<Option<State>, StateError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("read state file", e)),
        };
        let mut state = parse_state(&text, &self.path.display().to_string())?;
        bind(&mut state, self.project.as_ref(), &self.describe())?;
        Ok(Some(state))
    }

    async fn commit(&self, state: &State, _changes: &[Change]) -> Result<(), StateError> {
        // Record the project in what is written (a fresh or adopted state may not say it yet).
        let bound;
        let state = match &self.project {
            Some(p) if state.project.as_ref() != Some(p) => {
                let mut s = state.clone();
                bind(&mut s, Some(p), &self.describe())?;
                bound = s;
                &bound
            }
            _ => state,
        };
        let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| StateError::Backend {
            place: self.path.display().to_string(),
            message: format!("cannot encode state: {e}"),
        })?;
        bytes.push(b'\n');
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
            .await
            .map_err(|e| StateError::Backend {
                place: self.path.display().to_string(),
                message: format!("the write was interrupted ({e}); run again"),
            })?
            .map_err(|e| self.io("write state file", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ids::{AgentId, RestaurantId};

    #[tokio::test]
    async fn round_trip_is_private_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let fs_state = FileState::new(dir.path().join("s.json"));
        assert!(fs_state.load().await.unwrap().is_none());
        let mut s = State::new();
        let c = Change::Agent {
            restaurant: RestaurantId::new("r"),
            id: Some(AgentId::new("a")),
            tokens: None,
        };
        s.apply(&c, false);
        s.serial += 1;
        fs_state.commit(&s, &[c]).await.unwrap();
        assert_eq!(fs_state.load().await.unwrap(), Some(s));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(fs_state.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn future_version_and_garbage_are_refused() {
        let e = parse_state(r#"{"version": 99, "lineage": "x"}"#, "p").unwrap_err();
        assert!(matches!(e, StateError::FutureVersion { found: 99, .. }));
        let e = parse_state(r#"{"version": 1, "lin"#, "p").unwrap_err();
        assert!(matches!(e, StateError::Corrupt { .. }));
    }

    #[tokio::test]
    async fn second_lock_waits_then_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let st = FileState::new(dir.path().join("s.json"));
        let who = LockInfo::for_this_process("apply");
        let _g = st.lock(&who, Duration::from_secs(1)).await.unwrap();
        let err = match st
            .lock(
                &LockInfo::for_this_process("plan"),
                Duration::from_millis(300),
            )
            .await
        {
            Err(e) => e,
            Ok(_) => panic!("second lock must not be granted"),
        };
        let msg = err.to_string();
        assert!(msg.contains("apply by pid"), "{msg}");
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
    }
}
