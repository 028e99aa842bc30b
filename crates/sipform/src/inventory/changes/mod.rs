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
//! Reading the log costs O(changed rows): a primary-key range after the last entry read (and
//! the few numbers it skipped, which a transaction still open may commit later). An entry is
//! deleted once its restaurant is reconciled (by its exact sequence number), not when read: a
//! leader killed in between leaves it to the next leader, which reads the log from the start. Without the log (the platform did not install the trigger) the
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

/// How long a sequence number skipped by a read is looked for again: a platform transaction
/// that took it and commits later (PostgreSQL). Past this the periodic resync covers it.
const GAP_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Most skipped numbers looked for at once (a rolled-back bulk insert skips many).
const MAX_GAPS: usize = 2000;

/// One entry of the log: its sequence number and restaurant.
pub type Entry = (i64, RestaurantId);

/// How far a leader has read the log: the highest sequence number seen, and the numbers below
/// it not seen yet, with when they were first missed (see [`GAP_WAIT`]). A new leader starts
/// from zero: it reads what its predecessor read but did not acknowledge.
#[derive(Debug, Default)]
pub struct Cursor {
    high: i64,
    gaps: std::collections::BTreeMap<i64, std::time::Instant>,
}

impl Cursor {
    /// Takes `rows` (after `high`) and `late` (gaps that came), returns the entries in
    /// sequence order; records the numbers `rows` skipped as gaps when `track`.
    fn advance(
        &mut self,
        rows: Vec<(i64, String)>,
        late: Vec<(i64, String)>,
        track: bool,
        now: std::time::Instant,
    ) -> Vec<Entry> {
        for (seq, _) in &late {
            self.gaps.remove(seq);
        }
        for (seq, _) in &rows {
            if track {
                let from = self.high.saturating_add(1);
                // A cursor at zero (a new leader) has no gaps: what is below the first entry
                // was acknowledged before.
                if self.high > 0 {
                    for missing in from..*seq {
                        if self.gaps.len() >= MAX_GAPS {
                            break;
                        }
                        self.gaps.insert(missing, now);
                    }
                }
            }
            self.high = self.high.max(*seq);
        }
        self.gaps.retain(|_, at| now.duration_since(*at) < GAP_WAIT);
        let mut entries: Vec<Entry> = late
            .into_iter()
            .chain(rows)
            .map(|(seq, id)| (seq, RestaurantId::new(id)))
            .collect();
        entries.sort_by_key(|(seq, _)| *seq);
        entries
    }
}

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

    /// Reads the entries after `cursor` (and those it saw missing, see [`Cursor`]), oldest
    /// first, without deleting them: an entry is deleted by [`ChangeLog::ack`] once its
    /// restaurant is reconciled, so a leader killed in between leaves it to the next one.
    /// Bounded to a few thousand per call; call again while it returns `full`.
    pub async fn read(&self, cursor: &mut Cursor) -> Result<(Vec<Entry>, bool), DbError> {
        let log = self.names().log.quoted();
        let db = self.table.db();
        let select = format!(
            "SELECT seq, restaurant_id FROM {log} WHERE seq > {} ORDER BY seq LIMIT {MAX_READ}",
            cursor.high
        );
        let fetch = |sql: String| async move {
            with_pool!(db, p => {
                sqlx::query(&sql)
                    .fetch_all(p)
                    .await
                    .map_err(|e| db.err("reading the change log", e))?
                    .iter()
                    .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .map_err(|e| db.err("reading the change log", e))
            })
        };
        let rows = fetch(select).await?;
        let full = rows.len() as i64 >= MAX_READ;
        // PostgreSQL hands out sequence numbers before commit: a number skipped may still
        // come. SQLite commits one writer at a time, in order: a number skipped never comes.
        let late = match db.engine() {
            Engine::Postgres if !cursor.gaps.is_empty() => {
                let list: Vec<String> = cursor.gaps.keys().map(i64::to_string).collect();
                fetch(format!(
                    "SELECT seq, restaurant_id FROM {log} WHERE seq IN ({}) ORDER BY seq",
                    list.join(",")
                ))
                .await?
            }
            _ => Vec::new(),
        };
        let track = matches!(db.engine(), Engine::Postgres);
        let entries = cursor.advance(rows, late, track, std::time::Instant::now());
        Ok((entries, full))
    }

    /// Deletes the entries `seqs` (their restaurants are reconciled).
    pub async fn ack(&self, seqs: &[i64]) -> Result<(), DbError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let log = self.names().log.quoted();
        let db = self.table.db();
        for chunk in seqs.chunks(1000) {
            let list: Vec<String> = chunk.iter().map(i64::to_string).collect();
            let sql = format!("DELETE FROM {log} WHERE seq IN ({})", list.join(","));
            with_pool!(db, p => {
                sqlx::query(&sql)
                    .execute(p)
                    .await
                    .map_err(|e| db.err("clearing the change log", e))?;
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn rows(seqs: &[i64]) -> Vec<(i64, String)> {
        seqs.iter().map(|s| (*s, format!("r{s}"))).collect()
    }

    fn seqs(entries: &[Entry]) -> Vec<i64> {
        entries.iter().map(|(s, _)| *s).collect()
    }

    #[test]
    fn a_number_skipped_is_looked_for_until_it_comes() {
        let now = Instant::now();
        let mut c = Cursor::default();
        // A new leader: nothing below the first entry is missing.
        assert_eq!(
            seqs(&c.advance(rows(&[5, 6]), vec![], true, now)),
            vec![5, 6]
        );
        assert!(c.gaps.is_empty());
        // 7 and 8 taken by transactions not yet committed.
        assert_eq!(seqs(&c.advance(rows(&[9]), vec![], true, now)), vec![9]);
        assert_eq!(c.gaps.keys().copied().collect::<Vec<_>>(), vec![7, 8]);
        assert_eq!(c.high, 9);
        // 8 commits: read as a late entry, no longer missing; 7 still is.
        let got = c.advance(rows(&[10]), rows(&[8]), true, now);
        assert_eq!(seqs(&got), vec![8, 10]);
        assert_eq!(c.gaps.keys().copied().collect::<Vec<_>>(), vec![7]);
        // 7 was rolled back: given up after GAP_WAIT.
        c.advance(vec![], vec![], true, now + GAP_WAIT);
        assert!(c.gaps.is_empty());
    }

    #[test]
    fn gaps_are_bounded_and_not_tracked_on_sqlite() {
        let now = Instant::now();
        let mut c = Cursor::default();
        c.advance(rows(&[1]), vec![], true, now);
        c.advance(rows(&[1_000_000]), vec![], true, now);
        assert_eq!(c.gaps.len(), MAX_GAPS);
        let mut s = Cursor::default();
        s.advance(rows(&[1]), vec![], false, now);
        s.advance(rows(&[50]), vec![], false, now);
        assert!(s.gaps.is_empty());
        assert_eq!(s.high, 50);
    }
}
