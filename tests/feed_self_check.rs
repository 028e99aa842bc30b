//! The feed never dies silently (issue 23 item 2, issue 25 item 13): the platform's SQLite
//! table rebuild (reference fact 1) drops the triggers while the controller runs; the
//! controller logs an ERROR naming table and trigger, `/readyz` goes 503 with the reason,
//! `feed_installed` and `feed_connected` go to 0, `doctor` names the trigger; once the feed is
//! back (installed by hand, or by the controller itself with `--manage-trigger`) a restaurant
//! inserted meanwhile or after is provisioned. PostgreSQL: a dropped trigger is found by the
//! periodic check and put back.

mod common;

use common::controller::*;
use common::db::{restaurants_ddl, Engine, TestDb};
use common::*;

/// The platform's tables (phone lines too), a project on them, the feed installed.
async fn setup(engine: Engine) -> (sipform_emulator::EmulatorHandle, TestDb, tempfile::TempDir) {
    let emu = emulator().await;
    let db = platform(engine).await;
    db.create_phone_lines().await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &emu.base_url());
    (emu, db, dir)
}

/// The platform ORM's SQLite table rebuild (reference fact 1), widening `phone`.
async fn rebuild_restaurants(db: &TestDb) {
    let ddl = restaurants_ddl(Engine::Sqlite, "\"temporary_restaurants\"")
        .replace("\"phone\" varchar(20)", "\"phone\" varchar(32)");
    db.exec(&format!(
        "PRAGMA foreign_keys = OFF;
BEGIN;
{ddl}
INSERT INTO \"temporary_restaurants\" SELECT * FROM \"restaurants\";
DROP TABLE \"restaurants\";
ALTER TABLE \"temporary_restaurants\" RENAME TO \"restaurants\";
COMMIT;
PRAGMA foreign_keys = ON;"
    ))
    .await;
}

async fn sqlite_triggers(db: &TestDb) -> String {
    db.text("SELECT group_concat(name, ',') FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'restaurants'")
        .await
        .unwrap_or_default()
}

/// Without --manage-trigger: reported everywhere, and healed by a hand install.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_table_rebuild_is_reported_and_the_gap_covered() {
    let (emu, db, dir) = setup(Engine::Sqlite).await;
    insert(&db, 0..1).await;
    let ctl = start(dir.path(), &emu.base_url(), &[], &[]);
    eventually("restaurant 0 provisioned", 60, || provisioned(&db, &emu, 0)).await;
    eventually("ready", 30, || async {
        ctl.readyz().await["ready"] == true
    })
    .await;
    assert_eq!(
        ctl.metric("sipform_controller_feed_installed").await,
        Some(1.0)
    );

    rebuild_restaurants(&db).await;
    assert_eq!(
        sqlite_triggers(&db).await,
        "",
        "the rebuild keeps no trigger"
    );
    eventually("an ERROR naming the trigger", 30, || async {
        let log = ctl.log_text();
        log.contains("ERROR") && log.contains("restaurants_sipform_insert on table restaurants")
    })
    .await;
    eventually("/readyz 503", 30, || async {
        ctl.get("/readyz")
            .await
            .is_some_and(|(code, _)| code == 503)
    })
    .await;
    let ready = ctl.readyz().await;
    assert_eq!(ready["feed"], false, "{ready}");
    let reason = ready["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("restaurants_sipform_update"), "{ready}");
    assert_eq!(
        ctl.metric("sipform_controller_feed_installed").await,
        Some(0.0)
    );
    assert_eq!(
        ctl.metric("sipform_controller_feed_connected").await,
        Some(0.0)
    );
    let out = sipform(dir.path(), &emu.base_url(), &["doctor"]);
    assert!(
        all_output(&out).contains("restaurants_sipform_delete on table restaurants"),
        "doctor does not name the missing trigger:\n{}",
        all_output(&out)
    );
    assert_ne!(
        out.status.code(),
        Some(0),
        "doctor passes with the feed missing"
    );

    // A restaurant created during the gap, then the feed put back by hand.
    insert(&db, 1..2).await;
    install_trigger(dir.path(), &emu.base_url());
    eventually(
        "restaurant 1 provisioned after the feed is back",
        60,
        || provisioned(&db, &emu, 1),
    )
    .await;
    eventually("ready again", 30, || async {
        ctl.readyz().await["ready"] == true
    })
    .await;
    assert_eq!(
        ctl.metric("sipform_controller_feed_installed").await,
        Some(1.0)
    );
    assert_no_duplicates(&emu);
}

/// With --manage-trigger: the controller puts the triggers back, and an insert after the
/// rebuild is provisioned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_table_rebuild_is_healed_by_the_controller() {
    let (emu, db, dir) = setup(Engine::Sqlite).await;
    insert(&db, 0..1).await;
    let ctl = start(dir.path(), &emu.base_url(), &["--manage-trigger"], &[]);
    eventually("restaurant 0 provisioned", 60, || provisioned(&db, &emu, 0)).await;
    rebuild_restaurants(&db).await;
    eventually("the triggers back", 30, || async {
        sqlite_triggers(&db).await.split(',').count() == 3
    })
    .await;
    let log = ctl.log_text();
    assert!(
        log.contains("ERROR") && log.contains("restaurants_sipform_insert on table restaurants"),
        "{log}"
    );
    assert!(log.contains("reinstalled the change feed"), "{log}");
    insert(&db, 1..2).await;
    eventually("restaurant 1 provisioned", 60, || provisioned(&db, &emu, 1)).await;
    eventually("ready", 30, || async {
        ctl.readyz().await["ready"] == true
    })
    .await;
    assert_no_duplicates(&emu);
}

/// PostgreSQL: a trigger dropped by a migration is found by the periodic catalog check and,
/// with --manage-trigger, put back; changes after it are seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_dropped_trigger_is_found_and_put_back() {
    let (emu, db, dir) = setup(Engine::Postgres).await;
    insert(&db, 0..1).await;
    let ctl = start(dir.path(), &emu.base_url(), &["--manage-trigger"], &[]);
    eventually("restaurant 0 provisioned", 60, || provisioned(&db, &emu, 0)).await;
    db.exec("DROP TRIGGER restaurants_sipform_changes ON restaurants")
        .await;
    eventually("the trigger back", 60, || async {
        db.text("SELECT CAST(count(*) AS TEXT) FROM pg_trigger WHERE tgname = 'restaurants_sipform_changes'")
            .await
            .as_deref()
            == Some("1")
    })
    .await;
    let log = ctl.log_text();
    assert!(
        log.contains("ERROR") && log.contains("restaurants_sipform_changes on table restaurants"),
        "{log}"
    );
    insert(&db, 1..2).await;
    eventually("restaurant 1 provisioned", 60, || provisioned(&db, &emu, 1)).await;
    assert_no_duplicates(&emu);
}
