//! The change feed never breaks the platform's schema changes (issue 23 item 3, reference
//! facts 1 and 2), on the platform's real DDL: with the feed installed, PostgreSQL's
//! `ALTER COLUMN phone TYPE varchar(32)` and the ORM's `DROP COLUMN "phone"` + `ADD "phone"`
//! succeed, SQLite's `ADD COLUMN` and `RENAME COLUMN` succeed, and a change after them is still
//! logged. The controller's own write-back is still not a change (no loop), a wiped
//! written-back column is.

mod common;

use common::db::{Engine, TestDb};
use common::*;

/// The platform's two tables, a project on them, the feed installed through the binary.
async fn installed(engine: Engine) -> (TestDb, tempfile::TempDir) {
    let emu = emulator().await;
    let db = TestDb::new(engine).await;
    db.create_restaurants("restaurants").await;
    db.create_phone_lines().await;
    let dir = project_on(&db);
    let out = sipform(
        dir.path(),
        &emu.base_url(),
        &["controller", "install-trigger"],
    );
    expect_code(&out, 0);
    (db, dir)
}

/// The restaurant ids in the change log, in order, and the log emptied.
async fn logged(db: &TestDb) -> Vec<String> {
    let agg = match db.engine {
        Engine::Sqlite => "SELECT group_concat(restaurant_id, ',') FROM (SELECT restaurant_id FROM restaurants_sipform_changes ORDER BY seq)",
        Engine::Postgres => "SELECT string_agg(restaurant_id, ',' ORDER BY seq) FROM restaurants_sipform_changes",
    };
    let text = db.text(agg).await.unwrap_or_default();
    db.exec("DELETE FROM restaurants_sipform_changes").await;
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

async fn insert_restaurant(db: &TestDb, i: usize) {
    db.exec(&format!(
        "INSERT INTO restaurants (id, name, contact_email, sip_enabled) VALUES ({}, 'Restaurant {i}', 'r{i}@example.com', true)",
        db.id_literal(&rid(i))
    ))
    .await;
}

/// The write-back alone is not a change; a platform edit is; a wiped id is.
async fn updates_are_told_apart(db: &TestDb, i: usize) {
    insert_restaurant(db, i).await;
    assert_eq!(logged(db).await, vec![rid(i)]);
    let row = format!("WHERE id = {}", db.id_literal(&rid(i)));
    db.exec(&format!(
        "UPDATE restaurants SET agent_id = 'a{i}', final_customer_id = 'f{i}', agent_api_token = 't', agent_public_token = 'p' {row}"
    ))
    .await;
    assert!(logged(db).await.is_empty(), "the write-back woke the feed");
    db.exec(&format!("UPDATE restaurants SET name = 'Renamed' {row}"))
        .await;
    assert_eq!(logged(db).await, vec![rid(i)], "a rename was not logged");
    db.exec(&format!("UPDATE restaurants SET agent_id = NULL {row}"))
        .await;
    assert_eq!(
        logged(db).await,
        vec![rid(i)],
        "a wiped agent_id was not logged"
    );
}

async fn postgres_column_changes_succeed_with_the_feed_installed() {
    let (db, _dir) = installed(Engine::Postgres).await;
    updates_are_told_apart(&db, 7).await;
    // A hand-written migration, then the ORM's synchronize (fact 2).
    db.exec("ALTER TABLE restaurants ALTER COLUMN phone TYPE varchar(32)")
        .await;
    db.exec("ALTER TABLE \"restaurants\" DROP COLUMN \"phone\"")
        .await;
    db.exec("ALTER TABLE \"restaurants\" ADD \"phone\" character varying(32)")
        .await;
    db.exec("ALTER TABLE phone_lines ALTER COLUMN restaurant_id TYPE uuid")
        .await;
    db.exec("ALTER TABLE \"phone_lines\" DROP COLUMN \"sip_password\"")
        .await;
    db.exec("ALTER TABLE \"phone_lines\" ADD \"sip_password\" character varying(512)")
        .await;
    insert_restaurant(&db, 8).await;
    db.exec(&format!(
        "UPDATE restaurants SET phone = '+33 1 41 00 00 08 ext 1234' WHERE id = {}",
        db.id_literal(&rid(8))
    ))
    .await;
    assert_eq!(logged(&db).await, vec![rid(8), rid(8)]);
    updates_are_told_apart(&db, 9).await;
}

async fn sqlite_column_changes_succeed_with_the_feed_installed() {
    let (db, _dir) = installed(Engine::Sqlite).await;
    updates_are_told_apart(&db, 7).await;
    db.exec(
        "ALTER TABLE \"restaurants\" ADD COLUMN \"loyalty_enabled\" boolean NOT NULL DEFAULT (0)",
    )
    .await;
    db.exec("ALTER TABLE \"restaurants\" RENAME COLUMN \"description\" TO \"summary\"")
        .await;
    insert_restaurant(&db, 8).await;
    assert_eq!(logged(&db).await, vec![rid(8)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_platform_column_changes_succeed_and_are_still_seen() {
    postgres_column_changes_succeed_with_the_feed_installed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_platform_column_changes_succeed_and_are_still_seen() {
    sqlite_column_changes_succeed_with_the_feed_installed().await;
}
