//! The change log of the platform's table: which rows of the platform's table changed since the last look.
//!
//! `install-trigger` creates a change-log table beside the restaurants table and a trigger
//! that appends the id of every inserted, updated or deleted row to it (an update that only
//! touches the columns sipform writes back is not a change: the controller's own write-back
//! must not wake it). On PostgreSQL the trigger also sends a `NOTIFY`, so a listening
//! controller reads the log at once instead of at its next poll.
//!
//! Reading the log costs O(changed rows): a primary-key range of the pending entries, which
//! are deleted once queued (by the exact sequence numbers read, so an entry committed in
//! between is never lost). Without the log (the platform did not install the trigger) the
//! controller relies on the webhook and the periodic full resync.

use sqlx::Row;

use super::table::{PlatformTable, PLATFORM_COLUMNS, TOKEN_COLUMNS};
use crate::db::{quote_ident, with_pool, DbError, Engine, Pool, TableName};
use crate::model::ids::RestaurantId;

/// The PostgreSQL channel the trigger notifies (a wake-up only: the ids are in the log).
pub const CHANNEL: &str = "sipform_restaurant_changes";

/// The columns sipform writes back: an update of only these is not a change.
const WRITE_BACK: &[&str] = &["agent_id", "final_customer_id"];

/// Most entries read per look; the rest come at the next one, at once.
const MAX_READ: i64 = 5000;

/// A dollar-quote tag (`$sipform$`, else `$sipform_1$`, …) that does not occur in `body`, so
/// no identifier inside the body can end it early.
fn dollar_tag(body: &str) -> String {
    let mut tag = "$sipform$".to_string();
    let mut n = 0u32;
    while body.contains(&tag) {
        n += 1;
        tag = format!("$sipform_{n}$");
    }
    tag
}

/// An identifier as a `--` comment shows it: on one line (a line break in a quoted identifier
/// would end the comment and run what follows as SQL).
fn in_comment(quoted: &str) -> String {
    crate::escape::escape_for(quoted, false).into_owned()
}

/// The change log of one platform table.
#[derive(Clone)]
pub struct ChangeLog {
    table: PlatformTable,
}

impl ChangeLog {
    pub fn new(table: PlatformTable) -> ChangeLog {
        ChangeLog { table }
    }

    /// The log's name, in the restaurants table's schema: `<table>_sipform_changes`.
    fn log_name(&self) -> TableName {
        let t = self.table.table_name();
        TableName {
            schema: t.schema.clone(),
            name: format!("{}_sipform_changes", t.name),
        }
    }

    fn function_name(&self) -> TableName {
        let t = self.table.table_name();
        TableName {
            schema: t.schema.clone(),
            name: format!("{}_sipform_notify", t.name),
        }
    }

    /// The columns whose change is a change of the restaurant: every platform column sipform
    /// reads, not those it writes back.
    fn watched_columns(&self) -> Vec<String> {
        PLATFORM_COLUMNS
            .iter()
            .filter(|c| !WRITE_BACK.contains(c) && !TOKEN_COLUMNS.contains(c))
            .map(|c| self.table.columns().q(c))
            .collect()
    }

    /// The SQL `install-trigger` runs (and `--print-sql` prints): idempotent, so it can run
    /// at every deploy or sit in the platform's migrations.
    pub fn install_sql(&self) -> String {
        match self.table.db().engine() {
            Engine::Postgres => self.postgres_sql(),
            Engine::Sqlite => self.sqlite_sql(),
        }
    }

    fn postgres_sql(&self) -> String {
        let table = self.table.table_name().quoted();
        let log = self.log_name().quoted();
        let func = self.function_name().quoted();
        let trig = quote_ident(&format!("{}_sipform_changes", self.table.table_name().name));
        let id = self.table.columns().q("id");
        let watched = self.watched_columns().join(", ");
        let body = format!(
            "
DECLARE
    rid text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        rid := OLD.{id}::text;
    ELSE
        rid := NEW.{id}::text;
    END IF;
    INSERT INTO {log} (restaurant_id) VALUES (rid);
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END
"
        );
        let tag = dollar_tag(&body);
        let shown = in_comment(&table);
        format!(
            "-- sipform controller: a change log of {shown}, filled by a trigger, and a NOTIFY on
-- channel {CHANNEL}. Idempotent: safe to run again.
CREATE TABLE IF NOT EXISTS {log} (
    seq bigserial PRIMARY KEY,
    restaurant_id text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql AS {tag}{body}{tag};
DROP TRIGGER IF EXISTS {trig} ON {table};
CREATE TRIGGER {trig}
    AFTER INSERT OR DELETE OR UPDATE OF {watched} ON {table}
    FOR EACH ROW EXECUTE FUNCTION {func}();
"
        )
    }

    fn sqlite_sql(&self) -> String {
        let table = self.table.table_name().quoted();
        let log = self.log_name().quoted();
        let base = &self.table.table_name().name;
        let id = self.table.columns().q("id");
        let watched = self.watched_columns().join(", ");
        let trig = |op: &str| quote_ident(&format!("{base}_sipform_{op}"));
        let shown = in_comment(&table);
        format!(
            "-- sipform controller: a change log of {shown}, filled by triggers. Idempotent.
CREATE TABLE IF NOT EXISTS {log} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    restaurant_id TEXT NOT NULL,
    changed_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
DROP TRIGGER IF EXISTS {ins};
CREATE TRIGGER {ins} AFTER INSERT ON {table}
BEGIN INSERT INTO {log} (restaurant_id) VALUES (CAST(NEW.{id} AS TEXT)); END;
DROP TRIGGER IF EXISTS {upd};
CREATE TRIGGER {upd} AFTER UPDATE OF {watched} ON {table}
BEGIN INSERT INTO {log} (restaurant_id) VALUES (CAST(NEW.{id} AS TEXT)); END;
DROP TRIGGER IF EXISTS {del};
CREATE TRIGGER {del} AFTER DELETE ON {table}
BEGIN INSERT INTO {log} (restaurant_id) VALUES (CAST(OLD.{id} AS TEXT)); END;
",
            ins = trig("insert"),
            upd = trig("update"),
            del = trig("delete"),
        )
    }

    /// Creates or updates the log and the trigger, in one transaction.
    pub async fn install(&self) -> Result<(), DbError> {
        let sql = self.install_sql();
        let db = self.table.db();
        with_pool!(db, p => {
            let mut tx = p.begin().await.map_err(|e| db.err("starting a transaction", e))?;
            sqlx::raw_sql(&sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| db.err("installing the change trigger", e))?;
            tx.commit().await.map_err(|e| db.err("installing the change trigger", e))?;
        });
        Ok(())
    }

    /// Whether the log exists (the trigger was installed).
    pub async fn present(&self) -> Result<bool, DbError> {
        let log = self.log_name();
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
                    quote_ident(&schema)
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
        let log = self.log_name().quoted();
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
