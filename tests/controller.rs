//! `sipform controller` end to end, in PostgreSQL and SQLite: a row inserted is provisioned, a
//! rename is one PUT, SIP off makes the agent inactive, a deleted row is reported (deleted
//! only with --allow-destroy), SIGTERM exits 0 and releases the locks.

mod common;

use common::controller::*;
use common::db::Engine;
use common::*;

async fn lifecycle(engine: Engine) {
    let emu = emulator().await;
    let db = platform(engine).await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &emu.base_url());
    // Idempotent: a second install changes nothing and succeeds.
    install_trigger(dir.path(), &emu.base_url());
    let mut ctl = start(dir.path(), &emu.base_url(), &[], &[]);
    eventually("the controller to lead", 20, || ctl.is_leader()).await;

    // Insert → provisioned: agent, its tools, ids written back to the row.
    insert(&db, 0..1).await;
    eventually("restaurant 0 provisioned", 20, || provisioned(&db, &emu, 0)).await;
    assert_eq!(agents(&emu).len(), 1);
    assert_eq!(final_customers(&emu).len(), 1);
    // The controller's own write-back is not a change: it does not reconcile again.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let settled = emu.request_counts();

    // Rename → the agent renamed, nothing else written.
    let mark = writes(&emu);
    db.exec(&format!(
        "UPDATE restaurants SET name = 'Chez Zoé' WHERE id = {}",
        db.id_literal(&rid(0))
    ))
    .await;
    eventually("the agent renamed", 20, || async {
        agent_of(&emu, 0).is_some_and(|a| a["name"].as_str().unwrap_or("").contains("Chez Zoé"))
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let written = writes_since(&emu, &mark);
    // The agent and its final customer carry the restaurant's name; no tool, no create.
    assert_eq!(
        written,
        [
            ("PUT /api/agents/:id".to_string(), 1),
            ("PUT /api/final-customers/:id".to_string(), 1)
        ]
        .into_iter()
        .collect(),
        "a rename writes the agent and its final customer only"
    );
    // No read: the controller plans against its cache of the server.
    let total: u64 = emu.request_counts().values().sum::<u64>() - settled.values().sum::<u64>();
    assert_eq!(
        total,
        2,
        "a rename cost {total} requests: {:?}",
        emu.request_counts()
    );

    // SIP disabled → the agent inactive, kept.
    db.exec(&format!(
        "UPDATE restaurants SET sip_enabled = false WHERE id = {}",
        db.id_literal(&rid(0))
    ))
    .await;
    eventually("the agent inactive", 20, || async {
        agent_of(&emu, 0).is_some_and(|a| a["isActive"] == false)
    })
    .await;

    // Row deleted → reported, not deleted.
    db.exec(&format!(
        "DELETE FROM restaurants WHERE id = {}",
        db.id_literal(&rid(0))
    ))
    .await;
    eventually("the deletion reported", 20, || async {
        ctl.log_text().contains("--allow-destroy")
    })
    .await;
    assert_eq!(agents(&emu).len(), 1, "no delete without --allow-destroy");
    assert_eq!(count(&emu, "DELETE /api/agents/:id"), 0);
    assert!(
        ctl.metric("sipform_controller_reconciles_total{result=\"held\"}")
            .await
            .unwrap_or(0.0)
            >= 1.0
    );

    // SIGTERM → exit 0, locks released: --once takes them at once and deletes the agent.
    ctl.signal(SIGTERM);
    let status = ctl.exited(15).await;
    assert_eq!(status.code(), Some(0), "{}", ctl.log_text());
    let out = sipform(
        dir.path(),
        &emu.base_url(),
        &[
            "controller",
            "--once",
            "--allow-destroy",
            "--lock-timeout",
            "1s",
        ],
    );
    expect_code(&out, 0);
    assert_eq!(agents(&emu).len(), 0, "deleted with --allow-destroy");
    assert_eq!(final_customers(&emu).len(), 0);
    let log = stderr(&out);
    assert!(log.contains("1 changed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_insert_rename_disable_delete() {
    lifecycle(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_insert_rename_disable_delete() {
    lifecycle(Engine::Sqlite).await;
}

/// `--print-sql` prints the trigger SQL and changes nothing; the SQL names the table, the
/// channel, and skips the write-back columns inside the function (no trigger names a column).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_sql_changes_nothing() {
    let emu = emulator().await;
    let db = platform(Engine::Postgres).await;
    let dir = project_on(&db);
    let out = sipform(
        dir.path(),
        &emu.base_url(),
        &["controller", "install-trigger", "--print-sql"],
    );
    expect_code(&out, 0);
    let sql = stdout(&out);
    assert!(sql.contains("CREATE TRIGGER"), "{sql}");
    assert!(
        sql.contains("pg_notify('sipform_restaurant_changes'"),
        "{sql}"
    );
    assert!(!sql.contains("UPDATE OF"), "{sql}");
    let skipped = sql
        .lines()
        .find(|l| l.contains("to_jsonb(NEW) - ARRAY["))
        .expect("the written-back columns skipped in the function");
    assert!(skipped.contains("'agent_id'"), "{skipped}");
    assert_eq!(
        db.text("SELECT CAST(to_regclass('restaurants_sipform_changes') AS TEXT)")
            .await,
        None,
        "--print-sql must not install anything"
    );
}

/// `--once` with a files inventory applies the project and exits 0; a second run changes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_with_files_inventory() {
    let emu = emulator().await;
    let dir = project_copy();
    generate_restaurants(dir.path(), 3);
    let out = sipform(dir.path(), &emu.base_url(), &["controller", "--once"]);
    expect_code(&out, 0);
    assert_eq!(agents(&emu).len(), 3);
    assert_eq!(tool_count(&emu), 3 * bundled_tool_count());
    assert_state_matches_server(dir.path(), &emu);
    let mark = writes(&emu);
    let out = sipform(dir.path(), &emu.base_url(), &["controller", "--once"]);
    expect_code(&out, 0);
    assert!(writes_since(&emu, &mark).is_empty());
}

/// `--watch` with a files inventory: a restaurant file added is provisioned without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reconciles_when_files_change() {
    let emu = emulator().await;
    let dir = project_copy();
    generate_restaurants(dir.path(), 1);
    let ctl = start(dir.path(), &emu.base_url(), &["--watch"], &[]);
    eventually("the first restaurant provisioned", 20, || async {
        agents(&emu).len() == 1 && tool_count(&emu) == bundled_tool_count()
    })
    .await;
    let first = std::fs::read_to_string(dir.path().join("restaurants/r0000.yaml")).expect("read");
    let second = first
        .replace(
            "00000000-0000-4000-8000-000000000000",
            "00000000-0000-4000-8000-000000000001",
        )
        .replace("Restaurant 0", "Restaurant 1");
    std::fs::write(dir.path().join("restaurants/r0001.yaml"), second).expect("write");
    eventually("the new file provisioned", 20, || async {
        agents(&emu).len() == 2 && tool_count(&emu) == 2 * bundled_tool_count()
    })
    .await;
    assert_no_duplicates(&emu);
    drop(ctl);
}
