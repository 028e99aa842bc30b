//! Shared by the database tests: a throwaway PostgreSQL schema, a SQLite file in a tempdir,
//! and the platform's `restaurants` table as the platform defines it.
#![allow(dead_code)]

use std::path::PathBuf;

use sqlx::Connection;

/// The test server: trust auth on loopback (`.ci/run` starts it).
pub fn pg_base_url() -> String {
    std::env::var("SIPFORM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A database for one test: a fresh PostgreSQL schema (dropped on drop) or a SQLite file in a
/// tempdir. `url` points at it.
pub struct TestDb {
    pub engine: Engine,
    pub url: String,
    schema: Option<String>,
    pub dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(engine: Engine) -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        match engine {
            Engine::Sqlite => {
                let path = dir.path().join("platform.db");
                let url = format!("sqlite://{}", path.display());
                // Create the file.
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true);
                let c = sqlx::SqliteConnection::connect_with(&opts)
                    .await
                    .expect("create sqlite file");
                c.close().await.ok();
                TestDb {
                    engine,
                    url,
                    schema: None,
                    dir,
                }
            }
            Engine::Postgres => {
                let schema = format!("sipform_t_{}", uuid::Uuid::new_v4().simple());
                let mut c = sqlx::PgConnection::connect(&pg_base_url())
                    .await
                    .expect("PostgreSQL must run at 127.0.0.1:5432 with trust auth (see .ci/run)");
                sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut c)
                    .await
                    .expect("create schema");
                c.close().await.ok();
                let url = format!("{}?options=-c%20search_path%3D{schema}", pg_base_url());
                TestDb {
                    engine,
                    url,
                    schema: Some(schema),
                    dir,
                }
            }
        }
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.dir.path().join("platform.db")
    }

    /// Runs `sql` (several statements allowed) in this database.
    pub async fn exec(&self, sql: &str) {
        match self.engine {
            Engine::Sqlite => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(self.sqlite_path());
                let mut c = sqlx::SqliteConnection::connect_with(&opts)
                    .await
                    .expect("connect");
                sqlx::raw_sql(sql).execute(&mut c).await.expect(sql);
                c.close().await.ok();
            }
            Engine::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect");
                sqlx::raw_sql(sql).execute(&mut c).await.expect(sql);
                c.close().await.ok();
            }
        }
    }

    /// One text value (or NULL) of the first row of `sql`.
    pub async fn text(&self, sql: &str) -> Option<String> {
        match self.engine {
            Engine::Sqlite => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(self.sqlite_path());
                let mut c = sqlx::SqliteConnection::connect_with(&opts)
                    .await
                    .expect("connect");
                let v: Option<String> = sqlx::query_scalar(sql).fetch_one(&mut c).await.expect(sql);
                c.close().await.ok();
                v
            }
            Engine::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect");
                let v: Option<String> = sqlx::query_scalar(sql).fetch_one(&mut c).await.expect(sql);
                c.close().await.ok();
                v
            }
        }
    }

    /// Creates the platform's `restaurants` table (named `table`).
    pub async fn create_restaurants(&self, table: &str) {
        self.exec(&restaurants_ddl(self.engine, table)).await;
    }

    /// Creates the platform's `phone_lines` table, beside `restaurants`.
    pub async fn create_phone_lines(&self) {
        self.exec(&phone_lines_ddl(self.engine, "restaurants"))
            .await;
    }

    /// The type the id column has in this engine, for literal inserts.
    pub fn id_literal(&self, id: &str) -> String {
        match self.engine {
            Engine::Sqlite => format!("'{id}'"),
            Engine::Postgres => format!("'{id}'::uuid"),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(schema) = self.schema.take() else {
            return;
        };
        // A separate thread with its own runtime: works inside or outside a test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut c) = sqlx::PgConnection::connect(&pg_base_url()).await {
                    let _ = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .execute(&mut c)
                        .await;
                    let _ = c.close().await;
                }
            });
        })
        .join();
    }
}

/// The platform's `restaurants` table exactly as its ORM creates it (the DDL vendored in
/// `tests/fixtures/platform/`), named `table` (as written in SQL: quote it if it needs quotes).
pub fn restaurants_ddl(engine: Engine, table: &str) -> String {
    platform_ddl(engine, "restaurants", table, "restaurants")
}

/// The platform's `phone_lines` table exactly as its ORM creates it, its foreign key naming the
/// restaurants table `restaurants`.
pub fn phone_lines_ddl(engine: Engine, restaurants: &str) -> String {
    platform_ddl(engine, "phone_lines", "phone_lines", restaurants)
}

/// A file of `tests/fixtures/platform/` (this module is also included alone, without `common`).
fn platform_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/platform")
        .join(name)
}

/// One table of the vendored DDL, renamed. On PostgreSQL, the `pg_dump` file's `CREATE TABLE`
/// and its `ALTER TABLE ONLY … ADD CONSTRAINT` statements, constraint names dropped (two tables
/// in one schema would share them) and `uuid_generate_v4()` (an extension) replaced by the
/// built-in `gen_random_uuid()`.
fn platform_ddl(engine: Engine, which: &str, table: &str, restaurants: &str) -> String {
    match engine {
        Engine::Sqlite => {
            let text = std::fs::read_to_string(platform_fixture(&format!("sqlite-{which}.sql")))
                .expect("the vendored SQLite DDL");
            text.replace(
                &format!("TABLE IF NOT EXISTS \"{which}\""),
                &format!("TABLE {table}"),
            )
            .replace(
                "REFERENCES \"restaurants\"",
                &format!("REFERENCES {restaurants}"),
            )
        }
        Engine::Postgres => {
            let text =
                std::fs::read_to_string(platform_fixture("postgres-restaurants-phone_lines.sql"))
                    .expect("the vendored PostgreSQL DDL");
            let rename = |s: &str| {
                s.replace(&format!("public.{which} "), &format!("{table} "))
                    .replace("public.restaurants(", &format!("{restaurants}("))
                    .replace("public.uuid_generate_v4()", "gen_random_uuid()")
            };
            let mut out = String::new();
            for stmt in text.split(";\n") {
                // pg_dump's `\restrict` lines and comments sit before some statements.
                let stmt = stmt
                    .find("CREATE TABLE ")
                    .or_else(|| stmt.find("ALTER TABLE "))
                    .map_or("", |at| stmt[at..].trim());
                if stmt.starts_with(&format!("CREATE TABLE public.{which} ")) {
                    out.push_str(&rename(stmt));
                    out.push_str(";\n");
                } else if let Some(rest) =
                    stmt.strip_prefix(&format!("ALTER TABLE ONLY public.{which}\n"))
                {
                    // `ADD CONSTRAINT "name" PRIMARY KEY (id)` → `ADD PRIMARY KEY (id)`.
                    let rest = rest.trim();
                    let body = rest
                        .strip_prefix("ADD CONSTRAINT ")
                        .and_then(|r| r.split_once(' '))
                        .map(|(_, b)| b)
                        .expect("an ADD CONSTRAINT statement");
                    out.push_str(&format!("ALTER TABLE {table} ADD {};\n", rename(body)));
                }
            }
            assert!(
                out.contains("CREATE TABLE"),
                "no {which} table in the vendored DDL"
            );
            out
        }
    }
}

/// The platform's `encrypt()` of a SIP password: PBKDF2 (100,000 rounds) of the hex master key
/// salted with the line's id, AES-256-GCM under a fresh random IV, `iv:tag:ciphertext` in
/// base64 (so two encryptions of one password differ).
pub fn platform_encrypt(master_hex: &str, line: &str, plain: &str) -> String {
    platform_encrypt_with_iv(master_hex, line, plain, rand::random())
}

/// [`platform_encrypt`] with a given IV (a stored value a test compares byte for byte).
pub fn platform_encrypt_with_iv(master_hex: &str, line: &str, plain: &str, iv: [u8; 12]) -> String {
    use aes_gcm::aead::{Aead, KeyInit};
    use base64::Engine as _;
    let master = hex::decode(master_hex).expect("hex key");
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(&master, line.as_bytes(), 100_000, &mut key);
    let mut sealed = aes_gcm::Aes256Gcm::new(&key.into())
        .encrypt(aes_gcm::Nonce::from_slice(&iv), plain.as_bytes())
        .expect("encrypt");
    let tag = sealed.split_off(sealed.len() - 16);
    let b = base64::engine::general_purpose::STANDARD;
    format!("{}:{}:{}", b.encode(iv), b.encode(tag), b.encode(sealed))
}

/// A long-lived connection of the platform's own process, writing beside sipform.
pub enum PlatformConn {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

/// The platform's connection to `db`; on SQLite with `busy` as its busy timeout (zero: none,
/// as a platform connection that sets none fails at once on a lock).
pub async fn platform_connection(db: &TestDb, busy: std::time::Duration) -> PlatformConn {
    match db.engine {
        Engine::Sqlite => {
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(db.sqlite_path())
                .busy_timeout(busy);
            PlatformConn::Sqlite(
                sqlx::SqliteConnection::connect_with(&opts)
                    .await
                    .expect("connect"),
            )
        }
        Engine::Postgres => {
            PlatformConn::Postgres(sqlx::PgConnection::connect(&db.url).await.expect("connect"))
        }
    }
}

impl PlatformConn {
    /// Runs `sql`; the driver's error as text.
    pub async fn exec(&mut self, sql: &str) -> Result<(), String> {
        let done = match self {
            PlatformConn::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(drop),
            PlatformConn::Postgres(c) => sqlx::raw_sql(sql).execute(c).await.map(drop),
        };
        done.map_err(|e| e.to_string())
    }
}
