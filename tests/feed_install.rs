//! `controller install-trigger` at every start never gets in the platform's way (issue 24):
//! when the catalog shows the feed installed it runs no DDL (so it takes no lock, even while
//! the platform holds a write transaction), and when it must run DDL it waits for the
//! platform's locks only briefly (PostgreSQL `lock_timeout`, SQLite busy timeout), then fails
//! with a clear error, changing nothing.

mod common;

use std::process::Output;

use common::controller::*;
use common::db::{Engine, TestDb};
use common::*;
use sqlx::Connection;

/// `install-trigger`, run off the test's runtime (the test holds a lock meanwhile).
async fn install(dir: &std::path::Path, url: &str) -> Output {
    let mut c = command(dir, url, &["controller", "install-trigger"]);
    tokio::task::spawn_blocking(move || c.output().expect("run sipform"))
        .await
        .expect("join")
}

/// A platform write transaction, held open until dropped.
enum Held {
    Pg(sqlx::PgConnection),
    Lite(sqlx::SqliteConnection),
}

async fn hold_write(db: &TestDb) -> Held {
    let sql = format!(
        "BEGIN; UPDATE restaurants SET name = name WHERE id = {};",
        db.id_literal(&rid(0))
    );
    match db.engine {
        Engine::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            sqlx::raw_sql(&sql).execute(&mut c).await.expect("hold");
            Held::Pg(c)
        }
        Engine::Sqlite => {
            let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(db.sqlite_path());
            let mut c = sqlx::SqliteConnection::connect_with(&opts)
                .await
                .expect("connect");
            let sql = sql.replace("BEGIN;", "BEGIN IMMEDIATE;");
            sqlx::raw_sql(&sql).execute(&mut c).await.expect("hold");
            Held::Lite(c)
        }
    }
}

async fn release(held: Held) {
    match held {
        Held::Pg(mut c) => {
            sqlx::raw_sql("ROLLBACK")
                .execute(&mut c)
                .await
                .expect("rollback");
        }
        Held::Lite(mut c) => {
            sqlx::raw_sql("ROLLBACK")
                .execute(&mut c)
                .await
                .expect("rollback");
        }
    }
}

/// How many of the feed's triggers exist in this test's own schema (another test's, or one a
/// killed run left, is not this one's).
async fn triggers(db: &TestDb) -> Option<String> {
    let sql = match db.engine {
        Engine::Postgres => {
            "SELECT CAST(count(*) AS TEXT) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
             WHERE c.relnamespace = to_regnamespace(current_schema())::oid \
             AND t.tgname LIKE 'restaurants_sipform%'"
        }
        Engine::Sqlite => "SELECT CAST(count(*) AS TEXT) FROM sqlite_master WHERE type = 'trigger'",
    };
    db.text(sql).await
}

async fn install_never_waits_long_and_skips_what_is_there(engine: Engine) {
    let emu = emulator().await;
    let db = platform(engine).await;
    db.create_phone_lines().await;
    insert(&db, 0..1).await;
    let dir = project_on(&db);
    let url = emu.base_url();

    // The platform holds a write transaction: the DDL gives up after its short wait.
    let held = hold_write(&db).await;
    let out = install(dir.path(), &url).await;
    assert_ne!(
        out.status.code(),
        Some(0),
        "{engine:?}: {}",
        all_output(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("locked by another transaction") && err.contains("nothing was changed"),
        "{engine:?}: {err}"
    );
    release(held).await;
    assert_eq!(triggers(&db).await.as_deref(), Some("0"), "{engine:?}");

    let out = install(dir.path(), &url).await;
    expect_code(&out, 0);
    assert!(
        stderr(&out).contains("installed the sipform change log"),
        "{}",
        stderr(&out)
    );
    let count = triggers(&db).await;

    // Installed already: no DDL, so the platform's open transaction does not matter.
    let held = hold_write(&db).await;
    let out = install(dir.path(), &url).await;
    expect_code(&out, 0);
    assert!(stderr(&out).contains("nothing to do"), "{}", stderr(&out));
    release(held).await;
    assert_eq!(triggers(&db).await, count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_install_never_waits_long_and_skips_what_is_there() {
    install_never_waits_long_and_skips_what_is_there(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_install_never_waits_long_and_skips_what_is_there() {
    install_never_waits_long_and_skips_what_is_there(Engine::Sqlite).await;
}
