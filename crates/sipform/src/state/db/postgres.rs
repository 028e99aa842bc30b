//! PostgreSQL: tables in the connection's schema, guarded by a session advisory lock.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::Connection;

use super::Tables;
use crate::db::{Db, Engine, Pool, Purpose};
use crate::state::backend::{LockGuard, LockInfo, StateBackend, StateError};
use crate::state::model::{Change, ProjectRef, State};

/// State in PostgreSQL (`state: {backend: postgres, url: postgres://…}`), guarded by an
/// advisory lock.
pub struct PostgresState {
    tables: Tables,
}

impl PostgresState {
    /// Opens (lazily) the database at `url`; the tables live in the connection's current schema
    /// (set one with `?options=-c%20search_path%3Dmyschema`).
    pub fn open(url: &str) -> Result<PostgresState, StateError> {
        if Engine::of_url(url)? != Engine::Postgres {
            return Err(StateError::Backend {
                place: crate::db::redact(url),
                message: "the postgres state backend needs a postgres://… url".into(),
            });
        }
        Ok(PostgresState {
            tables: Tables::new(Db::open_lazy(url, Path::new("."), Purpose::State)?),
        })
    }

    /// The same database, for `project`: it reads and writes that project's lineage only (see
    /// the module [`super`]).
    pub fn for_project(mut self, project: Option<ProjectRef>) -> Self {
        self.tables.project = project;
        self
    }

    /// The advisory lock key: one per schema and project, so projects in different schemas of
    /// one database, or side by side in one schema, do not wait for each other.
    pub async fn lock_key(&self) -> Result<i64, StateError> {
        let Pool::Postgres(p) = self.tables.db.pool() else {
            return Err(StateError::Backend {
                place: self.describe(),
                message: "not a PostgreSQL database".into(),
            });
        };
        let schema: Option<String> = sqlx::query_scalar("SELECT current_schema()::text")
            .fetch_one(p)
            .await
            .map_err(|e| self.tables.err("reading the current schema", e))?;
        Ok(lock_key_for(
            schema.as_deref().unwrap_or(""),
            self.tables.project.as_ref(),
        ))
    }

    /// The lock table's row for this project's lock.
    fn lock_name(&self) -> String {
        match &self.tables.project {
            None => "state".to_string(),
            Some(p) => format!("state {}", p.id),
        }
    }

    async fn holder(&self, conn: &mut sqlx::PgConnection) -> Option<LockInfo> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT holder FROM sipform_state_lock WHERE name = $1")
                .bind(self.lock_name())
                .fetch_optional(&mut *conn)
                .await
                .ok()
                .flatten();
        text.and_then(|t| serde_json::from_str(&t).ok())
    }
}

/// FNV-1a of `sipform state <schema>` (and ` <project id>` for a project), as a signed key.
fn lock_key_for(schema: &str, project: Option<&ProjectRef>) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let name = match project {
        None => format!("sipform state {schema}"),
        Some(p) => format!("sipform state {schema} {}", p.id),
    };
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

struct PgLock {
    conn: Mutex<Option<sqlx::PgConnection>>,
    key: i64,
}

impl LockGuard for PgLock {}

impl Drop for PgLock {
    fn drop(&mut self) {
        let conn = match self.conn.lock() {
            Ok(mut c) => c.take(),
            Err(p) => p.into_inner().take(),
        };
        let Some(mut conn) = conn else { return };
        let key = self.key;
        // Unlock and close politely when a runtime is there; otherwise dropping the connection
        // ends the session, which releases the lock all the same.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(key)
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            });
        }
    }
}

#[async_trait]
impl StateBackend for PostgresState {
    fn describe(&self) -> String {
        self.tables.place()
    }

    async fn stored_serial(&self) -> Result<Option<(uuid::Uuid, u64)>, StateError> {
        self.tables.stored_serial().await
    }

    async fn lock(
        &self,
        who: &LockInfo,
        timeout: Duration,
    ) -> Result<Box<dyn LockGuard>, StateError> {
        self.tables.ensure().await?;
        let key = self.lock_key().await?;
        let opts = self
            .tables
            .db
            .pg_options()
            .cloned()
            .ok_or_else(|| StateError::Backend {
                place: self.describe(),
                message: "not a PostgreSQL database".into(),
            })?;
        let mut conn = sqlx::PgConnection::connect_with(&opts)
            .await
            .map_err(|e| self.tables.err("opening the lock session", e))?;
        let start = Instant::now();
        loop {
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut conn)
                .await
                .map_err(|e| self.tables.err("taking the advisory lock", e))?;
            if got {
                break;
            }
            let waited = start.elapsed();
            if waited >= timeout {
                let holder = match self.holder(&mut conn).await {
                    Some(h) => h.to_string(),
                    None => format!("another session holds advisory lock {key}"),
                };
                let _ = conn.close().await;
                return Err(StateError::Locked {
                    place: self.describe(),
                    holder,
                    waited,
                });
            }
            let left = timeout.saturating_sub(waited);
            tokio::time::sleep(left.min(Duration::from_millis(200))).await;
        }
        let info = serde_json::to_string(who).map_err(|e| StateError::Backend {
            place: self.describe(),
            message: format!("cannot record the lock holder: {e}"),
        })?;
        let guard = PgLock {
            conn: Mutex::new(None),
            key,
        };
        sqlx::query(
            "INSERT INTO sipform_state_lock (name, holder) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder",
        )
        .bind(self.lock_name())
        .bind(info)
        .execute(&mut conn)
        .await
        .map_err(|e| self.tables.err("recording the lock holder", e))?;
        if let Ok(mut c) = guard.conn.lock() {
            *c = Some(conn);
        }
        Ok(Box::new(guard))
    }

    async fn load(&self) -> Result<Option<State>, StateError> {
        self.tables.load().await
    }

    async fn commit(&self, state: &State, changes: &[Change]) -> Result<(), StateError> {
        self.tables.commit(state, changes).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::SqliteState;
    use super::*;

    #[test]
    fn lock_keys_differ_by_schema_and_are_stable() {
        assert_eq!(lock_key_for("public", None), lock_key_for("public", None));
        assert_ne!(lock_key_for("public", None), lock_key_for("other", None));
        let a = ProjectRef::new("a", "A");
        let b = ProjectRef::new("b", "B");
        assert_ne!(
            lock_key_for("public", Some(&a)),
            lock_key_for("public", Some(&b))
        );
        assert_ne!(
            lock_key_for("public", Some(&a)),
            lock_key_for("public", None)
        );
    }

    #[test]
    fn urls_of_the_wrong_engine_are_refused() {
        assert!(SqliteState::open("postgres://x/y", Path::new("/")).is_err());
        assert!(PostgresState::open("sqlite://x.db").is_err());
        let s = PostgresState::open("postgres://u:hunter2@127.0.0.1:1/db").unwrap();
        assert!(!s.describe().contains("hunter2"));
    }
}
