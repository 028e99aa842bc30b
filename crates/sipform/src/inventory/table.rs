//! Reading restaurants from the platform's `restaurants` table.
//!
//! Which rows: every restaurant that needs an agent (`sip_enabled` or `chat_enabled`), and every
//! other one that already has an agent or a final customer (`agent_id` / `final_customer_id`
//! set, or among the `known` ids the caller passes, i.e. state's): those are planned inactive,
//! never forgotten, so a restaurant turned off is not mistaken for one deleted. The caller
//! passes plain ids rather than state itself, so the inventory does not depend on state.
//!
//! NULLs: a NULL column is an absent key, exactly as in a `restaurants/*.yaml` file, so the
//! template picks the default. For the booleans that means `false`, except `sip_enabled` and
//! `is_active`, whose absent value is `true` (the [`Restaurant`] type's default).

use std::collections::BTreeSet;
use std::path::Path;

use indexmap::IndexMap;
use sqlx::Row;

use super::cells::Cells;
use crate::db::{quote_ident, with_pool, Db, DbError, Engine, Purpose, TableName};
use crate::front::diagnostics::{Diagnostic, Origin, Skipped, Sourced};
use crate::inventory::InventoryRead;
use crate::model::ids::{ObjectId, RestaurantId};
use crate::model::spec::{restaurant_id_problem, ChatMode, PlatformRow, Restaurant};

/// Every platform column sipform reads or writes; `inventory.columns` may rename any of them.
pub(crate) const PLATFORM_COLUMNS: &[&str] = &[
    "id",
    "name",
    "phone",
    "contact_email",
    "ai_voice",
    "timezone",
    "delivery_enabled",
    "reservation_enabled",
    "order_status_enabled",
    "transfer_enabled",
    "transfer_automatic",
    "chat_enabled",
    "chat_open_on_load",
    "sip_enabled",
    "is_active",
    "transfer_phone_number",
    "chat_mode",
    "chat_title",
    "max_call_duration_sec",
    "agent_id",
    "final_customer_id",
    "agent_api_token",
    "agent_public_token",
];

/// The two token columns, needed only when `write_back_tokens` is on.
pub(crate) const TOKEN_COLUMNS: &[&str] = &["agent_api_token", "agent_public_token"];

/// Platform column name → the table's actual column name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMap(IndexMap<&'static str, String>);

impl ColumnMap {
    /// The platform's names, with `overrides` (platform name → actual name) applied. A key that
    /// is not a platform column is refused: a typo must not silently keep the default.
    pub fn new(overrides: &IndexMap<String, String>) -> Result<ColumnMap, DbError> {
        for key in overrides.keys() {
            if !PLATFORM_COLUMNS.contains(&key.as_str()) {
                return Err(DbError::UnknownColumnKey {
                    key: key.clone(),
                    expected: PLATFORM_COLUMNS.join(", "),
                });
            }
        }
        Ok(ColumnMap(
            PLATFORM_COLUMNS
                .iter()
                .map(|c| {
                    (
                        *c,
                        overrides.get(*c).cloned().unwrap_or_else(|| c.to_string()),
                    )
                })
                .collect(),
        ))
    }

    /// The actual name of platform column `platform` (which must be one of
    /// [`PLATFORM_COLUMNS`]; an unknown name is returned unchanged).
    pub fn get<'a>(&'a self, platform: &'a str) -> &'a str {
        self.0.get(platform).map(String::as_str).unwrap_or(platform)
    }

    /// The actual name, quoted for SQL.
    pub fn q(&self, platform: &str) -> String {
        quote_ident(self.get(platform))
    }
}

/// How a bound restaurant id is compared with the table's `id` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdMatch {
    /// `id = $n`: a text column, or SQLite (which converts by the column's affinity).
    Direct,
    /// `id = CAST($n AS uuid)`; an id that is not a UUID matches no row.
    Uuid,
    /// `id = CAST($n AS bigint)`; an id that is not an integer matches no row.
    Integer,
    /// `CAST(id AS TEXT) = $n`: any other type (slow but exact).
    AsText,
}

impl IdMatch {
    fn for_pg_type(ty: &str) -> IdMatch {
        let ty = ty.to_ascii_lowercase();
        if ty == "text" || ty.starts_with("character") || ty == "name" {
            IdMatch::Direct
        } else if ty == "uuid" {
            IdMatch::Uuid
        } else if matches!(ty.as_str(), "smallint" | "integer" | "bigint") {
            IdMatch::Integer
        } else {
            IdMatch::AsText
        }
    }

    /// Whether `id` can be equal to any value of the column at all.
    pub(crate) fn can_match(&self, id: &str) -> bool {
        match self {
            IdMatch::Uuid => uuid::Uuid::parse_str(id).is_ok(),
            IdMatch::Integer => id.trim().parse::<i64>().is_ok(),
            IdMatch::Direct | IdMatch::AsText => true,
        }
    }

    /// The SQL condition comparing quoted column `col` with placeholder `ph`.
    pub(crate) fn condition(&self, col: &str, ph: &str) -> String {
        match self {
            IdMatch::Direct => format!("{col} = {ph}"),
            IdMatch::Uuid => format!("{col} = CAST({ph} AS uuid)"),
            IdMatch::Integer => format!("{col} = CAST({ph} AS bigint)"),
            IdMatch::AsText => format!("CAST({col} AS TEXT) = {ph}"),
        }
    }
}

#[async_trait::async_trait]
impl super::Inventory for PlatformTable {
    fn describe(&self) -> String {
        PlatformTable::describe(self)
    }

    fn reads_known(&self) -> bool {
        true
    }

    async fn read_all(
        &self,
        known: &BTreeSet<RestaurantId>,
    ) -> Result<InventoryRead, super::InventoryError> {
        Ok(self.read_checked(known).await?)
    }

    async fn read_some(
        &self,
        ids: &BTreeSet<RestaurantId>,
    ) -> Result<InventoryRead, super::InventoryError> {
        Ok(PlatformTable::read_some(self, ids).await?)
    }

    async fn all_ids(&self) -> Result<Vec<RestaurantId>, super::InventoryError> {
        Ok(PlatformTable::all_ids(self).await?)
    }

    fn change_log(&self) -> Option<super::ChangeLog> {
        Some(super::ChangeLog::new(self.clone()))
    }

    fn write_back(&self) -> Option<super::WriteBack> {
        Some(PlatformTable::write_back(self))
    }

    fn database(&self) -> Option<&Db> {
        Some(&self.db)
    }

    fn scope(&self) -> String {
        self.table.to_string()
    }
}

/// The platform's restaurants table, checked to have every column sipform uses.
#[derive(Clone)]
pub struct PlatformTable {
    pub(super) db: Db,
    pub(super) table: TableName,
    pub(super) columns: ColumnMap,
    pub(super) write_back_tokens: bool,
    pub(super) id_match: IdMatch,
    /// The tokens this process last wrote to (or read for) each row, as salted digests: a row
    /// whose tokens were edited since is rewritten ([`super::writeback::WriteBack::drifted`]).
    pub(super) written_tokens: super::writeback::TokenDigests,
}

impl PlatformTable {
    /// Connects to `url` (a relative SQLite path is relative to `project_root`) and checks that
    /// `table` exists with every column sipform reads and writes back (the token columns only
    /// when `write_back_tokens`). A missing table or column is an error naming it.
    pub async fn open(
        url: &str,
        project_root: &Path,
        table: &str,
        columns: &IndexMap<String, String>,
        write_back_tokens: bool,
    ) -> Result<PlatformTable, DbError> {
        let columns = ColumnMap::new(columns)?;
        let db = Db::open_lazy(url, project_root, Purpose::Inventory)?;
        if let Some(path) = db.sqlite_path() {
            if !path.exists() {
                return Err(DbError::Connect {
                    place: db.describe(),
                    message: "no such database file".into(),
                });
            }
        }
        db.check_reachable().await?;
        let mut t = PlatformTable {
            db,
            table: TableName::parse(table),
            columns,
            write_back_tokens,
            id_match: IdMatch::Direct,
            written_tokens: Default::default(),
        };
        t.verify().await?;
        Ok(t)
    }

    /// `table restaurants in postgres postgres://…` (password redacted).
    pub fn describe(&self) -> String {
        format!("table {} in {}", self.table, self.db.describe())
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn write_back_tokens(&self) -> bool {
        self.write_back_tokens
    }

    /// The table's columns (name, type) from the catalog; empty when the table does not exist.
    async fn catalog(&self) -> Result<Vec<(String, String)>, DbError> {
        let db = &self.db;
        match db.pool() {
            crate::db::Pool::Sqlite(p) => {
                let schema = self.table.schema.clone().unwrap_or_else(|| "main".into());
                sqlx::query("SELECT name, type FROM pragma_table_info(?1, ?2)")
                    .bind(&self.table.name)
                    .bind(schema)
                    .fetch_all(p)
                    .await
                    .map_err(|e| db.err("reading the table's columns", e))?
                    .iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(|e| db.err("reading the table's columns", e))
            }
            crate::db::Pool::Postgres(p) => sqlx::query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
                 FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
            )
            .bind(self.table.quoted())
            .fetch_all(p)
            .await
            .map_err(|e| db.err("reading the table's columns", e))?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| db.err("reading the table's columns", e)),
        }
    }

    async fn verify(&mut self) -> Result<(), DbError> {
        let found = self.catalog().await?;
        if found.is_empty() {
            return Err(DbError::MissingTable {
                place: self.db.describe(),
                table: self.table.to_string(),
            });
        }
        let sqlite = self.db.engine() == Engine::Sqlite;
        let lookup = |name: &str| {
            found.iter().find(|(n, _)| {
                if sqlite {
                    n.eq_ignore_ascii_case(name)
                } else {
                    n == name
                }
            })
        };
        for platform in PLATFORM_COLUMNS {
            if !self.write_back_tokens && TOKEN_COLUMNS.contains(platform) {
                continue;
            }
            let actual = self.columns.get(platform);
            if lookup(actual).is_none() {
                let hint = if actual != *platform {
                    format!(" (the platform's column {platform}, renamed by inventory.columns)")
                } else if TOKEN_COLUMNS.contains(platform) {
                    " (needed to write tokens back; or set inventory.write_back_tokens: false)"
                        .to_string()
                } else {
                    String::new()
                };
                return Err(DbError::MissingColumn {
                    place: self.db.describe(),
                    table: self.table.to_string(),
                    column: actual.to_string(),
                    hint,
                });
            }
        }
        self.id_match = match (self.db.engine(), lookup(self.columns.get("id"))) {
            (Engine::Postgres, Some((_, ty))) => IdMatch::for_pg_type(ty),
            _ => IdMatch::Direct,
        };
        Ok(())
    }

    /// The restaurants that need an agent, and those that do not but already have one.
    pub async fn read_restaurants(&self) -> Result<Vec<Sourced<Restaurant>>, DbError> {
        self.read(&BTreeSet::new()).await
    }

    /// As [`PlatformTable::read_restaurants`], also keeping every row whose id is in `known`:
    /// the restaurants state holds ids for (a row's `agent_id` may have been lost by a crash
    /// before the write-back). The first invalid row fails the whole read; see
    /// [`PlatformTable::read_checked`] for reading around it.
    pub async fn read(
        &self,
        known: &BTreeSet<RestaurantId>,
    ) -> Result<Vec<Sourced<Restaurant>>, DbError> {
        self.read_rows(known)
            .await?
            .into_iter()
            .map(|r| r.map_err(|p| self.bad_value(p.key_text(), p.column, p.message)))
            .collect()
    }

    /// As [`PlatformTable::read`], but an invalid row (a value of the wrong type, a NULL name,
    /// an id that is not a UUID) is [`Skipped`] with its row and column, and the others are
    /// read: a row is one tenant's data and must not block the rest.
    pub(crate) async fn read_checked(
        &self,
        known: &BTreeSet<RestaurantId>,
    ) -> Result<InventoryRead, DbError> {
        self.read_checked_where(known, None).await
    }

    /// As [`PlatformTable::read_checked`], for the rows of `ids` only (the controller's
    /// targeted reconcile: one query by primary key, O(ids) rather than O(table)). Every id is
    /// treated as known, so a targeted row with nothing enabled is still planned (inactive,
    /// never created). An id the column's type cannot hold matches no row.
    pub(crate) async fn read_some(
        &self,
        ids: &BTreeSet<RestaurantId>,
    ) -> Result<InventoryRead, DbError> {
        let ids: Vec<&RestaurantId> = ids
            .iter()
            .filter(|id| self.id_match.can_match(id.as_str()))
            .collect();
        let mut read = InventoryRead::default();
        // Bounded statements: at most 500 placeholders each.
        for chunk in ids.chunks(500) {
            let known: BTreeSet<RestaurantId> = chunk.iter().map(|i| (*i).clone()).collect();
            let ids: Vec<&str> = chunk.iter().map(|i| i.as_str()).collect();
            let part = self.read_checked_where(&known, Some(&ids)).await?;
            read.restaurants.extend(part.restaurants);
            read.skipped.extend(part.skipped);
        }
        Ok(read)
    }

    /// Every id in the table, as text (the controller's full resync queues them all).
    pub(crate) async fn all_ids(&self) -> Result<Vec<RestaurantId>, DbError> {
        let sql = format!(
            "SELECT CAST({} AS TEXT) FROM {}",
            self.columns.q("id"),
            self.table.quoted()
        );
        let ids: Vec<Option<String>> = with_pool!(self.db, p => {
            sqlx::query_scalar(&sql)
                .fetch_all(p)
                .await
                .map_err(|e| self.db.err(&format!("reading the ids of table {}", self.table), e))?
        });
        Ok(ids.into_iter().flatten().map(RestaurantId::new).collect())
    }

    /// The table's name, as configured.
    pub(crate) fn table_name(&self) -> &TableName {
        &self.table
    }

    /// The platform's column names, with `inventory.columns` applied.
    pub fn columns(&self) -> &ColumnMap {
        &self.columns
    }

    async fn read_checked_where(
        &self,
        known: &BTreeSet<RestaurantId>,
        ids: Option<&[&str]>,
    ) -> Result<InventoryRead, DbError> {
        let mut read = InventoryRead::default();
        for row in self.read_rows_where(known, ids).await? {
            match row {
                Ok(r) => read.restaurants.push(r),
                Err(p) => {
                    let origin = Origin::Row {
                        table: self.table.to_string(),
                        key: p.key_text(),
                    };
                    let column = self.columns.get(SELECTED[p.column].0).to_string();
                    let diag = Diagnostic::new(origin.clone(), column, p.message);
                    read.skipped.push(Skipped::new(p.key, origin, diag));
                }
            }
        }
        super::phone_lines::attach(&self.db, &self.table, &mut read.restaurants).await?;
        Ok(read)
    }

    /// Every row to plan, each decoded and checked on its own.
    async fn read_rows(
        &self,
        known: &BTreeSet<RestaurantId>,
    ) -> Result<Vec<Result<Sourced<Restaurant>, RowProblem>>, DbError> {
        self.read_rows_where(known, None).await
    }

    /// [`PlatformTable::read_rows`], limited to `ids` when given.
    async fn read_rows_where(
        &self,
        known: &BTreeSet<RestaurantId>,
        ids: Option<&[&str]>,
    ) -> Result<Vec<Result<Sourced<Restaurant>, RowProblem>>, DbError> {
        let sql = self.select_sql_where(ids.map(<[&str]>::len));
        let raws: Vec<Result<RawRow, RowProblem>> = with_pool!(self.db, p => {
            let mut q = sqlx::query(&sql);
            for id in ids.unwrap_or_default() {
                q = q.bind(*id);
            }
            let rows = q
                .fetch_all(p)
                .await
                .map_err(|e| self.db.err(&format!("reading table {}", self.table), e))?;
            rows.iter()
                .map(|row| {
                    RawRow::read(row).map_err(|(column, message)| RowProblem {
                        key: row_key(row),
                        column,
                        message,
                    })
                })
                .collect()
        });
        let mut out = Vec::new();
        for raw in raws {
            let raw = match raw {
                Ok(raw) => raw,
                Err(p) => {
                    out.push(Err(p));
                    continue;
                }
            };
            let Some(id) = raw.text[COL_ID].clone() else {
                out.push(Err(RowProblem {
                    key: None,
                    column: COL_ID,
                    message: "the id is NULL".into(),
                }));
                continue;
            };
            let sip = raw.bools[B_SIP].unwrap_or(true);
            let chat = raw.bools[B_CHAT].unwrap_or(false);
            let has_objects = raw.text[COL_AGENT_ID].is_some()
                || raw.text[COL_FINAL_CUSTOMER_ID].is_some()
                || known.contains(&RestaurantId::new(id.as_str()));
            if !(sip || chat || has_objects) {
                continue;
            }
            // Checked where it enters: the id goes into `externalSessionUrl` and state keys.
            if let Some(message) = restaurant_id_problem(&id) {
                out.push(Err(RowProblem {
                    key: Some(id),
                    column: COL_ID,
                    message,
                }));
                continue;
            }
            out.push(self.to_restaurant(&id, raw).map(|restaurant| Sourced {
                value: restaurant,
                origin: Origin::Row {
                    table: self.table.to_string(),
                    key: id,
                },
            }));
        }
        Ok(out)
    }

    fn bad_value(&self, key: String, text_index: usize, message: String) -> DbError {
        DbError::BadValue {
            place: self.db.describe(),
            table: self.table.to_string(),
            key,
            column: self.columns.get(SELECTED[text_index].0).to_string(),
            message,
        }
    }

    /// The select, with `WHERE id = $1 OR …` for `ids` placeholders when given.
    fn select_sql_where(&self, ids: Option<usize>) -> String {
        let cols: Vec<String> = SELECTED
            .iter()
            .map(|(name, kind)| {
                let c = self.columns.q(name);
                match kind {
                    // An integer is parsed from its text (`Cells::int`): SQLite's own cast
                    // turns `'abc'` into 0.
                    Kind::Text | Kind::Int => format!("CAST({c} AS TEXT)"),
                    Kind::Bool => c,
                }
            })
            .collect();
        let filter = match ids {
            None => String::new(),
            Some(0) => " WHERE 1 = 0".to_string(),
            Some(n) => {
                let col = self.columns.q("id");
                let conds: Vec<String> = (1..=n)
                    .map(|i| {
                        self.id_match
                            .condition(&col, &self.db.engine().placeholder(i))
                    })
                    .collect();
                format!(" WHERE {}", conds.join(" OR "))
            }
        };
        format!(
            "SELECT {} FROM {}{filter} ORDER BY 1",
            cols.join(", "),
            self.table.quoted()
        )
    }

    fn to_restaurant(&self, id: &str, raw: RawRow) -> Result<Restaurant, RowProblem> {
        let t = |i: usize| raw.text[i].clone();
        let b = |i: usize| raw.bools[i].unwrap_or(false);
        let index_of = |name: &str| SELECTED.iter().position(|(n, _)| *n == name).unwrap_or(0);
        let name = t(index_of("name")).ok_or_else(|| {
            RowProblem::new(id, index_of("name"), "NULL, but a restaurant needs a name")
        })?;
        let chat_mode = match t(index_of("chat_mode")) {
            None => None,
            Some(s) => Some(
                serde_json::from_value::<ChatMode>(serde_json::Value::String(s.clone())).map_err(
                    |_| {
                        RowProblem::new(
                            id,
                            index_of("chat_mode"),
                            format!("{s:?} is not one of text, stt_tts, realtime"),
                        )
                    },
                )?,
            ),
        };
        let max_call_duration_sec = match raw.int {
            None => None,
            Some(v) => Some(u32::try_from(v).map_err(|_| {
                RowProblem::new(
                    id,
                    index_of("max_call_duration_sec"),
                    format!("{v} is not a number of seconds"),
                )
            })?),
        };
        // The row's links to server objects: tenant data, checked as server ids where they
        // enter (adoption looks them up on the server).
        let object_id = |i: usize| match t(i).filter(|v| !v.trim().is_empty()) {
            None => Ok(None),
            Some(v) => ObjectId::parse(v.trim())
                .map(Some)
                .map_err(|e| RowProblem::new(id, i, format!("{v:?} is not a server id ({e})"))),
        };
        Ok(Restaurant {
            id: RestaurantId::new(id),
            name,
            phone: t(index_of("phone")),
            contact_email: t(index_of("contact_email")),
            ai_voice: t(index_of("ai_voice")),
            timezone: t(index_of("timezone")),
            delivery_enabled: b(B_DELIVERY),
            reservation_enabled: b(B_RESERVATION),
            order_status_enabled: b(B_ORDER_STATUS),
            transfer_enabled: b(B_TRANSFER),
            transfer_automatic: b(B_TRANSFER_AUTO),
            transfer_phone_number: t(index_of("transfer_phone_number")),
            chat_enabled: b(B_CHAT),
            chat_mode,
            chat_title: t(index_of("chat_title")),
            chat_open_on_load: b(B_CHAT_OPEN),
            sip_enabled: raw.bools[B_SIP].unwrap_or(true),
            is_active: raw.bools[B_ACTIVE].unwrap_or(true),
            max_call_duration_sec,
            phone_line: None,
            platform: PlatformRow {
                agent_id: object_id(COL_AGENT_ID)?,
                final_customer_id: object_id(COL_FINAL_CUSTOMER_ID)?,
                phone_line: None,
            },
        })
    }
}

/// Reads the restaurants of `table` at `url` (see [`PlatformTable::read_restaurants`]).
pub async fn read_restaurants(
    url: &str,
    table: &str,
    columns: &IndexMap<String, String>,
) -> Result<Vec<Sourced<Restaurant>>, DbError> {
    let base = std::env::current_dir().unwrap_or_default();
    let t = PlatformTable::open(url, &base, table, columns, false).await?;
    let out = t.read_restaurants().await;
    t.db.close().await;
    out
}

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Bool,
    Int,
}

/// The selected columns, in order. Text columns first, then booleans, then the one integer.
const SELECTED: &[(&str, Kind)] = &[
    ("id", Kind::Text),
    ("name", Kind::Text),
    ("phone", Kind::Text),
    ("contact_email", Kind::Text),
    ("ai_voice", Kind::Text),
    ("timezone", Kind::Text),
    ("transfer_phone_number", Kind::Text),
    ("chat_mode", Kind::Text),
    ("chat_title", Kind::Text),
    ("agent_id", Kind::Text),
    ("final_customer_id", Kind::Text),
    ("delivery_enabled", Kind::Bool),
    ("reservation_enabled", Kind::Bool),
    ("order_status_enabled", Kind::Bool),
    ("transfer_enabled", Kind::Bool),
    ("transfer_automatic", Kind::Bool),
    ("chat_enabled", Kind::Bool),
    ("chat_open_on_load", Kind::Bool),
    ("sip_enabled", Kind::Bool),
    ("is_active", Kind::Bool),
    ("max_call_duration_sec", Kind::Int),
];
const N_TEXT: usize = 11;
const N_BOOL: usize = 9;
const COL_ID: usize = 0;
const COL_AGENT_ID: usize = 9;
const COL_FINAL_CUSTOMER_ID: usize = 10;
const B_DELIVERY: usize = 0;
const B_RESERVATION: usize = 1;
const B_ORDER_STATUS: usize = 2;
const B_TRANSFER: usize = 3;
const B_TRANSFER_AUTO: usize = 4;
const B_CHAT: usize = 5;
const B_CHAT_OPEN: usize = 6;
const B_SIP: usize = 7;
const B_ACTIVE: usize = 8;

/// One row, decoded by type but not yet interpreted.
struct RawRow {
    text: Vec<Option<String>>,
    bools: Vec<Option<bool>>,
    int: Option<i64>,
}

/// The row's id for an error message, when it decodes.
fn row_key<R: Cells>(row: &R) -> Option<String> {
    row.text(COL_ID).ok().flatten()
}

/// Why one row cannot be planned: its id (when readable), the index of the column in
/// [`SELECTED`], and what is wrong.
#[derive(Debug)]
struct RowProblem {
    key: Option<String>,
    column: usize,
    message: String,
}

impl RowProblem {
    fn new(id: &str, column: usize, message: impl Into<String>) -> Self {
        RowProblem {
            key: Some(id.to_string()),
            column,
            message: message.into(),
        }
    }

    /// The id as messages show it.
    fn key_text(&self) -> String {
        self.key.clone().unwrap_or_else(|| "NULL".into())
    }
}

impl RawRow {
    /// Decodes one row; on failure, the index of the column and why.
    fn read<R: Cells>(row: &R) -> Result<RawRow, (usize, String)> {
        let mut text = Vec::with_capacity(N_TEXT);
        for i in 0..N_TEXT {
            text.push(row.text(i).map_err(|m| (i, m))?);
        }
        let mut bools = Vec::with_capacity(N_BOOL);
        for j in 0..N_BOOL {
            let i = N_TEXT + j;
            bools.push(row.boolean(i).map_err(|m| (i, m))?);
        }
        let i = N_TEXT + N_BOOL;
        let int = row.int(i).map_err(|m| (i, m))?;
        Ok(RawRow { text, bools, int })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selected_layout_matches_the_indices() {
        assert_eq!(SELECTED.len(), N_TEXT + N_BOOL + 1);
        assert_eq!(SELECTED[COL_AGENT_ID].0, "agent_id");
        assert_eq!(SELECTED[COL_FINAL_CUSTOMER_ID].0, "final_customer_id");
        assert_eq!(SELECTED[N_TEXT + B_SIP].0, "sip_enabled");
        assert_eq!(SELECTED[N_TEXT + B_ACTIVE].0, "is_active");
        assert_eq!(SELECTED[N_TEXT + B_CHAT].0, "chat_enabled");
        assert_eq!(SELECTED[N_TEXT + B_CHAT_OPEN].0, "chat_open_on_load");
        assert_eq!(SELECTED[N_TEXT + B_DELIVERY].0, "delivery_enabled");
        assert_eq!(SELECTED[N_TEXT + B_TRANSFER_AUTO].0, "transfer_automatic");
        for (name, _) in SELECTED {
            assert!(PLATFORM_COLUMNS.contains(name), "{name}");
        }
    }

    #[test]
    fn unknown_column_key_is_refused() {
        let mut o = IndexMap::new();
        o.insert("sip_enabeld".to_string(), "x".to_string());
        let e = ColumnMap::new(&o).unwrap_err();
        assert!(e.to_string().contains("sip_enabeld"), "{e}");
        let mut o = IndexMap::new();
        o.insert("agent_id".to_string(), "voice_agent_id".to_string());
        let m = ColumnMap::new(&o).unwrap();
        assert_eq!(m.get("agent_id"), "voice_agent_id");
        assert_eq!(m.q("name"), "\"name\"");
    }

    #[test]
    fn id_matching_by_type() {
        assert_eq!(IdMatch::for_pg_type("uuid"), IdMatch::Uuid);
        assert_eq!(
            IdMatch::for_pg_type("character varying(36)"),
            IdMatch::Direct
        );
        assert!(!IdMatch::Uuid.can_match("r1"));
        assert!(IdMatch::Integer.can_match("42"));
        assert_eq!(
            IdMatch::Uuid.condition("\"id\"", "$1"),
            "\"id\" = CAST($1 AS uuid)"
        );
    }
}
