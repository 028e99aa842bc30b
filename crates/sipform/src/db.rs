//! Database connections shared by the platform-table inventory, the write-back and the SQL state
//! backends: engines, pools, URL handling (always redacted), identifier quoting.
//!
//! Two engines, SQLite (`sqlite://path`, `sqlite:path`, or a bare path such as the platform's
//! own `DATABASE_URL=/data/database.db`) and PostgreSQL (`postgres://…`, `postgresql://…`), through `sqlx` with
//! runtime queries only, so building never needs a live database. Where the SQL differs there is
//! one code path per engine ([`with_pool!`]). A URL is never shown with its password:
//! [`redact`] replaces it everywhere a URL reaches a message.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

/// How long a SQLite statement waits for another process's lock (SQLITE_BUSY) before failing:
/// the platform writes the same file, and sipform's writes are short, so waiting is bounded
/// and never makes the platform's own writes fail.
pub(crate) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of the platform database and of the database state backends. Messages name the
/// database (password redacted), the table, the column and the row; never a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    #[error("database URL {url}: {message}")]
    Url { url: String, message: String },
    #[error("{place}: {message}")]
    Connect { place: String, message: String },
    #[error("{place}: {message}")]
    Query {
        place: String,
        message: String,
        /// The cause may go away by itself (see [`is_transient`]).
        transient: bool,
    },
    #[error("{place}: table {table} does not exist")]
    MissingTable { place: String, table: String },
    #[error("{place}: table {table} has no column {column}{hint}")]
    MissingColumn {
        place: String,
        table: String,
        column: String,
        /// ` (the platform's "x", renamed by inventory.columns)` or empty.
        hint: String,
    },
    #[error(
        "inventory.columns names {key:?}, which is not a column sipform uses (expected one of: {expected})"
    )]
    UnknownColumnKey { key: String, expected: String },
    #[error("{place}: table {table}, row id={key}: column {column}: {message}")]
    BadValue {
        place: String,
        table: String,
        key: String,
        column: String,
        message: String,
    },
    #[error(
        "{place}: restaurant {restaurant}: {what} is {len} characters, longer than column {column} (varchar({max})); nothing was written"
    )]
    TooLong {
        place: String,
        restaurant: String,
        /// What the value is; an id may be shown, a token never.
        what: String,
        column: String,
        len: usize,
        max: usize,
    },
    #[error(
        "no database URL: set {what} in sipform.yaml or the DATABASE_URL environment variable"
    )]
    NoUrl { what: String },
}

impl DbError {
    /// Whether running again later may succeed (the database was unreachable, busy or in a
    /// conflict), as opposed to an error someone must fix (a missing table, a bad value).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DbError::Query {
                transient: true,
                ..
            }
        )
    }
}

/// Whether a driver error may go away by itself, so a later retry can succeed: the server
/// unreachable or restarting, the pool exhausted, a lock, deadlock or serialization conflict.
/// A refused login, a missing database or table, a full disk or bad SQL are not: they need
/// someone to act.
pub fn is_transient(e: &sqlx::Error) -> bool {
    use sqlx::error::DatabaseError as _;
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(d) => {
            if let Some(lite) = d.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
                let code = lite.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
                matches!(code & 0xff, 5 | 6)
            } else {
                // PostgreSQL SQLSTATE: connection exception (08…), serialization failure,
                // deadlock, lock not available, too many connections, statement timeout, and a
                // server shutting down or starting up.
                d.code().is_some_and(|c| {
                    c.starts_with("08")
                        || matches!(
                            c.as_ref(),
                            "40001"
                                | "40P01"
                                | "55P03"
                                | "53300"
                                | "57014"
                                | "57P01"
                                | "57P02"
                                | "57P03"
                        )
                })
            }
        }
        _ => false,
    }
}

/// Which engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// The engine of `url`, from its scheme; a bare path (no scheme) is a SQLite file, as the
    /// platform's own `DATABASE_URL` names it.
    pub(crate) fn of_url(url: &str) -> Result<Engine, DbError> {
        let lower = url.trim_start().to_ascii_lowercase();
        if lower.starts_with("sqlite:") || is_bare_path(url) {
            Ok(Engine::Sqlite)
        } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Ok(Engine::Postgres)
        } else {
            Err(DbError::Url {
                url: redact(url),
                message: "expected a file path, sqlite://PATH, postgres://… or postgresql://…"
                    .into(),
            })
        }
    }

    /// The `n`-th (1-based) bind placeholder.
    pub(crate) fn placeholder(self, n: usize) -> String {
        match self {
            Engine::Sqlite => format!("?{n}"),
            Engine::Postgres => format!("${n}"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

/// What a connection is for: the platform's database is opened as it is (a missing SQLite file
/// is an error); a state database is created when missing and written with full fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Inventory,
    State,
}

/// A connection pool to one database.
#[derive(Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open (lazily connected) database, with the redacted description used in every message.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    place: String,
    /// The secret part of the URL, scrubbed from driver messages as a last line of defence.
    password: Option<String>,
    sqlite_path: Option<PathBuf>,
    pg_options: Option<PgConnectOptions>,
}

/// Runs the same code for either engine: `$p` is the `SqlitePool` or the `PgPool`. The body is
/// type-checked once per engine, so `sqlx::query(..).bind(..)` work on both.
#[macro_export]
macro_rules! with_pool {
    ($db:expr, $p:ident => $body:expr) => {
        match $db.pool() {
            $crate::db::Pool::Sqlite($p) => $body,
            $crate::db::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use with_pool;

impl Db {
    /// Opens `url` without connecting yet (the first query connects). A relative SQLite path is
    /// taken relative to `base`.
    pub(crate) fn open_lazy(url: &str, base: &Path, purpose: Purpose) -> Result<Db, DbError> {
        let place = describe_url(url, base);
        let password = password_of(url);
        // Before any driver sees it: a driver misreading the password would log part of it.
        crate::model::secret::check_url_userinfo(url).map_err(|message| DbError::Url {
            url: redact(url),
            message,
        })?;
        match Engine::of_url(url)? {
            Engine::Sqlite => {
                let path = sqlite_path(url, base)?;
                let mut opts = SqliteConnectOptions::new()
                    .filename(&path)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT);
                if purpose == Purpose::State {
                    opts = opts
                        .create_if_missing(true)
                        .synchronous(SqliteSynchronous::Full);
                }
                // No idle timeout or max lifetime: no maintenance task, so opening needs no
                // async runtime (connections are checked before each use instead).
                let pool = SqlitePoolOptions::new()
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_lazy_with(opts);
                Ok(Db {
                    pool: Pool::Sqlite(pool),
                    place,
                    password,
                    sqlite_path: Some(path),
                    pg_options: None,
                })
            }
            Engine::Postgres => {
                let opts = PgConnectOptions::from_str(url).map_err(|e| DbError::Url {
                    url: redact(url),
                    message: scrub(&e.to_string(), password.as_deref()),
                })?;
                let pool = PgPoolOptions::new()
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(15))
                    .connect_lazy_with(opts.clone());
                Ok(Db {
                    pool: Pool::Postgres(pool),
                    place,
                    password,
                    sqlite_path: None,
                    pg_options: Some(opts),
                })
            }
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn engine(&self) -> Engine {
        match self.pool {
            Pool::Sqlite(_) => Engine::Sqlite,
            Pool::Postgres(_) => Engine::Postgres,
        }
    }

    /// `sqlite /abs/path` or `postgres postgres://***@host/db`: safe to print.
    pub fn describe(&self) -> String {
        self.place.clone()
    }

    /// The SQLite file, for SQLite databases.
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.sqlite_path.as_deref()
    }

    /// The connect options, for PostgreSQL databases (the state lock opens its own session).
    pub(crate) fn pg_options(&self) -> Option<&PgConnectOptions> {
        self.pg_options.as_ref()
    }

    /// Wraps a driver error as a [`DbError::Query`] naming this database.
    pub fn err(&self, what: &str, e: sqlx::Error) -> DbError {
        DbError::Query {
            place: self.place.clone(),
            message: self.describe_error(what, &e),
            transient: is_transient(&e),
        }
    }

    /// `what: why`, or `cannot connect: why` when the database could not be reached; scrubbed.
    pub(crate) fn describe_error(&self, what: &str, e: &sqlx::Error) -> String {
        let unreachable = matches!(
            e,
            sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::Configuration(_)
        ) || e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c.starts_with("28") || c == "3D000");
        if unreachable {
            format!("cannot connect: {}", self.scrub(&e.to_string()))
        } else {
            format!("{what}: {}", self.scrub(&e.to_string()))
        }
    }

    /// Removes the password from a message, should a driver ever echo it.
    pub(crate) fn scrub(&self, message: &str) -> String {
        scrub(message, self.password.as_deref())
    }

    /// Connects once outside the pool, so an unreachable server or a refused login fails at
    /// once with its own message (the pool would retry until its timeout).
    pub(crate) async fn check_reachable(&self) -> Result<(), DbError> {
        use sqlx::Connection;
        if let Some(opts) = &self.pg_options {
            let conn = sqlx::PgConnection::connect_with(opts)
                .await
                .map_err(|e| self.err("connecting", e))?;
            let _ = conn.close().await;
        }
        Ok(())
    }

    /// Closes the pool's connections.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

/// The URL of the platform database or a postgres state: the configured one, else
/// `DATABASE_URL`.
pub(crate) fn url_or_env(configured: Option<&str>, what: &str) -> Result<String, DbError> {
    if let Some(u) = configured.filter(|u| !u.trim().is_empty()) {
        return Ok(u.to_string());
    }
    match std::env::var("DATABASE_URL") {
        Ok(u) if !u.trim().is_empty() => Ok(u),
        _ => Err(DbError::NoUrl { what: what.into() }),
    }
}

/// Whether `url` is a plain file path (`/data/database.db`, `data/app.db`): no `scheme:`
/// before the first `/`.
fn is_bare_path(url: &str) -> bool {
    let t = url.trim();
    if t.is_empty() {
        return false;
    }
    let head = t.split('/').next().unwrap_or_default();
    !head.contains(':')
}

/// The file a SQLite URL names: `sqlite://rel/path`, `sqlite:///abs/path`, `sqlite:path`, or a
/// bare path; a relative path is joined to `base`. The query string (`?mode=…`) is ignored.
pub fn sqlite_path(url: &str, base: &Path) -> Result<PathBuf, DbError> {
    let trimmed = url.trim();
    let bare = is_bare_path(trimmed).then_some(trimmed);
    let rest = trimmed
        .strip_prefix("sqlite://")
        .or_else(|| trimmed.strip_prefix("sqlite:"))
        .or(bare)
        .ok_or_else(|| DbError::Url {
            url: redact(url),
            message: "expected sqlite://PATH".into(),
        })?;
    let rest = rest.split('?').next().unwrap_or_default();
    if rest.is_empty() || rest == ":memory:" {
        return Err(DbError::Url {
            url: redact(url),
            message:
                "an in-memory or empty SQLite path keeps nothing between runs; give a file path"
                    .into(),
        });
    }
    let p = PathBuf::from(rest);
    Ok(if p.is_absolute() { p } else { base.join(p) })
}

/// `sqlite /path` or `postgres <redacted URL>`, for messages.
pub(crate) fn describe_url(url: &str, base: &Path) -> String {
    match Engine::of_url(url) {
        Ok(Engine::Sqlite) => match sqlite_path(url, base) {
            Ok(p) => format!("sqlite {}", p.display()),
            Err(_) => format!("sqlite {}", redact(url)),
        },
        Ok(Engine::Postgres) => format!("postgres {}", redact(url)),
        Err(_) => redact(url),
    }
}

/// The URL with its user-info and any `password=` parameter replaced by `***`: the one
/// redaction every URL goes through ([`crate::model::secret::redact_url`]).
pub fn redact(url: &str) -> String {
    crate::model::secret::redact_url(url)
}

/// The password in `url`'s user-info part, as written.
fn password_of(url: &str) -> Option<String> {
    crate::model::secret::url_password(url).map(str::to_string)
}

fn scrub(message: &str, password: Option<&str>) -> String {
    match password {
        Some(p) if p.len() >= 3 => message.replace(p, "***"),
        _ => message.to_string(),
    }
}

/// A table name, optionally schema-qualified (`schema.table`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    /// `restaurants` or `platform.restaurants` (split at the first dot).
    pub fn parse(s: &str) -> TableName {
        match s.split_once('.') {
            Some((schema, name)) if !schema.is_empty() && !name.is_empty() => TableName {
                schema: Some(schema.to_string()),
                name: name.to_string(),
            },
            _ => TableName {
                schema: None,
                name: s.to_string(),
            },
        }
    }

    /// The name quoted for SQL.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&self.name)),
            None => quote_ident(&self.name),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// An identifier quoted for SQL in both engines: `"a""b"` for `a"b`.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(
            redact("postgres://app:s3cr%40t@db.example:5432/prod?sslmode=require"),
            "postgres://***@db.example:5432/prod?sslmode=require"
        );
        assert_eq!(
            redact("postgres://db/prod?user=a&password=hunter2"),
            "postgres://db/prod?user=a&password=***"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/test"),
            "postgres://***@127.0.0.1/test"
        );
        assert_eq!(redact("sqlite://data/app.db"), "sqlite://data/app.db");
    }

    #[test]
    fn open_describes_without_password() {
        let db = Db::open_lazy(
            "postgres://app:hunter2@127.0.0.1:1/x",
            Path::new("/p"),
            Purpose::State,
        )
        .unwrap();
        assert!(!db.describe().contains("hunter2"), "{}", db.describe());
        assert_eq!(db.scrub("auth failed for hunter2"), "auth failed for ***");
    }

    #[test]
    fn sqlite_paths_are_project_relative() {
        let base = Path::new("/proj");
        assert_eq!(
            sqlite_path("sqlite://data/app.db", base).unwrap(),
            PathBuf::from("/proj/data/app.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///var/app.db?mode=rwc", base).unwrap(),
            PathBuf::from("/var/app.db")
        );
        assert!(sqlite_path("sqlite::memory:", base).is_err());
        assert!(Engine::of_url("mysql://x").is_err());
    }

    /// The platform's `DATABASE_URL` forms (issue 23): a bare path, `sqlite:`, `sqlite://`,
    /// `postgres://`, `postgresql://`.
    #[test]
    fn the_platforms_url_forms_are_accepted() {
        let base = Path::new("/proj");
        for (url, path) in [
            ("/data/database.db", "/data/database.db"),
            ("data/database.db", "/proj/data/database.db"),
            ("database.db", "/proj/database.db"),
            ("sqlite:data/app.db", "/proj/data/app.db"),
            ("sqlite:///data/app.db", "/data/app.db"),
            ("sqlite://data/app.db", "/proj/data/app.db"),
        ] {
            assert_eq!(Engine::of_url(url).unwrap(), Engine::Sqlite, "{url}");
            assert_eq!(
                sqlite_path(url, base).unwrap(),
                PathBuf::from(path),
                "{url}"
            );
        }
        for url in [
            "postgres://u@h/db",
            "postgresql://u@h/db",
            "POSTGRESQL://h/db",
        ] {
            assert_eq!(Engine::of_url(url).unwrap(), Engine::Postgres, "{url}");
        }
        for url in ["mysql://h/db", "", "  ", "http://h/x"] {
            assert!(Engine::of_url(url).is_err(), "{url}");
        }
        let db = Db::open_lazy("/data/database.db", base, Purpose::Inventory).unwrap();
        assert_eq!(db.sqlite_path(), Some(Path::new("/data/database.db")));
        assert_eq!(db.describe(), "sqlite /data/database.db");
    }

    #[test]
    fn transient_driver_errors_are_told_apart() {
        let lost = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(is_transient(&lost));
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
        let db = Db::open_lazy("postgres://127.0.0.1:1/x", Path::new("/"), Purpose::State).unwrap();
        assert!(db.err("reading", lost).is_transient());
        assert!(!db.err("reading", sqlx::Error::RowNotFound).is_transient());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            TableName::parse("platform.restaurants").quoted(),
            "\"platform\".\"restaurants\""
        );
    }
}
