//! Parity counts (issue 11): after applying N restaurants the emulator holds the same kinds and
//! counts of objects as the platform's own provisioning leaves (one account, N final
//! customers, N subscriptions, N agents, a tool of each kind per agent, N phone lines), in files mode and in
//! database mode, made with exactly one POST each and no other write; a second apply writes
//! nothing.

mod common;

use std::collections::BTreeMap;

use common::db::{Engine, TestDb};
use common::*;
use serde_json::Value;

const N: usize = 7;

/// Kind → count, as the platform's script leaves them.
fn platform_counts(n: usize) -> BTreeMap<&'static str, usize> {
    BTreeMap::from([
        ("accounts", 1),
        ("finalCustomers", n),
        ("subscriptions", n),
        ("agents", n),
        ("tools", bundled_tool_count() * n),
        ("phoneLines", n),
    ])
}

fn server_counts(emu: &sipform_emulator::EmulatorHandle) -> BTreeMap<&'static str, usize> {
    let snap = emu.snapshot();
    let len = |k: &str| snap[k].as_array().map(Vec::len).unwrap_or(0);
    let per_agent = |k: &str| -> usize {
        agents(emu)
            .iter()
            .map(|a| a[k].as_array().map(Vec::len).unwrap_or(0))
            .sum()
    };
    BTreeMap::from([
        ("accounts", len("accounts")),
        ("finalCustomers", len("finalCustomers")),
        ("subscriptions", len("subscriptions")),
        ("agents", len("agents")),
        ("tools", per_agent("tools")),
        ("phoneLines", per_agent("phoneLines")),
    ])
}

/// Exactly one POST per object, nothing else written.
fn expected_writes(n: usize) -> BTreeMap<String, u64> {
    let n = n as u64;
    BTreeMap::from([
        ("POST /api/accounts".to_string(), 1),
        ("POST /api/final-customers".to_string(), n),
        ("POST /api/final-customers/:id/subscriptions".to_string(), n),
        ("POST /api/agents".to_string(), n),
        (
            "POST /api/agents/:id/tools".to_string(),
            bundled_tool_count() as u64 * n,
        ),
        ("POST /api/agents/:id/phone-lines".to_string(), n),
    ])
}

async fn assert_parity(emu: &sipform_emulator::EmulatorHandle, dir: &std::path::Path) {
    assert_eq!(server_counts(emu), platform_counts(N));
    assert_eq!(writes(emu), expected_writes(N));
    // Every agent has its restaurant's line, every final customer its subscription.
    for a in agents(emu) {
        let lines = a["phoneLines"].as_array().cloned().unwrap_or_default();
        assert_eq!(lines.len(), 1, "{}", a["id"]);
        let subs: Vec<Value> = emu.snapshot()["subscriptions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s["finalCustomerId"] == a["finalCustomerId"])
            .collect();
        assert_eq!(subs.len(), 1, "{}", a["finalCustomerId"]);
    }
    let mark = writes(emu);
    apply_ok(dir, &emu.base_url()).await;
    assert!(
        writes_since(emu, &mark).is_empty(),
        "{:?}",
        writes_since(emu, &mark)
    );
    assert_eq!(server_counts(emu), platform_counts(N));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_mode_leaves_what_the_platform_leaves() {
    let emu = emulator().await;
    let dir = project_copy();
    generate_restaurants(dir.path(), N);
    let p = dir.path().join("sipform.yaml");
    let mut text = std::fs::read_to_string(&p).expect("read sipform.yaml");
    text.push_str("phone_lines:\n  source: restaurant_phone\n");
    std::fs::write(&p, text).expect("write sipform.yaml");
    apply_ok(dir.path(), &emu.base_url()).await;
    assert_parity(&emu, dir.path()).await;
}

async fn database_mode(engine: Engine) {
    let emu = emulator().await;
    let db = TestDb::new(engine).await;
    db.create_restaurants("restaurants").await;
    db.create_phone_lines().await;
    let mut sql = String::new();
    for i in 0..N {
        sql.push_str(&format!(
            "INSERT INTO restaurants (id, name, contact_email, sip_enabled) VALUES ({}, 'Restaurant {i}', 'r{i}@example.com', true);\n\
             INSERT INTO phone_lines (id, restaurant_id, phone_number, twilio_trunk_sid) VALUES ({}, {}, '+3314300{i:04}', 'TK{i}');\n",
            db.id_literal(&rid(i)),
            db.id_literal(&format!("22222222-0000-4000-8000-{i:012}")),
            db.id_literal(&rid(i)),
        ));
    }
    db.exec(&sql).await;
    let dir = project_copy();
    let yaml = format!(
        "account:\n  name: AlloResto\n  email: tech@alloresto.fr\ninventory:\n  source: database\n  url: \"{}\"\n",
        db.url
    );
    std::fs::write(dir.path().join("sipform.yaml"), yaml).expect("sipform.yaml");
    apply_ok(dir.path(), &emu.base_url()).await;
    assert_parity(&emu, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_database_mode_leaves_what_the_platform_leaves() {
    database_mode(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_database_mode_leaves_what_the_platform_leaves() {
    database_mode(Engine::Postgres).await;
}
