//! State in SQLite ([`SqliteState`]) or PostgreSQL ([`PostgresState`]) tables, with the file
//! backend's semantics. This module holds what both engines share: the tables and the SQL that
//! reads and writes them; `sqlite` and `postgres` add how each one is opened and locked.
//!
//! sipform creates and migrates its own tables (in the connection's default schema):
//!
//! - `sipform_schema_version(version)`: the table layout's version; a newer one is refused.
//! - `sipform_state_meta(lineage, version, serial, account_id, updated_at, project, rollout)`:
//!   one row per lineage, `project` the JSON [`ProjectRef`] it belongs to (NULL: written before
//!   projects were recorded), `rollout` the JSON rollout record ([`State::rollout`]; NULL
//!   when none was recorded).
//! - `sipform_state_restaurants(lineage, restaurant_id, final_customer_id, agent_id, tools,
//!   api_token, objects, suspended, revision, token_digest)`: one row per restaurant, `tools` a
//!   JSON object of tool ids by name, `objects` the JSON of [`RestaurantState::objects`] (NULL
//!   when there are none), `token_digest` the salted digest of the tokens written back to the
//!   platform's row (never a token; NULL before layout 5 or when none was recorded).
//!
//! Several projects share one database side by side, one lineage each: a backend opened for a
//! project loads and writes only the lineage recorded for that project. With none recorded
//! yet, it adopts the one lineage recorded for no project (state written before projects were)
//! and records itself on its next write; otherwise its state starts empty. A lineage recorded
//! for the same project id with another account is refused, naming both. A commit of a second
//! lineage for one project is refused.
//!
//! Layout versions: 1 is the first; 2 added `project` and `objects` (nullable, so every row of
//! a version-1 database stays as it was); 3 `suspended`, 4 `revision`, 5 `token_digest`, 6
//! the meta row's `rollout`. A fresh database is created at version 1 and
//! migrated, so the migration runs on every new database, not only on old ones.
//! - `sipform_state_lock(name, holder)`: who holds the lock (JSON [`LockInfo`]), for the
//!   message the waiter sees.
//!
//! A commit is one transaction: the changed restaurants' rows are upserted or deleted and the
//! serial updated (a commit with no changes rewrites every row: migrate and `state rm` use it).
//!
//! Locking: PostgreSQL takes a session-level advisory lock (`pg_try_advisory_lock`, keyed by the
//! schema and the project, so projects side by side do not wait for each other) on a dedicated connection held by the guard, polling until the timeout, so two
//! applies on different machines never run at once; the server releases it if the process dies.
//! SQLite is a local file, so it is locked like the file backend: an OS lock on `<database>.lock`
//! beside it, which also records the holder, and which the OS releases if the process dies.
//!
//! [`LockInfo`]: super::LockInfo
//! [`ProjectRef`]: super::ProjectRef
//! [`RestaurantState::objects`]: super::RestaurantState::objects

mod postgres;
mod sqlite;

pub use postgres::PostgresState;
pub use sqlite::SqliteState;

use sqlx::Row;
use uuid::Uuid;

use super::backend::StateError;
use super::model::{Change, ProjectRef, RestaurantState, State, STATE_FORMAT_VERSION};
use crate::db::{is_transient, with_pool, Db, Engine, Pool};
use crate::model::ids::{AccountId, AgentId, FinalCustomerId, RestaurantId};
use crate::model::rollout::{RolloutRecord, MAX_RECORD_BYTES};
use crate::model::secret::Secret;

/// Version of sipform's own table layout.
pub(crate) const SCHEMA_VERSION: i64 = 6;

/// The first layout with `project` and `objects` columns.
const SCHEMA_WITH_PROJECTS: i64 = 2;

/// The first layout with the `suspended` column (`sipform suspend`).
const SCHEMA_WITH_SUSPENDED: i64 = 3;

/// The first layout with a `revision` column (the revision that last reconciled a restaurant).
const SCHEMA_WITH_REVISIONS: i64 = 4;

/// The first layout with a `token_digest` column (the salted digest of the tokens written back).
const SCHEMA_WITH_TOKEN_DIGESTS: i64 = 5;

/// The first layout with the meta row's `rollout` column (the rollout record, once a file).
const SCHEMA_WITH_ROLLOUT: i64 = 6;

/// Layout version 1, as the first release created it. Later versions migrate from it.
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

/// What takes the layout from version `n - 1` to `n`, for each `n` up to [`SCHEMA_VERSION`].
/// Only additions of nullable columns: every existing row keeps its meaning.
const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        2,
        &[
            "ALTER TABLE sipform_state_meta ADD COLUMN project TEXT",
            "ALTER TABLE sipform_state_restaurants ADD COLUMN objects TEXT",
        ],
    ),
    // `sipform suspend`: '1' when suspended, NULL otherwise.
    (
        3,
        &["ALTER TABLE sipform_state_restaurants ADD COLUMN suspended TEXT"],
    ),
    (
        4,
        &["ALTER TABLE sipform_state_restaurants ADD COLUMN revision TEXT"],
    ),
    // The salted digest of the tokens written back to the platform's row, never a token.
    (
        5,
        &["ALTER TABLE sipform_state_restaurants ADD COLUMN token_digest TEXT"],
    ),
    // The rollout record (JSON), one per lineage: shared by every controller on this state.
    (
        6,
        &["ALTER TABLE sipform_state_meta ADD COLUMN rollout TEXT"],
    ),
];

/// The tables, shared by both engines.
struct Tables {
    db: Db,
    /// The project this run is: it reads and writes that project's lineage only. `None` (a
    /// `state` command outside a project) takes the database's only lineage.
    project: Option<ProjectRef>,
    /// The server answered once (a fast, precise error instead of the pool's retries).
    reached: tokio::sync::OnceCell<()>,
    ready: tokio::sync::OnceCell<()>,
}

impl Tables {
    /// Nothing is touched until the first call.
    fn new(db: Db) -> Tables {
        Tables {
            db,
            project: None,
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
                    sqlx::query_scalar(SCHEMA_VERSION_SQL)
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
                    .bind(1_i64)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(what, e))?;
                }
                // Later layouts migrate here, from `found` up to SCHEMA_VERSION.
                let found = found.unwrap_or(1);
                for (version, steps) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
                    let what = "migrating sipform's tables";
                    for ddl in *steps {
                        sqlx::query(ddl)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| self.err(what, e))?;
                    }
                    sqlx::query(&format!(
                        "UPDATE sipform_schema_version SET version = {}",
                        self.ph(1)
                    ))
                    .bind(*version)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(what, e))?;
                }
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
        let (meta, rows) = with_pool!(self.db, p => {
            let mut tx = p.begin_with(begin).await.map_err(|e| self.err(what, e))?;
            let result = async {
                let version: Option<i64> =
                    sqlx::query_scalar(SCHEMA_VERSION_SQL)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| self.err(what, e))?;
                self.check_schema_version(version)?;
                // A version-1 layout (not migrated yet: loading never writes) has no project or
                // objects columns: it reads as if they were NULL.
                let v2 = version.unwrap_or(1) >= SCHEMA_WITH_PROJECTS;
                let project_col = if v2 { "project" } else { "NULL" };
                let objects_col = if v2 { "objects" } else { "NULL" };
                let suspended_col = if version.unwrap_or(1) >= SCHEMA_WITH_SUSPENDED {
                    "suspended"
                } else {
                    "NULL"
                };
                let revision_col = if version.unwrap_or(1) >= SCHEMA_WITH_REVISIONS {
                    "revision"
                } else {
                    "NULL"
                };
                let digest_col = if version.unwrap_or(1) >= SCHEMA_WITH_TOKEN_DIGESTS {
                    "token_digest"
                } else {
                    "NULL"
                };
                let rollout_col = if version.unwrap_or(1) >= SCHEMA_WITH_ROLLOUT {
                    "rollout"
                } else {
                    "NULL"
                };
                let metas: Vec<MetaRow> = sqlx::query(&metas_sql(project_col, rollout_col))
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| self.err(what, e))?
                .iter()
                .map(MetaRow::from_row)
                .collect::<Result<_, sqlx::Error>>()
                .map_err(|e| self.err(what, e))?;
                let Some(meta) = self.pick(metas)? else {
                    return Ok::<_, StateError>((None, Vec::new()));
                };
                let rows: Vec<RestaurantRow> = sqlx::query(&format!(
                    "SELECT restaurant_id, final_customer_id, agent_id, tools, api_token, \
                     CAST({objects_col} AS TEXT), CAST({suspended_col} AS TEXT), \
                     CAST({revision_col} AS TEXT), CAST({digest_col} AS TEXT) \
                     FROM sipform_state_restaurants WHERE lineage = {} ORDER BY restaurant_id",
                    self.ph(1)
                ))
                .bind(meta.lineage.clone())
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| self.err(what, e))?
                .iter()
                .map(RestaurantRow::from_row)
                .collect::<Result<_, sqlx::Error>>()
                .map_err(|e| self.err(what, e))?;
                Ok::<_, StateError>((Some(meta), rows))
            }
            .await;
            finish(tx, result, |e| self.err(what, e)).await?
        });
        match meta {
            None => Ok(None),
            Some(meta) => self.state_of(meta, rows).map(Some),
        }
    }

    /// This project's lineage and serial, from its meta row alone (see
    /// [`StateBackend::stored_serial`]); `None` before the first write or in a version-1
    /// layout (not migrated yet: the caller loads).
    pub(super) async fn stored_serial(&self) -> Result<Option<(Uuid, u64)>, StateError> {
        if !self.exists().await? {
            return Ok(None);
        }
        let what = "reading";
        let begin = self.begin_read();
        let meta = with_pool!(self.db, p => {
            let mut tx = p.begin_with(begin).await.map_err(|e| self.err(what, e))?;
            let result = async {
                let version: Option<i64> =
                    sqlx::query_scalar(SCHEMA_VERSION_SQL)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| self.err(what, e))?;
                if version.unwrap_or(1) < SCHEMA_WITH_PROJECTS {
                    return Ok::<_, StateError>(None);
                }
                let metas: Vec<MetaRow> = sqlx::query(&metas_sql("project", "NULL"))
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| self.err(what, e))?
                .iter()
                .map(MetaRow::from_row)
                .collect::<Result<_, sqlx::Error>>()
                .map_err(|e| self.err(what, e))?;
                self.pick(metas)
            }
            .await;
            finish(tx, result, |e| self.err(what, e)).await?
        });
        let Some(meta) = meta else { return Ok(None) };
        let lineage = Uuid::parse_str(&meta.lineage)
            .map_err(|e| self.corrupt(format!("lineage {:?}: {e}", meta.lineage)))?;
        let serial = u64::try_from(meta.serial)
            .map_err(|_| self.corrupt(format!("negative serial {}", meta.serial)))?;
        Ok(Some((lineage, serial)))
    }

    /// The state a lineage's meta row and restaurant rows hold, checked as it is read.
    fn state_of(&self, meta: MetaRow, rows: Vec<RestaurantRow>) -> Result<State, StateError> {
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
        let version = u32::try_from(meta.version)
            .map_err(|_| self.corrupt(format!("format version {}", meta.version)))?;
        let mut state = State {
            // As written: a version-1 state reads back as version 1 (a copy compares equal).
            version,
            lineage,
            serial,
            project: self.project_of(&meta)?,
            account_id: meta.account_id.clone().map(AccountId::new),
            restaurants: Default::default(),
            rollout: self.rollout_of(&meta)?,
        };
        if let Some(me) = &self.project {
            // Adopts a lineage recorded for no project; `pick` refused any other.
            state.bind(me);
        }
        for r in rows {
            let (id, rs) = self.restaurant_of(r)?;
            if !rs.is_empty() {
                state.restaurants.insert(id, rs);
            }
        }
        Ok(state)
    }

    /// One restaurant's row, its JSON columns decoded.
    fn restaurant_of(
        &self,
        r: RestaurantRow,
    ) -> Result<(RestaurantId, RestaurantState), StateError> {
        let tools = serde_json::from_str(&r.tools)
            .map_err(|e| self.corrupt(format!("restaurant {}: tools: {e}", r.restaurant_id)))?;
        let objects = match &r.objects {
            None => Default::default(),
            Some(text) => serde_json::from_str(text).map_err(|e| {
                self.corrupt(format!("restaurant {}: objects: {e}", r.restaurant_id))
            })?,
        };
        let revision = match &r.revision {
            None => None,
            Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                self.corrupt(format!("restaurant {}: revision: {e}", r.restaurant_id))
            })?),
        };
        let rs = RestaurantState {
            final_customer_id: r.final_customer_id.map(FinalCustomerId::new),
            agent_id: r.agent_id.map(AgentId::new),
            tools,
            api_token: r.api_token.map(Secret::new),
            objects,
            suspended: r.suspended.as_deref() == Some("1"),
            revision,
            token_digest: r.token_digest,
        };
        Ok((RestaurantId::new(r.restaurant_id), rs))
    }

    /// The rollout record a meta row holds, if any, its size and format checked.
    fn rollout_of(&self, meta: &MetaRow) -> Result<Option<Box<RolloutRecord>>, StateError> {
        let Some(text) = meta.rollout.as_deref() else {
            return Ok(None);
        };
        let bad = |why: String| self.corrupt(format!("lineage {}: rollout: {why}", meta.lineage));
        if text.len() > MAX_RECORD_BYTES {
            return Err(bad(format!("larger than {MAX_RECORD_BYTES} bytes")));
        }
        let record: RolloutRecord = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        record.check().map_err(bad)?;
        Ok(Some(Box::new(record)))
    }

    /// The project a meta row records, if any.
    fn project_of(&self, meta: &MetaRow) -> Result<Option<ProjectRef>, StateError> {
        meta.project
            .as_deref()
            .map(|text| {
                serde_json::from_str(text)
                    .map_err(|e| self.corrupt(format!("lineage {}: project: {e}", meta.lineage)))
            })
            .transpose()
    }

    /// Which lineage this run reads: its project's; else the one recorded for no project (to
    /// adopt); else none. Unbound, the database's only lineage. See the module's doc.
    fn pick(&self, metas: Vec<MetaRow>) -> Result<Option<MetaRow>, StateError> {
        let mut mine = Vec::new();
        let mut legacy = Vec::new();
        let mut all = Vec::new();
        for m in metas {
            let recorded = self.project_of(&m)?;
            match (&self.project, &recorded) {
                (None, _) => all.push(m),
                (Some(me), Some(r)) if r.id == me.id && r.account != me.account => {
                    return Err(StateError::OtherProject {
                        place: self.place(),
                        found: Box::new(r.clone()),
                        expected: Box::new(me.clone()),
                    })
                }
                (Some(me), Some(r)) if r == me => mine.push(m),
                (Some(_), None) => legacy.push(m),
                (Some(_), Some(_)) => {}
            }
        }
        let (candidates, whose) = match &self.project {
            None => (all, "of this database".to_string()),
            Some(me) if !mine.is_empty() => (mine, format!("of {me}")),
            Some(_) => (legacy, "recorded for no project".to_string()),
        };
        if candidates.len() > 1 {
            return Err(StateError::Backend {
                place: self.place(),
                message: format!(
                    "holds {} lineages {whose} ({}), but a project has one; \
                     remove the ones that are not this project's{}",
                    candidates.len(),
                    candidates
                        .iter()
                        .map(|m| m.lineage.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if self.project.is_none() {
                        ", or run sipform in the project's folder"
                    } else {
                        ""
                    }
                ),
            });
        }
        Ok(candidates.into_iter().next())
    }

    async fn commit(&self, state: &State, changes: &[Change]) -> Result<(), StateError> {
        self.ensure().await?;
        let what = "writing";
        let w = self.prepare(state, changes)?;
        let sql = CommitSql::new(self);
        let begin = self.begin_write();
        with_pool!(self.db, p => {
            let mut tx = p.begin_with(begin).await.map_err(|e| self.err(what, e))?;
            let result = async {
                let metas = sqlx::query(&sql.select_metas)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| self.err(what, e))?
                    .iter()
                    .map(MetaRow::from_row)
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .map_err(|e| self.err(what, e))?;
                self.may_write(state, w.project, &metas)?;
                sqlx::query(&sql.upsert_meta)
                    .bind(w.lineage.clone())
                    .bind(i64::from(state.version))
                    .bind(w.serial)
                    .bind(state.account_id.as_ref().map(|a| a.as_str().to_string()))
                    .bind(chrono::Utc::now().to_rfc3339())
                    .bind(w.project_json.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(what, e))?;
                if let Some(record) = &w.rollout {
                    sqlx::query(&sql.update_rollout)
                        .bind(record.clone())
                        .bind(w.lineage.clone())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(&format!("{what} (the rollout record)"), e))?;
                }
                if w.every_row {
                    sqlx::query(&sql.delete_all)
                        .bind(w.lineage.clone())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(what, e))?;
                }
                for rid in &w.deletes {
                    sqlx::query(&sql.delete_row)
                        .bind(w.lineage.clone())
                        .bind(rid.clone())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(what, e))?;
                }
                for UpsertRow(rid, fc, agent, tools, token, objects, suspended, revision, digest) in &w.upserts {
                    sqlx::query(&sql.upsert_row)
                        .bind(w.lineage.clone())
                        .bind(rid.clone())
                        .bind(fc.clone())
                        .bind(agent.clone())
                        .bind(tools.clone())
                        .bind(token.clone())
                        .bind(objects.clone())
                        .bind(suspended.then_some("1"))
                        .bind(revision.clone())
                        .bind(digest.clone())
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

    /// What a commit of `state` writes, encoded before its transaction begins.
    fn prepare<'s>(
        &'s self,
        state: &'s State,
        changes: &[Change],
    ) -> Result<Write<'s>, StateError> {
        let serial = i64::try_from(state.serial).map_err(|_| StateError::Backend {
            place: self.place(),
            message: format!(
                "serial {} is too large for a database column; restore state from a backup",
                state.serial
            ),
        })?;
        // The project written with it: this run's, else the one the state already records.
        let project = self.project.as_ref().or(state.project.as_ref());
        let project_json = project
            .map(|p| {
                serde_json::to_string(p).map_err(|e| StateError::Backend {
                    place: self.place(),
                    message: format!("cannot encode the project: {e}"),
                })
            })
            .transpose()?;
        // Which restaurants to write: the changed ones, or all of them.
        let touched: Option<std::collections::BTreeSet<&RestaurantId>> = if changes.is_empty() {
            None
        } else {
            Some(changes.iter().filter_map(Change::restaurant).collect())
        };
        let (upserts, deletes) = self.rows_to_write(state, touched.as_ref())?;
        let rollout = (touched.is_none()
            || changes.iter().any(|c| matches!(c, Change::Rollout(_))))
        .then(|| self.encode_rollout(state))
        .transpose()?;
        Ok(Write {
            rollout,
            lineage: state.lineage.to_string(),
            serial,
            project,
            project_json,
            every_row: touched.is_none(),
            upserts,
            deletes,
        })
    }

    /// The JSON of `state`'s rollout record (`None`: it holds none), refused when too large.
    fn encode_rollout(&self, state: &State) -> Result<Option<String>, StateError> {
        let Some(record) = &state.rollout else {
            return Ok(None);
        };
        let refuse = |why: String| StateError::Backend {
            place: self.place(),
            message: format!("cannot record the rollout: {why}"),
        };
        record.check().map_err(refuse)?;
        serde_json::to_string(record)
            .map(Some)
            .map_err(|e| refuse(e.to_string()))
    }

    /// The rows a commit upserts (restaurants with something to remember) and deletes: those
    /// `touched`, or all of them.
    fn rows_to_write(
        &self,
        state: &State,
        touched: Option<&std::collections::BTreeSet<&RestaurantId>>,
    ) -> Result<(Vec<UpsertRow>, Vec<String>), StateError> {
        let encode = |rid: &RestaurantId, what: &str, r: serde_json::Result<String>| {
            r.map_err(|e| StateError::Backend {
                place: self.place(),
                message: format!("cannot encode restaurant {rid}'s {what}: {e}"),
            })
        };
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        let rows: Box<dyn Iterator<Item = &RestaurantId>> = match touched {
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
                    encode(rid, "tools", serde_json::to_string(&rs.tools))?,
                    rs.api_token.as_ref().map(|t| t.expose().clone()),
                    match rs.objects.is_empty() {
                        true => None,
                        false => Some(encode(rid, "objects", serde_json::to_string(&rs.objects))?),
                    },
                    rs.suspended,
                    rs.revision
                        .as_ref()
                        .map(|r| encode(rid, "revision", serde_json::to_string(r)))
                        .transpose()?,
                    rs.token_digest.clone(),
                )),
                None => deletes.push(rid.as_str().to_string()),
            }
        }
        Ok((upserts, deletes))
    }

    /// Refuses a commit of `state` for `project` over what is stored: its own lineage recorded
    /// for another project (adopted meanwhile), a newer format or serial, or a second lineage
    /// of the same project. Other projects' lineages are none of its business; unbound, every
    /// other lineage is refused (one project per database, as before projects were recorded).
    fn may_write(
        &self,
        state: &State,
        project: Option<&ProjectRef>,
        metas: &[MetaRow],
    ) -> Result<(), StateError> {
        let lineage = state.lineage.to_string();
        for m in metas {
            let recorded = self.project_of(m)?;
            if m.lineage != lineage {
                let same_project = match project {
                    None => true,
                    Some(p) => recorded.as_ref() == Some(p),
                };
                if same_project {
                    return Err(StateError::Lineage {
                        place: self.place(),
                        found: Uuid::parse_str(&m.lineage).unwrap_or_default(),
                        expected: state.lineage,
                    });
                }
                continue;
            }
            if let (Some(found), Some(p)) = (recorded, project) {
                if &found != p {
                    return Err(StateError::OtherProject {
                        place: self.place(),
                        found: Box::new(found),
                        expected: Box::new(p.clone()),
                    });
                }
            }
            if m.version > i64::from(STATE_FORMAT_VERSION) {
                return Err(StateError::FutureVersion {
                    place: self.place(),
                    found: u32::try_from(m.version).unwrap_or(u32::MAX),
                });
            }
            // Compare-and-set inside the commit's transaction: the stored serial must be
            // older than this write's. Two writers that loaded the same state (a deposed
            // leader and its successor) cannot both commit the next serial: the second is
            // refused, whatever the leases say (issue 24, fencing).
            if m.serial >= i64::try_from(state.serial).unwrap_or(i64::MAX) {
                return Err(StateError::Stale {
                    place: self.place(),
                    stored: u64::try_from(m.serial).unwrap_or_default(),
                    serial: state.serial,
                });
            }
        }
        Ok(())
    }
}

/// The layout's version (the highest applied migration).
const SCHEMA_VERSION_SQL: &str = "SELECT CAST(max(version) AS BIGINT) FROM sipform_schema_version";

/// Every lineage's meta row, its project read from `project_col` (`NULL` in a version-1
/// layout) and its rollout record from `rollout_col` (`NULL` before layout 6, or when not
/// needed).
fn metas_sql(project_col: &str, rollout_col: &str) -> String {
    format!(
        "SELECT lineage, CAST(version AS BIGINT), CAST(serial AS BIGINT), account_id, \
         CAST({project_col} AS TEXT), CAST({rollout_col} AS TEXT) FROM sipform_state_meta \
         ORDER BY lineage"
    )
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

/// What one commit writes, encoded.
struct Write<'s> {
    lineage: String,
    serial: i64,
    /// The project the lineage is recorded for, and its JSON.
    project: Option<&'s ProjectRef>,
    project_json: Option<String>,
    /// Every restaurant row is rewritten (the old ones deleted first), not only the changed.
    every_row: bool,
    upserts: Vec<UpsertRow>,
    deletes: Vec<String>,
    /// The rollout record's JSON to store (`Some(None)` clears it), when the commit carries
    /// one or rewrites everything.
    rollout: Option<Option<String>>,
}

/// The statements of a commit, with the engine's placeholders.
struct CommitSql {
    select_metas: String,
    upsert_meta: String,
    upsert_row: String,
    delete_row: String,
    delete_all: String,
    update_rollout: String,
}

impl CommitSql {
    fn new(t: &Tables) -> CommitSql {
        let ph = |n| t.ph(n);
        let phs = |n: usize| (1..=n).map(ph).collect::<Vec<_>>().join(", ");
        CommitSql {
            // Every other run's commit waits here until this one ends (SQLite's BEGIN
            // IMMEDIATE does the same), so two projects never both adopt one lineage.
            select_metas: format!(
                "SELECT lineage, CAST(version AS BIGINT), CAST(serial AS BIGINT), account_id, \
                 CAST(project AS TEXT), CAST(NULL AS TEXT) FROM sipform_state_meta{}",
                if t.db.engine() == Engine::Postgres {
                    " FOR UPDATE"
                } else {
                    ""
                }
            ),
            upsert_meta: format!(
                "INSERT INTO sipform_state_meta \
                 (lineage, version, serial, account_id, updated_at, project) \
                 VALUES ({}) ON CONFLICT (lineage) DO UPDATE SET \
                 version = excluded.version, serial = excluded.serial, \
                 account_id = excluded.account_id, updated_at = excluded.updated_at, \
                 project = COALESCE(excluded.project, sipform_state_meta.project)",
                phs(6)
            ),
            upsert_row: format!(
                "INSERT INTO sipform_state_restaurants \
                 (lineage, restaurant_id, final_customer_id, agent_id, tools, api_token, objects, \
                 suspended, revision, token_digest) \
                 VALUES ({}) ON CONFLICT (lineage, restaurant_id) DO UPDATE SET \
                 final_customer_id = excluded.final_customer_id, agent_id = excluded.agent_id, \
                 tools = excluded.tools, api_token = excluded.api_token, objects = excluded.objects, \
                 suspended = excluded.suspended, revision = excluded.revision, \
                 token_digest = excluded.token_digest",
                phs(10)
            ),
            delete_row: format!(
                "DELETE FROM sipform_state_restaurants WHERE lineage = {} AND restaurant_id = {}",
                ph(1),
                ph(2)
            ),
            delete_all: format!(
                "DELETE FROM sipform_state_restaurants WHERE lineage = {}",
                ph(1)
            ),
            update_rollout: format!(
                "UPDATE sipform_state_meta SET rollout = {} WHERE lineage = {}",
                ph(1),
                ph(2)
            ),
        }
    }
}

/// restaurant_id, final_customer_id, agent_id, tools JSON, api_token, objects JSON, suspended,
/// revision JSON, token digest.
struct UpsertRow(
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    bool,
    Option<String>,
    Option<String>,
);

struct MetaRow {
    lineage: String,
    version: i64,
    serial: i64,
    account_id: Option<String>,
    /// JSON [`ProjectRef`]; `None` before projects were recorded.
    project: Option<String>,
    /// JSON rollout record; `None` when none was recorded (or not read).
    rollout: Option<String>,
}

struct RestaurantRow {
    restaurant_id: String,
    final_customer_id: Option<String>,
    agent_id: Option<String>,
    tools: String,
    api_token: Option<String>,
    objects: Option<String>,
    /// `'1'` when suspended.
    suspended: Option<String>,
    revision: Option<String>,
    token_digest: Option<String>,
}

impl MetaRow {
    /// `lineage, version, serial, account_id, project, rollout`, in that order.
    fn from_row<R: Row>(r: &R) -> Result<MetaRow, sqlx::Error>
    where
        usize: sqlx::ColumnIndex<R>,
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        Ok(MetaRow {
            lineage: r.try_get(0)?,
            version: r.try_get(1)?,
            serial: r.try_get(2)?,
            account_id: r.try_get(3)?,
            project: r.try_get(4)?,
            rollout: r.try_get(5)?,
        })
    }
}

impl RestaurantRow {
    /// `restaurant_id, final_customer_id, agent_id, tools, api_token, objects, suspended,
    /// revision, token_digest`, in that order.
    fn from_row<R: Row>(r: &R) -> Result<RestaurantRow, sqlx::Error>
    where
        usize: sqlx::ColumnIndex<R>,
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        Ok(RestaurantRow {
            restaurant_id: r.try_get(0)?,
            final_customer_id: r.try_get(1)?,
            agent_id: r.try_get(2)?,
            tools: r.try_get(3)?,
            api_token: r.try_get(4)?,
            objects: r.try_get(5)?,
            suspended: r.try_get(6)?,
            revision: r.try_get(7)?,
            token_digest: r.try_get(8)?,
        })
    }
}
