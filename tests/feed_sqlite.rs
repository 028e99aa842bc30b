//! SQLite shared with a running platform (issue 23): the controller notices another process's
//! commit through `PRAGMA data_version` on a kept connection, without waiting for its poll, and
//! the platform's own writes never fail because of it.

mod common;

use common::controller::*;
use common::db::Engine;
use common::*;
use sqlx::Connection;

/// With the log's poll an hour away, an insert is still provisioned: something else (the
/// `data_version` watch) woke the controller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_commit_wakes_the_controller_without_its_poll() {
    let emu = emulator().await;
    let db = platform(Engine::Sqlite).await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &emu.base_url());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let log = dir.path().join("controller.log");
    let out = std::fs::File::create(&log).expect("log file");
    let args = [
        "controller",
        "-v",
        "--listen",
        &listen,
        "--poll-interval",
        "1h",
        "--resync",
        "1h",
    ];
    let child = command(dir.path(), &emu.base_url(), &args)
        .stdout(std::process::Stdio::from(out.try_clone().expect("log")))
        .stderr(std::process::Stdio::from(out))
        .spawn()
        .expect("spawn the controller");
    let ctl = Ctl { child, port, log };
    eventually("leading", 60, || async {
        ctl.get("/readyz")
            .await
            .is_some_and(|(_, b)| b.contains("\"leader\":true"))
    })
    .await;
    insert(&db, 0..1).await;
    eventually("restaurant 0 provisioned", 60, || provisioned(&db, &emu, 0)).await;
    insert(&db, 1..3).await;
    eventually("restaurants 1 and 2 provisioned", 60, || async {
        provisioned(&db, &emu, 1).await && provisioned(&db, &emu, 2).await
    })
    .await;
}

/// The platform inserts steadily from its own connection (a 1 s busy timeout) while the
/// controller provisions and writes back the same file: no platform write fails, every row is
/// provisioned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_platforms_writes_never_fail_beside_the_controller() {
    let emu = emulator().await;
    let db = platform(Engine::Sqlite).await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &emu.base_url());
    let _ctl = start(dir.path(), &emu.base_url(), &[], &[]);
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db.sqlite_path())
        .busy_timeout(std::time::Duration::from_secs(1));
    let mut platform = sqlx::SqliteConnection::connect_with(&opts)
        .await
        .expect("connect");
    let n = 60;
    let mut failed = Vec::new();
    for i in 0..n {
        let sql = format!(
            "INSERT INTO restaurants (id, name, contact_email, sip_enabled) VALUES ('{}', 'Restaurant {i}', 'r{i}@example.com', 1)",
            rid(i)
        );
        if let Err(e) = sqlx::raw_sql(&sql).execute(&mut platform).await {
            failed.push(format!("{i}: {e}"));
        }
        // Also an update of a provisioned row now and then, as the platform's pages do.
        if i % 5 == 4 {
            let sql = format!(
                "UPDATE restaurants SET updated_at = datetime('now') WHERE id = '{}'",
                rid(i - 4)
            );
            if let Err(e) = sqlx::raw_sql(&sql).execute(&mut platform).await {
                failed.push(format!("update {i}: {e}"));
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        failed.is_empty(),
        "the platform's writes failed: {failed:?}"
    );
    eventually("every row provisioned", 120, || async {
        for i in 0..n {
            if !provisioned(&db, &emu, i).await {
                return false;
            }
        }
        true
    })
    .await;
    assert_no_duplicates(&emu);
}
