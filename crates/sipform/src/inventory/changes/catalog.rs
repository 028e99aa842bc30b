//! Is the feed installed? One catalog query per table (`pg_trigger`, `sqlite_master`): cheap
//! enough for every poll on SQLite, where the platform's ORM rebuilds a table (dropping its
//! triggers) whenever its schema changes.

use std::collections::BTreeMap;

use sqlx::Row;

use super::sql::{Names, VERSION_MARK};
use crate::db::{quote_ident, Db, DbError, Pool, TableName};

/// What the catalog says about the feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// What is missing, for messages: `trigger "x" on table restaurants`, `change log …`.
    pub missing: Vec<String>,
    /// `phone_lines` exists beside the table (its triggers are part of the feed).
    pub lines: bool,
}

impl Catalog {
    pub fn installed(&self) -> bool {
        self.missing.is_empty()
    }
}

/// Reads the catalog for the feed of `names`.
pub async fn read(db: &Db, names: &Names) -> Result<Catalog, DbError> {
    let postgres = matches!(db.pool(), Pool::Postgres(_));
    let mut missing = Vec::new();
    if !table_exists(db, &names.log).await? {
        missing.push(format!("change log {}", names.log));
    }
    let on_table = triggers(db, &names.table).await?;
    for t in names.triggers(postgres) {
        if on_table.get(&t).map(String::as_str) != Some("current") {
            missing.push(describe(&t, &names.table, on_table.get(&t)));
        }
    }
    let lines = table_exists(db, &names.lines).await?;
    if lines {
        let on_lines = triggers(db, &names.lines).await?;
        for t in names.line_triggers(postgres) {
            if on_lines.get(&t).map(String::as_str) != Some("current") {
                missing.push(describe(&t, &names.lines, on_lines.get(&t)));
            }
        }
    }
    Ok(Catalog { missing, lines })
}

fn describe(trigger: &str, table: &TableName, found: Option<&String>) -> String {
    match found.map(String::as_str) {
        Some("disabled") => format!("trigger {trigger} on table {table} (disabled)"),
        Some(_) => format!("trigger {trigger} on table {table} (an older version)"),
        None => format!("trigger {trigger} on table {table}"),
    }
}

async fn table_exists(db: &Db, table: &TableName) -> Result<bool, DbError> {
    let what = format!("looking for table {table}");
    match db.pool() {
        Pool::Postgres(p) => sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
            .bind(table.quoted())
            .fetch_one(p)
            .await
            .map_err(|e| db.err(&what, e)),
        Pool::Sqlite(p) => {
            let sql = format!(
                "SELECT count(*) FROM {}.sqlite_master WHERE type = 'table' AND name = ?1",
                schema_of(table)
            );
            let n: i64 = sqlx::query_scalar(&sql)
                .bind(&table.name)
                .fetch_one(p)
                .await
                .map_err(|e| db.err(&what, e))?;
            Ok(n > 0)
        }
    }
}

fn schema_of(table: &TableName) -> String {
    quote_ident(table.schema.as_deref().unwrap_or("main"))
}

/// The triggers on `table`: name → `current` (this version of the feed), `disabled`, `older`.
async fn triggers(db: &Db, table: &TableName) -> Result<BTreeMap<String, String>, DbError> {
    let what = format!("reading the triggers of table {table}");
    let rows: Vec<(String, String)> = match db.pool() {
        Pool::Postgres(p) => sqlx::query(
            "SELECT t.tgname::text, CASE WHEN t.tgenabled = 'D' THEN 'disabled' \
             WHEN obj_description(t.oid, 'pg_trigger') = $2 THEN 'current' ELSE 'older' END \
             FROM pg_trigger t WHERE t.tgrelid = to_regclass($1) AND NOT t.tgisinternal",
        )
        .bind(table.quoted())
        .bind(VERSION_MARK)
        .fetch_all(p)
        .await
        .map_err(|e| db.err(&what, e))?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(|e| db.err(&what, e))?,
        Pool::Sqlite(p) => {
            let sql = format!(
                "SELECT name, CASE WHEN instr(sql, ?2) > 0 THEN 'current' ELSE 'older' END \
                 FROM {}.sqlite_master WHERE type = 'trigger' AND tbl_name = ?1",
                schema_of(table)
            );
            sqlx::query(&sql)
                .bind(&table.name)
                .bind(VERSION_MARK)
                .fetch_all(p)
                .await
                .map_err(|e| db.err(&what, e))?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_, sqlx::Error>>()
                .map_err(|e| db.err(&what, e))?
        }
    };
    Ok(rows.into_iter().collect())
}
