//! The face every state backend shows: load, commit, lock, and the one error type they share.
//!
//! A backend is only storage: the model ([`super::model`]) says what a change does, the writer
//! ([`super::writer`]) decides when to commit. So a new backend is one file implementing
//! [`StateBackend`], one arm in [`super::open`], and a line in the conformance suite
//! (`tests/state_conformance.rs`) that proves it behaves like the others.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::model::{Change, ProjectRef, State, STATE_FORMAT_VERSION};
use crate::db::DbError;

/// Who holds a lock: shown to the one that waits for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockInfo {
    pub id: Uuid,
    pub host: String,
    pub pid: u32,
    pub operation: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

impl LockInfo {
    /// This process as the holder of `operation` (`apply`, `state rm`, …), so that whoever
    /// waits can tell who to ask.
    pub fn for_this_process(operation: &str) -> Self {
        LockInfo {
            id: Uuid::new_v4(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id(),
            operation: operation.to_string(),
            started_at: chrono::Utc::now(),
        }
    }
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} by pid {} on host {} since {}",
            self.operation,
            self.pid,
            self.host,
            self.started_at.to_rfc3339()
        )
    }
}

/// Why state could not be read, locked or written.
///
/// Each message says what failed, where (a path or a redacted URL) and what to do, once: a
/// caller adds its own context in front ("recording state: …") and nothing else. Causes are
/// part of the message rather than a `source()`, so an error chain printed with `{:#}` does not
/// repeat them. [`StateError::is_transient`] tells a run that may succeed later (a lock held, a
/// database restarting) from one that needs someone to act (a corrupt file, a full disk).
///
/// `Clone`, so that a writer that failed can answer every later caller with the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StateError {
    /// The file system refused: a full disk, a read-only folder, missing permissions.
    #[error("cannot {action} {place}: {cause}; check its folder's permissions and free space")]
    Io {
        /// What was being done: `read state file`, `write state file`, `create folder`, ….
        action: &'static str,
        place: String,
        cause: Arc<std::io::Error>,
    },
    #[error("state {place} is corrupt ({message}); restore it from a backup or fix it by hand")]
    Corrupt { place: String, message: String },
    #[error(
        "state {place} has format version {found}, newer than this sipform reads ({STATE_FORMAT_VERSION}); upgrade sipform"
    )]
    FutureVersion { place: String, found: u32 },
    #[error(
        "state {place} is locked ({holder}); waited {waited:.1?}. Retry later, or raise --lock-timeout"
    )]
    Locked {
        place: String,
        holder: String,
        waited: Duration,
    },
    #[error(
        "state {place} belongs to another project (lineage {found}; this one is {expected}); point state at this project's own backend"
    )]
    Lineage {
        place: String,
        found: Uuid,
        expected: Uuid,
    },
    /// State recorded for another project (another `project:` id or account name).
    #[error(
        "state at {place} belongs to {found}, not to {expected}; point `state:` elsewhere or set `project:`"
    )]
    OtherProject {
        place: String,
        // Boxed: every `Result<_, StateError>` stays small.
        found: Box<ProjectRef>,
        expected: Box<ProjectRef>,
    },
    /// Another process committed in between: this write is refused rather than going back.
    #[error(
        "state {place} holds serial {stored}, not older than this write's serial {serial}: another process wrote it meanwhile; run again"
    )]
    Stale {
        place: String,
        stored: u64,
        serial: u64,
    },
    /// A database answered with an error, or could not be reached.
    #[error("state in {place}: {message}{}", retry_hint(*.transient))]
    Database {
        place: String,
        message: String,
        transient: bool,
    },
    /// The backend's settings are wrong (no URL, a URL of another engine).
    #[error(transparent)]
    Config(DbError),
    /// Anything else a backend cannot go on with; the message says what to do.
    #[error("state {place}: {message}")]
    Backend { place: String, message: String },
    /// A [`super::CommitHook`] refused or failed a change; its message names its own place.
    #[error("{message}")]
    Hook { message: String, transient: bool },
    /// The writer's task is gone (the runtime is shutting down): nothing more is recorded.
    #[error("the state writer has stopped; nothing more can be recorded in this run")]
    Stopped,
}

fn retry_hint(transient: bool) -> &'static str {
    if transient {
        "; retry when the database is reachable again"
    } else {
        ""
    }
}

impl StateError {
    /// Whether running again later may succeed without anyone acting: a lock another run
    /// holds, a database that is restarting or busy, a concurrent writer. Corrupt or newer
    /// state, another project's lineage or state, a file-system error (full disk, permissions) and
    /// wrong settings are fatal: retrying would fail the same way.
    pub fn is_transient(&self) -> bool {
        match self {
            StateError::Locked { .. } | StateError::Stale { .. } => true,
            StateError::Database { transient, .. } | StateError::Hook { transient, .. } => {
                *transient
            }
            // Out of file descriptors passes as connections close (issue 25, item 10).
            StateError::Io { cause, .. } => crate::fsio::out_of_file_descriptors(cause.as_ref()),
            StateError::Corrupt { .. }
            | StateError::FutureVersion { .. }
            | StateError::Lineage { .. }
            | StateError::OtherProject { .. }
            | StateError::Config(_)
            | StateError::Backend { .. }
            | StateError::Stopped => false,
        }
    }

    /// An I/O failure while doing `action` on `place`.
    pub fn io(action: &'static str, place: &Path, cause: std::io::Error) -> StateError {
        StateError::Io {
            action,
            place: place.display().to_string(),
            cause: Arc::new(cause),
        }
    }
}

impl From<DbError> for StateError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Query {
                place,
                message,
                transient,
            } => StateError::Database {
                place,
                message,
                transient,
            },
            DbError::Connect { place, message } => StateError::Database {
                place,
                message,
                transient: false,
            },
            other => StateError::Config(other),
        }
    }
}

/// Held while an operation may write state; released on drop.
pub trait LockGuard: Send + Sync {}

/// A place state lives. Implementations must make [`StateBackend::commit`] durable before it
/// returns: apply treats a returned commit as "this id can never be lost".
///
/// It is an `async_trait`; implement it with `#[sipform::state::async_trait]`.
#[async_trait]
pub trait StateBackend: Send + Sync {
    /// Where this is, for messages (a path or a redacted URL).
    fn describe(&self) -> String;

    /// Takes the exclusive lock, waiting up to `timeout` for another holder to let go.
    async fn lock(
        &self,
        who: &LockInfo,
        timeout: Duration,
    ) -> Result<Box<dyn LockGuard>, StateError>;

    /// Reads state; a backend that holds none yet returns `None`.
    async fn load(&self) -> Result<Option<State>, StateError>;

    /// Persists `state`, which already has `changes` applied and its serial bumped. Backends
    /// that store rows may write just the changes; a file rewrites the whole document.
    async fn commit(&self, state: &State, changes: &[Change]) -> Result<(), StateError>;

    /// The lineage and serial stored now, read without the restaurants: a caller holding a
    /// copy at that lineage and serial may keep using it (nothing was committed since, as
    /// every commit bumps the serial). `None` when this backend cannot tell cheaply or holds
    /// nothing: the caller loads.
    async fn stored_serial(&self) -> Result<Option<(uuid::Uuid, u64)>, StateError> {
        Ok(None)
    }

    /// Called under the lock with the state a run ends with, every change of it committed:
    /// a backend that keeps a journal folds it in from this copy instead of reading state
    /// back when the lock is released (which held a second copy of state at the end of a
    /// large apply). Nothing to do by default.
    async fn settle(&self, _state: &State) -> Result<(), StateError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_and_fatal_are_told_apart() {
        let locked = StateError::Locked {
            place: "file s.json".into(),
            holder: "apply by pid 1".into(),
            waited: Duration::from_millis(300),
        };
        assert!(locked.is_transient());
        let full = StateError::io(
            "write state file",
            Path::new("/p/s.json"),
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        assert!(!full.is_transient());
        let lost: StateError = DbError::Query {
            place: "postgres postgres://db/x".into(),
            message: "cannot connect: reset".into(),
            transient: true,
        }
        .into();
        assert!(lost.is_transient());
        assert!(!StateError::from(DbError::NoUrl {
            what: "state.url".into()
        })
        .is_transient());
    }

    #[test]
    fn messages_say_it_once() {
        let full = StateError::io(
            "write state file",
            Path::new("/p/s.json"),
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        let msg = full.to_string();
        assert!(
            msg.starts_with("cannot write state file /p/s.json: "),
            "{msg}"
        );
        assert_eq!(msg.matches("state").count(), 1, "{msg}");
        // The cause is in the message, not a source an error chain would print again.
        assert!(std::error::Error::source(&full).is_none());
        let lost = StateError::Database {
            place: "postgres postgres://db/x".into(),
            message: "writing: cannot connect: reset".into(),
            transient: true,
        };
        assert_eq!(
            lost.to_string(),
            "state in postgres postgres://db/x: writing: cannot connect: reset; \
             retry when the database is reachable again"
        );
    }
}
