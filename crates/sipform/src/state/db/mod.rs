//! State in SQLite ([`SqliteState`]) or PostgreSQL ([`PostgresState`]) tables, with the file
//! backend's semantics. This module holds what both engines share: the tables and the SQL that
//! reads and writes them; `sqlite` and `postgres` add how each one is opened and locked.
//!
//! sipform creates and migrates its own tables (in the connection's default schema):
//!
//! - `sipform_schema_version(version)`: the table layout's version; a newer one is refused.
//! - `sipform_state_meta(lineage, version, serial, account_id, updated_at)`: one row per
//!   lineage. A database holds one project's state: a commit of another lineage is refused.
//! - `sipform_state_restaurants(lineage, restaurant_id, final_customer_id, agent_id, tools,
//!   api_token)`: one row per restaurant, `tools` a JSON object of tool ids by name.
//! - `sipform_state_lock(name, holder)`: who holds the lock (JSON [`LockInfo`]), for the
//!   message the waiter sees.
//!
//! A commit is one transaction: the changed restaurants' rows are upserted or deleted and the
//! serial updated (a commit with no changes rewrites every row: migrate and `state rm` use it).
//!
//! Locking: PostgreSQL takes a session-level advisory lock (`pg_try_advisory_lock`, keyed by the
//! schema) on a dedicated connection held by the guard, polling until the timeout, so two
//! applies on different machines never run at once; the server releases it if the process dies.
//! SQLite is a local file, so it is locked like the file backend: an OS lock on `<database>.lock`
//! beside it, which also records the holder, and which the OS releases if the process dies.
//!
//! [`LockInfo`]: super::LockInfo

mod postgres;
mod sqlite;

pub use postgres::PostgresState;
pub use sqlite::SqliteState;

use sqlx::Row;
use uuid::Uuid;

use super::backend::StateError;
use super::model::{Change, RestaurantState, State, STATE_FORMAT_VERSION};
use crate::db::{is_transient, with_pool, Db, Engine, Pool};
use crate::model::ids::{AccountId, AgentId, FinalCustomerId, RestaurantId};
use crate::model::secret::Secret;

/// Version of sipform's own table layout.
pub const SCHEMA_VERSION: i64 = 1;

const DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS sipform_state_meta (\
        lineage TEXT PRIMARY KEY, \
        version INTEGER NOT NULL, \
        serial BIGINT NOT NULL, \
        account_id TEXT, \
        updated_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS sipform_state_restaurants (\
        lineage TEXT NOT NULL, \
        restaurant_id TEXT NOT NULL, \
        final_customer_id TEXT, \
        agent_id TEXT, \
        tools TEXT NOT NULL, \
        api_token TEXT, \
        PRIMARY KEY (lineage, restaurant_id))",
    "CREATE TABLE IF NOT EXISTS sipform_state_lock (\
        name TEXT PRIMARY KEY, \
        holder TEXT NOT NULL)",
];

/// The tables, shared by both engines.
struct Tables {
    db: Db,
    /// The server answered once (a fast, precise error instead of the pool's retries).
    reached: tokio::sync::OnceCell<()>,
    ready: tokio::sync::OnceCell<()>,
}

impl Tables {
    /// Nothing is touched until the first call.
    fn new(db: Db) -> Tables {
        Tables {
            db,
            reached: tokio::sync::OnceCell::new(),
            ready: tokio::sync::OnceCell::new(),
        }
    }

    fn place(&self) -> String {
        self.db.describe()
    }

    /// A driver error while doing `what` (`reading`, `writing`, …), transient or not by its
    /// cause.
    fn err(&self, what: &str, e: sqlx::Error) -> StateError {
        StateError::Database {
            place: self.place(),
            message: self.db.describe_error(what, &e),
            transient: is_transient(&e),
        }
    }

    fn corrupt(&self, message: String) -> StateError {
        StateError::Corrupt {
            place: self.place(),
            message,
        }
    }

    fn ph(&self, n: usize) -> String {
        self.db.engine().placeholder(n)
    }

    fn begin_write(&self) -> &'static str {
        match self.db.engine() {
            Engine::Sqlite => "BEGIN IMMEDIATE",
            Engine::Postgres => "BEGIN",
        }
    }

    fn begin_read(&self) -> &'static str {
        match self.db.engine() {
            Engine::Sqlite => "BEGIN",
            Engine::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }

    async fn reach(&self) -> Result<(), StateError> {
        self.reached
            .get_or_try_init(|| async { self.db.check_reachable().await.map_err(StateError::from) })
            .await
            .map(|_| ())
    }

    /// Whether sipform's tables exist yet.
    async fn exists(&self) -> Result<bool, StateError> {
        self.reach().await?;
        let what = "looking for sipform's tables";
        let n: i64 = match self.db.pool() {
            Pool::Sqlite(p) => sqlx::query_scalar(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
                 AND name = 'sipform_schema_version'",
            )
            .fetch_one(p)
            .await
            .map_err(|e| self.err(what, e))?,
            Pool::Postgres(p) => sqlx::query_scalar(
                "SELECT count(*) FROM pg_catalog.pg_tables \
                 WHERE tablename = 'sipform_schema_version' AND schemaname = current_schema()",
            )
            .fetch_one(p)
            .await
            .map_err(|e| self.err(what, e))?,
        };
        Ok(n > 0)
    }

    fn check_schema_version(&self, found: Option<i64>) -> Result<(), StateError> {
        match found {
            Some(v) if v > SCHEMA_VERSION => Err(StateError::FutureVersion {
                place: format!("{} (table layout)", self.place()),
                found: u32::try_from(v).unwrap_or(u32::MAX),
            }),
            _ => Ok(()),
        }
    }

    /// Creates or migrates the tables, once per process.
    async fn ensure(&self) -> Result<(), StateError> {
        self.ready
            .get_or_try_init(|| async { self.migrate().await })
            .await
            .map(|_| ())
    }

    async fn migrate(&self) -> Result<(), StateError> {
        self.reach().await?;
        let what = "creating sipform's tables";
        let begin = self.begin_write();
        let postgres = self.db.engine() == Engine::Postgres;
        with_pool!(self.db, p => {
            let mut tx = p.begin_with(begin).await.map_err(|e| self.err(what, e))?;
            let result = async {
                if postgres {
                    // Two first runs at once must not both create the tables.
                    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('sipform schema ' || current_schema()))")
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(what, e))?;
                }
                sqlx::query("CREATE TABLE IF NOT EXISTS sipform_schema_version (version INTEGER NOT NULL)")
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(what, e))?;
                let found: Option<i64> =
                    sqlx::query_scalar("SELECT CAST(max(version) AS BIGINT) FROM sipform_schema_version")
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| self.err(what, e))?;
                self.check_schema_version(found)?;
                if found.is_none() {
                    for ddl in DDL {
                        sqlx::query(ddl)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| self.err(what, e))?;
                    }
                    sqlx::query(&format!(
                        "INSERT INTO sipform_schema_version (version) VALUES ({})",
                        self.ph(1)
                    ))
                    .bind(SCHEMA_VERSION)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(what, e))?;
                }
                // Later layouts migrate here, from `found` up to SCHEMA_VERSION.
                Ok::<(), StateError>(())
            }
            .await;
            finish(tx, result, |e| self.err(what, e)).await
        })
    }

    async fn load(&self) -> Result<Option<State>, StateError> {
        if !self.exists().await? {
            return Ok(None);
        }
        let what = "reading";
        let begin = self.begin_read();
        let (version, metas, rows) = with_pool!(self.db, p => {
            let mut tx = p.begin_with(begin).await.map_err(|e| self.err(what, e))?;
            let result = async {
                let version: Option<i64> =
                    sqlx::query_scalar("SELECT CAST(max(version) AS BIGINT) FROM sipform_schema_version")
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| self.err(what, e))?;
                let metas: Vec<MetaRow> = sqlx::query(
                    "SELECT lineage, CAST(version AS BIGINT), CAST(serial AS BIGINT), account_id \
                     FROM sipform_state_meta ORDER BY lineage",
                )
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| self.err(what, e))?
                .iter()
                .map(|r| Ok(MetaRow {
                    lineage: r.try_get(0)?,
                    version: r.try_get(1)?,
                    serial: r.try_get(2)?,
                    account_id: r.try_get(3)?,
                }))
                .collect::<Result<_, sqlx::Error>>()
                .map_err(|e| self.err(what, e))?;
                let rows: Vec<RestaurantRow> = match metas.first() {
                    Some(m) if metas.len() == 1 => sqlx::query(&format!(
                        "SELECT restaurant_id, final_customer_id, agent_id, tools, api_token \
                         FROM sipform_state_restaurants WHERE lineage = {} ORDER BY restaurant_id",
                        self.ph(1)
                    ))
                    .bind(m.lineage.clone())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| self.err(what, e))?
                    .iter()
                    .map(|r| Ok(RestaurantRow {
                        restaurant_id: r.try_get(0)?,
                        final_customer_id: r.try_get(1)?,
                        agent_id: r.try_get(2)?,
                        tools: r.try_get(3)?,
                        api_token: r.try_get(4)?,
                    }))
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(|e| self.err(what, e))?,
                    _ => Vec::new(),
                };
                Ok::<_, StateError>((version, metas, rows))
            }
            .await;
            finish(tx, result, |e| self.err(what, e)).await?
        });
        self.check_schema_version(version)?;
        let meta = match metas.as_slice() {
            [] => return Ok(None),
            [m] => m,
            many => {
                return Err(StateError::Backend {
                    place: self.place(),
                    message: format!(
                        "holds {} lineages ({}), but a database holds one project's state; \
                         remove the ones that are not this project's",
                        many.len(),
                        many.iter()
                            .map(|m| m.lineage.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
            }
        };
        if meta.version > i64::from(STATE_FORMAT_VERSION) {
            return Err(StateError::FutureVersion {
                place: self.place(),
                found: u32::try_from(meta.version).unwrap_or(u32::MAX),
            });
        }
        let lineage = Uuid::parse_str(&meta.lineage)
            .map_err(|e| self.corrupt(format!("lineage {:?}: {e}", meta.lineage)))?;
        let serial = u64::try_from(meta.serial)
            .map_err(|_| self.corrupt(format!("negative serial {}", meta.serial)))?;
        let mut state = State {
            version: STATE_FORMAT_VERSION,
            lineage,
            serial,
            account_id: meta.account_id.clone().map(AccountId::new),
            restaurants: Default::default(),
        };
        for r in rows {
            let tools = serde_json::from_str(&r.tools)
                .map_err(|e| self.corrupt(format!("restaurant {}: tools: {e}", r.restaurant_id)))?;
            let rs = RestaurantState {
                final_customer_id: r.final_customer_id.map(FinalCustomerId::new),
                agent_id: r.agent_id.map(AgentId::new),
                tools,
                api_token: r.api_token.map(Secret::new),
            };
            if !rs.is_empty() {
                state
                    .restaurants
                    .insert(RestaurantId::new(r.restaurant_id), rs);
            }
        }
        Ok(Some(state))
    }

    async fn commit(&self, state: &State, changes: &[Change]) -> Result<(), StateError> {
        self.ensure().await?;
        let what = "writing";
        let lineage = state.lineage.to_string();
        let serial = i64::try_from(state.serial).map_err(|_| StateError::Backend {
            place: self.place(),
            message: format!(
                "serial {} is too large for a database column; restore state from a backup",
                state.serial
            ),
        })?;
        // Which restaurants to write: the changed ones, or all of them.
        let touched: Option<std::collections::BTreeSet<&RestaurantId>> = if changes.is_empty() {
            None
        } else {
            Some(changes.iter().filter_map(Change::restaurant).collect())
        };
        let mut upserts: Vec<UpsertRow> = Vec::new();
        let mut deletes: Vec<String> = Vec::new();
        let rows: Box<dyn Iterator<Item = &RestaurantId>> = match &touched {
            Some(t) => Box::new(t.iter().copied()),
            None => Box::new(state.restaurants.keys()),
        };
        for rid in rows {
            match state.restaurants.get(rid).filter(|r| !r.is_empty()) {
                Some(rs) => upserts.push(UpsertRow(
                    rid.as_str().to_string(),
                    rs.final_customer_id
                        .as_ref()
                        .map(|i| i.as_str().to_string()),
                    rs.agent_id.as_ref().map(|i| i.as_str().to_string()),
                    serde_json::to_string(&rs.tools).map_err(|e| StateError::Backend {
                        place: self.place(),
                        message: format!("cannot encode restaurant {rid}'s tools: {e}"),
                    })?,
                    rs.api_token.as_ref().map(|t| t.expose().clone()),
                )),
                None => deletes.push(rid.as_str().to_string()),
            }
        }
        let begin = self.begin_write();
        let ph = |n| self.ph(n);
        let upsert_meta =
            format!(
            "INSERT INTO sipform_state_meta (lineage, version, serial, account_id, updated_at) \
             VALUES ({}, {}, {}, {}, {}) ON CONFLICT (lineage) DO UPDATE SET \
             version = excluded.version, serial = excluded.serial, \
             account_id = excluded.account_id, updated_at = excluded.updated_at",
            ph(1), ph(2), ph(3), ph(4), ph(5)
        );
        let upsert_row = format!(
            "INSERT INTO sipform_state_restaurants \
             (lineage, restaurant_id, final_customer_id, agent_id, tools, api_token) \
             VALUES ({}, {}, {}, {}, {}, {}) ON CONFLICT (lineage, restaurant_id) DO UPDATE SET \
             final_customer_id = excluded.final_customer_id, agent_id = excluded.agent_id, \
             tools = excluded.tools, api_token = excluded.api_token",
            ph(1),
            ph(2),
            ph(3),
            ph(4),
            ph(5),
            ph(6)
        );
        let delete_row = format!(
            "DELETE FROM sipform_state_restaurants WHERE lineage = {} AND restaurant_id = {}",
            ph(1),
            ph(2)
        );
        let delete_all = format!(
            "DELETE FROM sipform_state_restaurants WHERE lineage = {}",
            ph(1)
        );
        with_pool!(self.db, p => {
            let mut tx = p.begin_with(begin).await.map_err(|e| self.err(what, e))?;
            let result = async {
                let metas = sqlx::query(
                    "SELECT lineage, CAST(version AS BIGINT), CAST(serial AS BIGINT) FROM sipform_state_meta",
                )
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| self.err(what, e))?;
                for m in &metas {
                    let l: String = m.try_get(0).map_err(|e| self.err(what, e))?;
                    let v: i64 = m.try_get(1).map_err(|e| self.err(what, e))?;
                    let s: i64 = m.try_get(2).map_err(|e| self.err(what, e))?;
                    if l != lineage {
                        return Err(StateError::Lineage {
                            place: self.place(),
                            found: Uuid::parse_str(&l).unwrap_or_default(),
                            expected: state.lineage,
                        });
                    }
                    if v > i64::from(STATE_FORMAT_VERSION) {
                        return Err(StateError::FutureVersion {
                            place: self.place(),
                            found: u32::try_from(v).unwrap_or(u32::MAX),
                        });
                    }
                    if s > serial {
                        return Err(StateError::Stale {
                            place: self.place(),
                            stored: u64::try_from(s).unwrap_or_default(),
                            serial: state.serial,
                        });
                    }
                }
                sqlx::query(&upsert_meta)
                    .bind(lineage.clone())
                    .bind(i64::from(state.version))
                    .bind(serial)
                    .bind(state.account_id.as_ref().map(|a| a.as_str().to_string()))
                    .bind(chrono::Utc::now().to_rfc3339())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(what, e))?;
                if touched.is_none() {
                    sqlx::query(&delete_all)
                        .bind(lineage.clone())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(what, e))?;
                }
                for rid in &deletes {
                    sqlx::query(&delete_row)
                        .bind(lineage.clone())
                        .bind(rid.clone())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(what, e))?;
                }
                for UpsertRow(rid, fc, agent, tools, token) in &upserts {
                    sqlx::query(&upsert_row)
                        .bind(lineage.clone())
                        .bind(rid.clone())
                        .bind(fc.clone())
                        .bind(agent.clone())
                        .bind(tools.clone())
                        .bind(token.clone())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(&format!("{what} (restaurant {rid})"), e))?;
                }
                Ok::<(), StateError>(())
            }
            .await;
            finish(tx, result, |e| self.err(what, e)).await
        })
    }
}

/// Commits on success; on failure rolls back now (not lazily when the connection is next used),
/// so no lock or transaction outlives the error.
async fn finish<'c, DB: sqlx::Database, T, E>(
    tx: sqlx::Transaction<'c, DB>,
    result: Result<T, E>,
    err: impl FnOnce(sqlx::Error) -> E,
) -> Result<T, E> {
    match result {
        Ok(v) => {
            tx.commit().await.map_err(err)?;
            Ok(v)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// restaurant_id, final_customer_id, agent_id, tools JSON, api_token.
struct UpsertRow(
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

struct MetaRow {
    lineage: String,
    version: i64,
    serial: i64,
    account_id: Option<String>,
}

struct RestaurantRow {
    restaurant_id: String,
    final_customer_id: Option<String>,
    agent_id: Option<String>,
    tools: String,
    api_token: Option<String>,
}
