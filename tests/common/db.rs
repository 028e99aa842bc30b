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

/// The platform's `restaurants` table: every contract column with its type and default, plus
/// some of the platform's other columns (plain, nullable).
pub fn restaurants_ddl(engine: Engine, table: &str) -> String {
    let (id, boolean, ts, ts_default) = match engine {
        Engine::Postgres => ("uuid", "boolean", "timestamptz", "now()"),
        Engine::Sqlite => ("TEXT", "BOOLEAN", "DATETIME", "CURRENT_TIMESTAMP"),
    };
    format!(
        "CREATE TABLE {table} (
            id {id} PRIMARY KEY,
            name varchar(255) NOT NULL,
            address text,
            phone varchar(20),
            contact_email varchar(255),
            ai_voice varchar(50) DEFAULT 'sage',
            timezone varchar(50) DEFAULT 'Europe/Paris',
            delivery_enabled {boolean} DEFAULT false,
            reservation_enabled {boolean} DEFAULT false,
            order_status_enabled {boolean} DEFAULT false,
            transfer_enabled {boolean} DEFAULT false,
            transfer_automatic {boolean} DEFAULT false,
            chat_enabled {boolean} DEFAULT false,
            chat_open_on_load {boolean} DEFAULT false,
            sip_enabled {boolean} DEFAULT false,
            is_active {boolean} DEFAULT true,
            transfer_phone_number varchar(20),
            chat_mode varchar(20) DEFAULT 'text',
            chat_title varchar(100),
            max_call_duration_sec integer DEFAULT 600,
            agent_id varchar(36),
            final_customer_id varchar(36),
            agent_api_token varchar(128),
            agent_public_token varchar(128),
            owner_email varchar(255),
            logo_url text,
            created_at {ts} DEFAULT {ts_default},
            updated_at {ts} DEFAULT {ts_default}
        )"
    )
}
