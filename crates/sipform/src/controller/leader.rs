//! Who is the active controller.
//!
//! On PostgreSQL: a session-level advisory lock, held on a dedicated connection for as long as
//! this process leads. PostgreSQL releases it when that session ends, so a leader killed with
//! `kill -9` frees it as soon as the kernel closes its socket, and a standby retrying every few
//! seconds takes over. Without PostgreSQL (SQLite or file state) there is no standby: the lock
//! is a file lock beside state, and a second controller refuses to start, naming the holder.

use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;

use crate::state::{FileState, LockGuard, LockInfo, StateBackend, StateError};

/// Where the leader lock lives.
#[derive(Clone)]
pub enum LeaderLock {
    /// An advisory lock with this key, in this database.
    Postgres {
        options: Box<PgConnectOptions>,
        key: i64,
        place: String,
    },
    /// A file lock at this path (`<path>.lock`).
    File(PathBuf),
}

/// Held while this process leads; dropping it lets go.
pub enum Leadership {
    Postgres(PgConnection),
    File(#[allow(dead_code)] Box<dyn LockGuard>),
}

/// The advisory lock key for `scope` (the project and table): two projects on one database
/// each have their own leader.
pub fn advisory_key(scope: &str) -> i64 {
    let digest = Sha256::digest(format!("sipform-controller:{scope}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

impl LeaderLock {
    /// Tries once. `Ok(None)`: another controller leads (PostgreSQL: this one stands by).
    /// A file lock held elsewhere is an error naming the holder: no standby without a shared
    /// database.
    pub async fn try_acquire(&self) -> Result<Option<Leadership>, StateError> {
        match self {
            LeaderLock::Postgres {
                options,
                key,
                place,
            } => {
                let db_err = |e: sqlx::Error| StateError::Database {
                    place: place.clone(),
                    message: format!("controller leader lock: {e}"),
                    transient: true,
                };
                let mut conn = PgConnection::connect_with(options).await.map_err(db_err)?;
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(key)
                    .fetch_one(&mut conn)
                    .await
                    .map_err(db_err)?;
                if got {
                    Ok(Some(Leadership::Postgres(conn)))
                } else {
                    let _ = conn.close().await;
                    Ok(None)
                }
            }
            LeaderLock::File(path) => {
                let who = LockInfo::for_this_process("controller");
                let guard = FileState::new(path.clone())
                    .lock(&who, Duration::ZERO)
                    .await
                    .map_err(|e| match e {
                        StateError::Locked { holder, .. } => StateError::Backend {
                            place: path.display().to_string(),
                            message: format!(
                                "another controller is running ({holder}); only one controller \
                                 may run without PostgreSQL. Stop it first"
                            ),
                        },
                        other => other,
                    })?;
                Ok(Some(Leadership::File(guard)))
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, LeaderLock::Postgres { .. })
    }
}

impl Leadership {
    /// Whether this process still leads: the lock's session is alive. A lost session lost
    /// the lock, and another controller may lead already.
    pub async fn check(&mut self) -> bool {
        match self {
            Leadership::Postgres(conn) => sqlx::query_scalar::<_, i32>("SELECT 1")
                .fetch_one(&mut *conn)
                .await
                .is_ok(),
            Leadership::File(_) => true,
        }
    }

    /// Lets go at once (on PostgreSQL, ends the session that holds the lock).
    pub async fn release(self) {
        if let Leadership::Postgres(conn) = self {
            let _ = conn.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_scoped() {
        assert_eq!(advisory_key("a"), advisory_key("a"));
        assert_ne!(advisory_key("a"), advisory_key("b"));
    }
}
