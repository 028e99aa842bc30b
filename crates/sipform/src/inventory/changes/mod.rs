//! The change log of the platform's table: which rows of the platform's table changed since the last look.
//!
//! `install-trigger` creates a change-log table beside the restaurants table and triggers that
//! append the id of every inserted, updated or deleted restaurant to it, and of the restaurant
//! of every inserted, updated or deleted `phone_lines` row (the SIP form commits the line
//! after the restaurant). An update that only touches the columns sipform writes back is not a
//! change: the controller's own write-back must not wake it. On PostgreSQL the triggers also
//! send a `NOTIFY`, so a listening controller reads the log at once instead of at its next
//! poll. The SQL is [`sql`]'s (no trigger names a column); whether it is installed is
//! [`catalog`]'s.
//!
//! Reading the log costs O(changed rows): a primary-key range of the pending entries, which
//! are deleted once queued (by the exact sequence numbers read, so an entry committed in
//! between is never lost). Without the log (the platform did not install the trigger) the
//! controller relies on the webhook and the periodic full resync.

pub mod catalog;
pub mod sql;

use std::time::Duration;

use sqlx::Row;

use super::table::{PlatformTable, PLATFORM_COLUMNS, TOKEN_COLUMNS};
use crate::db::{with_pool, DbError, Engine, Pool};
use crate::model::ids::RestaurantId;

pub(crate) use catalog::Catalog;
pub(crate) use sql::CHANNEL;

/// Most entries read per look; the rest come at the next one, at once.
const MAX_READ: i64 = 5000;

/// How long `install` waits for the platform's locks before giving up: a deploy must never
/// queue the platform's reads behind sipform's DDL for long.
pub(crate) const INSTALL_LOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// The change log of one platform table.
#[derive(Clone)]
pub struct ChangeLog {
    table: PlatformTable,
}

impl ChangeLog {
    pub fn new(table: PlatformTable) -> ChangeLog {
        ChangeLog { table }
    }

    /// The names of the log, the functions and the triggers.
    pub fn names(&self) -> sql::Names {
        let t = self.table.table_name();
        sql::Names::new(t, super::phone_lines::beside(t))
    }

    /// The columns as the SQL needs them (mapped by `inventory.columns`).
    fn shape(&self, lines: bool) -> sql::Shape {
        let cols = self.table.columns();
        let write_back = sql::WRITE_BACK
            .iter()
            .filter(|c| self.table.write_back_tokens() || !TOKEN_COLUMNS.contains(c))
            .map(|c| cols.get(c).to_string())
            .collect();
        sql::Shape {
            id: cols.get("id").to_string(),
            watched: PLATFORM_COLUMNS
                .iter()
                .filter(|c| !sql::WRITE_BACK.contains(c))
                .map(|c| cols.get(c).to_string())
                .collect(),
            write_back,
            lines,
        }
    }

    /// The SQL `install-trigger` runs (and `--print-sql` prints): idempotent, so it can run
    /// at every deploy or sit in the platform's migrations. `phone_lines` gets its trigger
    /// when it exists.
    pub async fn install_sql(&self) -> Result<String, DbError> {
        let lines = self.catalog().await?.lines;
        Ok(self.sql_for(lines))
    }

    fn sql_for(&self, lines: bool) -> String {
        let shape = self.shape(lines);
        match self.table.db().engine() {
            Engine::Postgres => sql::postgres(&self.names(), &shape),
            Engine::Sqlite => sql::sqlite(&self.names(), &shape),
        }
    }

    /// What the catalog says: which of the feed's triggers (and its log) are missing.
    pub async fn catalog(&self) -> Result<Catalog, DbError> {
        catalog::read(self.table.db(), &self.names()).await
    }

    /// Creates or updates the log and the triggers, in one transaction, unless the catalog
    /// says they are installed already (then no DDL runs, and no lock is taken). Waits at most
    /// [`INSTALL_LOCK_TIMEOUT`] for the platform's locks. `Ok(true)`: the DDL ran.
    pub async fn install(&self) -> Result<bool, DbError> {
        let found = self.catalog().await?;
        if found.installed() {
            return Ok(false);
        }
        let sql = self.sql_for(found.lines);
        let db = self.table.db();
        let ms = INSTALL_LOCK_TIMEOUT.as_millis();
        let locked = |e: sqlx::Error| {
            if crate::db::is_transient(&e) {
                DbError::Query {
                    place: db.describe(),
                    message: format!(
                        "installing the change trigger: the platform's tables are locked by another \
                         transaction (waited {ms} ms); nothing was changed, run it again later ({})",
                        db.scrub(&e.to_string())
                    ),
                    transient: true,
                }
            } else {
                db.err("installing the change trigger", e)
            }
        };
        match db.pool() {
            Pool::Postgres(p) => {
                let mut tx = p
                    .begin()
                    .await
                    .map_err(|e| db.err("starting a transaction", e))?;
                sqlx::raw_sql(&format!("SET LOCAL lock_timeout = '{ms}ms'"))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| db.err("setting lock_timeout", e))?;
                sqlx::raw_sql(&sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(locked)?;
                tx.commit().await.map_err(locked)?;
            }
            Pool::Sqlite(p) => {
                let mut conn = p.acquire().await.map_err(|e| db.err("connecting", e))?;
                let wrapped =
                    format!("PRAGMA busy_timeout = {ms};\nBEGIN IMMEDIATE;\n{sql}COMMIT;\n");
                let ran = sqlx::raw_sql(&wrapped).execute(&mut *conn).await;
                if ran.is_err() {
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                }
                // Back to the pool's own wait for the connection's next use.
                let _ = sqlx::raw_sql(&format!(
                    "PRAGMA busy_timeout = {}",
                    crate::db::SQLITE_BUSY_TIMEOUT.as_millis()
                ))
                .execute(&mut *conn)
                .await;
                ran.map_err(locked)?;
            }
        }
        Ok(true)
    }

    /// Whether the log exists (the trigger was installed).
    pub async fn present(&self) -> Result<bool, DbError> {
        let log = self.names().log;
        let db = self.table.db();
        match db.pool() {
            Pool::Postgres(p) => {
                sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
                    .bind(log.quoted())
                    .fetch_one(p)
                    .await
                    .map_err(|e| db.err("looking for the change log", e))
            }
            Pool::Sqlite(p) => {
                let schema = log.schema.clone().unwrap_or_else(|| "main".into());
                let sql = format!(
                    "SELECT count(*) FROM {}.sqlite_master WHERE type = 'table' AND name = ?1",
                    crate::db::quote_ident(&schema)
                );
                let n: i64 = sqlx::query_scalar(&sql)
                    .bind(&log.name)
                    .fetch_one(p)
                    .await
                    .map_err(|e| db.err("looking for the change log", e))?;
                Ok(n > 0)
            }
        }
    }

    /// Takes the pending entries: their restaurant ids (duplicates folded), deleted from the
    /// log. Bounded to a few thousand per call; call again while it returns `full`.
    pub async fn take(&self) -> Result<(Vec<RestaurantId>, bool), DbError> {
        let log = self.names().log.quoted();
        let db = self.table.db();
        let select = format!("SELECT seq, restaurant_id FROM {log} ORDER BY seq LIMIT {MAX_READ}");
        let rows: Vec<(i64, String)> = with_pool!(db, p => {
            sqlx::query(&select)
                .fetch_all(p)
                .await
                .map_err(|e| db.err("reading the change log", e))?
                .iter()
                .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(|e| db.err("reading the change log", e))?
        });
        if rows.is_empty() {
            return Ok((Vec::new(), false));
        }
        let full = rows.len() as i64 >= MAX_READ;
        let seqs: Vec<i64> = rows.iter().map(|(s, _)| *s).collect();
        match db.pool() {
            Pool::Postgres(p) => {
                sqlx::query(&format!("DELETE FROM {log} WHERE seq = ANY($1)"))
                    .bind(&seqs)
                    .execute(p)
                    .await
                    .map_err(|e| db.err("clearing the change log", e))?;
            }
            Pool::Sqlite(p) => {
                for chunk in seqs.chunks(500) {
                    let list: Vec<String> = chunk.iter().map(i64::to_string).collect();
                    sqlx::query(&format!(
                        "DELETE FROM {log} WHERE seq IN ({})",
                        list.join(",")
                    ))
                    .execute(p)
                    .await
                    .map_err(|e| db.err("clearing the change log", e))?;
                }
            }
        }
        let mut ids: Vec<RestaurantId> = rows
            .into_iter()
            .map(|(_, id)| RestaurantId::new(id))
            .collect();
        ids.sort();
        ids.dedup();
        Ok((ids, full))
    }
}
