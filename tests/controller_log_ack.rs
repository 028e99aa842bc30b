//! Issue 24: a change-log entry is deleted once its restaurant is reconciled, not when read. A
//! leader that read a change and died before reconciling it leaves the entry to the next
//! leader, which reconciles that restaurant at once, even though state says it was checked
//! just now (without the entry it would wait for the next resync, an hour here).

mod common;

use common::controller::*;
use common::db::Engine;
use common::hostile::Hostile;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_read_by_a_leader_killed_before_reconciling_it_is_reconciled_by_the_next() {
    let emu = emulator().await;
    // Calls naming the agent set here answer 500: A's reconcile of that restaurant fails.
    let (proxy, bad) = Hostile::failing_for(&emu.base_url()).await;
    let db = platform(Engine::Postgres).await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &emu.base_url());
    let hour = ["--resync", "1h"];

    insert(&db, 0..3).await;
    let mut a = start(dir.path(), &proxy.base_url(), &hour, &[]);
    eventually("A provisioned everyone", 60, || async {
        for i in 0..3 {
            if !provisioned(&db, &emu, i).await {
                return false;
            }
        }
        true
    })
    .await;
    eventually("A's queue drained", 30, || async {
        a.metric("sipform_controller_queue_depth").await == Some(0.0)
    })
    .await;

    let agent1 = agent_of(&emu, 1).expect("agent 1")["id"]
        .as_str()
        .expect("agent id")
        .to_string();
    *bad.lock().unwrap_or_else(|e| e.into_inner()) = Some(agent1);
    db.exec(&format!(
        "UPDATE restaurants SET name = 'Renamed 1' WHERE id = {}",
        db.id_literal(&rid(1))
    ))
    .await;
    eventually("A read the change and failed to apply it", 30, || async {
        a.log_text().contains("will retry")
    })
    .await;
    // Still in the log: read, not answered.
    let left = db
        .text("SELECT count(*)::text FROM restaurants_sipform_changes")
        .await;
    assert_eq!(left.as_deref(), Some("1"), "{}", a.log_text());
    a.kill9();

    let b = start(dir.path(), &emu.base_url(), &hour, &[]);
    eventually("B renamed agent 1 from the entry A left", 30, || async {
        agent_of(&emu, 1).is_some_and(|a| a["name"] == "Renamed 1")
    })
    .await;
    // Answered: deleted.
    eventually("the entry deleted once reconciled", 20, || async {
        db.text("SELECT count(*)::text FROM restaurants_sipform_changes")
            .await
            .as_deref()
            == Some("0")
    })
    .await;
    assert!(!b.log_text().contains("clearing"), "{}", b.log_text());
}
