//! The controller's cache of the server: a targeted reconcile plans against it (a new
//! restaurant costs its writes and no list read; a rename costs its PUTs), the full resync
//! replaces it (drift made behind its back is repaired), and a 404 from the server makes it
//! re-read the restaurant and recover without a duplicate.

mod common;

use std::time::Duration;

use common::controller::*;
use common::db::Engine;
use common::*;
use sipform_emulator::EmulatorHandle;

/// The controller leading, restaurant 0 provisioned through it (the account made too), and
/// everything settled.
async fn provisioned_one(
    extra: &[&str],
) -> (EmulatorHandle, common::db::TestDb, tempfile::TempDir, Ctl) {
    let emu = emulator().await;
    let db = platform(Engine::Postgres).await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &emu.base_url());
    let ctl = start(dir.path(), &emu.base_url(), extra, &[]);
    eventually("the controller to lead", 20, || ctl.is_leader()).await;
    insert(&db, 0..1).await;
    eventually("restaurant 0 provisioned", 20, || provisioned(&db, &emu, 0)).await;
    settle(&emu).await;
    (emu, db, dir, ctl)
}

/// Waits until the emulator has seen no request for a while.
async fn settle(emu: &EmulatorHandle) {
    let mut last = emu.request_counts();
    loop {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let now = emu.request_counts();
        if now == last {
            return;
        }
        last = now;
    }
}

async fn rename(db: &common::db::TestDb, i: usize, name: &str) {
    db.exec(&format!(
        "UPDATE restaurants SET name = '{name}' WHERE id = {}",
        db.id_literal(&rid(i))
    ))
    .await;
}

fn agent_named(emu: &EmulatorHandle, i: usize, part: &str) -> bool {
    agent_of(emu, i).is_some_and(|a| a["name"].as_str().unwrap_or("").contains(part))
}

/// A new restaurant: its final customer, agent and tools, and not one read (no list of
/// agents or final customers, no GET at all). A rename: the two PUTs and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_restaurant_and_rename_cost_their_writes_only() {
    let (emu, db, _dir, _ctl) = provisioned_one(&[]).await;

    let mark = emu.request_counts();
    insert(&db, 1..2).await;
    eventually("restaurant 1 provisioned", 20, || provisioned(&db, &emu, 1)).await;
    settle(&emu).await;
    let spent = requests_since(&emu, &mark);
    let total: u64 = spent.values().sum();
    assert!(
        spent.keys().all(|k| !k.starts_with("GET ")),
        "a new restaurant read the server: {spent:?}"
    );
    assert_eq!(
        spent,
        [
            ("POST /api/final-customers".to_string(), 1),
            ("POST /api/agents".to_string(), 1),
            (
                "POST /api/agents/:id/tools".to_string(),
                bundled_tool_count() as u64,
            ),
            ("POST /api/final-customers/:id/subscriptions".to_string(), 1),
        ]
        .into_iter()
        .collect(),
        "a new restaurant costs its writes: {total} requests"
    );
    assert!(total <= 16);

    let mark = emu.request_counts();
    rename(&db, 1, "Chez Zoé").await;
    eventually("the agent renamed", 20, || async {
        agent_named(&emu, 1, "Chez Zoé")
    })
    .await;
    settle(&emu).await;
    assert_eq!(
        requests_since(&emu, &mark),
        [
            ("PUT /api/agents/:id".to_string(), 1),
            ("PUT /api/final-customers/:id".to_string(), 1)
        ]
        .into_iter()
        .collect(),
        "a rename costs its two PUTs, no read"
    );
    assert_no_duplicates(&emu);
}

/// An agent renamed on the server directly is put back by the next full resync: the resync
/// re-reads the server instead of trusting the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_behind_the_controllers_back_is_repaired_at_the_resync() {
    let (emu, _db, _dir, _ctl) = provisioned_one(&["--resync", "2s"]).await;
    let agent = agent_of(&emu, 0).expect("agent 0");
    let id = agent["id"].as_str().expect("agent id").to_string();
    let wanted = agent["name"].as_str().expect("agent name").to_string();
    let r = reqwest::Client::new()
        .put(format!("{}/api/agents/{id}", emu.base_url()))
        .json(&serde_json::json!({"name": "Drifted"}))
        .send()
        .await
        .expect("PUT");
    assert!(r.status().is_success(), "{}", r.status());
    assert!(agent_named(&emu, 0, "Drifted"));
    eventually("the drift repaired", 20, || async {
        agent_of(&emu, 0).is_some_and(|a| a["name"] == wanted.as_str())
    })
    .await;
    assert_eq!(agents(&emu).len(), 1);
    assert_no_duplicates(&emu);
}

/// An agent deleted on the server behind the controller's back: the next reconcile of its
/// restaurant gets a 404 from the cached id, re-reads the restaurant, and creates the agent
/// and its tools once; the row names the new agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_deleted_behind_the_back_is_recreated_once() {
    let (emu, db, _dir, ctl) = provisioned_one(&[]).await;
    let old = agent_of(&emu, 0).expect("agent 0")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let r = reqwest::Client::new()
        .delete(format!("{}/api/agents/{old}", emu.base_url()))
        .send()
        .await
        .expect("DELETE");
    assert!(r.status().is_success(), "{}", r.status());
    assert!(agent_of(&emu, 0).is_none());

    let mark = emu.request_counts();
    rename(&db, 0, "Chez Zoé").await;
    eventually("the agent recreated", 20, || async {
        agent_named(&emu, 0, "Chez Zoé") && provisioned(&db, &emu, 0).await
    })
    .await;
    settle(&emu).await;
    let spent = requests_since(&emu, &mark);
    assert_eq!(spent.get("PUT /api/agents/:id"), Some(&1), "{spent:?}");
    assert_eq!(spent.get("POST /api/agents"), Some(&1), "{spent:?}");
    assert_eq!(
        spent.get("POST /api/agents/:id/tools"),
        Some(&(bundled_tool_count() as u64)),
        "{spent:?}"
    );
    assert_eq!(agents(&emu).len(), 1);
    assert_ne!(agent_of(&emu, 0).expect("agent 0")["id"], old.as_str());
    assert_no_duplicates(&emu);
    assert!(
        ctl.metric("sipform_controller_reconciles_total{result=\"fatal\"}")
            .await
            .unwrap_or(0.0)
            == 0.0,
        "the 404 was recovered, not parked:\n{}",
        ctl.log_text()
    );
}
