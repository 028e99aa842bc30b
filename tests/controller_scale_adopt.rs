//! Issue 24: an adopt-only plan is recorded by the controller as by the CLI. A `kill -9`
//! between creates the server stored and their state records leaves a plan of adoptions only;
//! one controller pass must record them, so `plan` shows nothing left to do.

mod common;

use common::controller::*;
use common::db::Engine;
use common::*;
use sipform_emulator::Faults;

/// Every tool and subscription create (the creates under an agent and a final customer, sent
/// at once) is stored by the server and never answered: the apply is killed with all of them
/// sent and none recorded.
fn child_creates_hang() -> Faults {
    serde_json::from_value(serde_json::json!({
        "commitThenFail": [
            {"method": "POST", "route": "/api/agents/:id/tools", "rate": 1, "mode": "hang"},
            {"method": "POST", "route": "/api/final-customers/:id/subscriptions", "rate": 1, "mode": "hang"}
        ]
    }))
    .expect("faults")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_records_the_adoptions_a_killed_apply_left() {
    let emu = emulator().await;
    let url = emu.base_url();
    let db = platform(Engine::Sqlite).await;
    let dir = project_on(&db);
    insert(&db, 0..1).await;
    emu.set_faults(child_creates_hang());

    let mut child = command(
        dir.path(),
        &url,
        &["apply", "--auto-approve", "--parallelism", "64"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("spawn");
    let tools = bundled_tool_count() as u64;
    wait_for("every tool and subscription create stored", || {
        count(&emu, "POST /api/agents/:id/tools") >= tools
            && count(&emu, "POST /api/final-customers/:id/subscriptions") >= 1
    })
    .await;
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    emu.set_faults(Faults::default());

    // The precondition: only adoptions are left (every create reached the server).
    let before = run(dir.path(), &url, &["plan", "--json"]).await;
    let plan: serde_json::Value = serde_json::from_slice(&before.stdout).expect("plan JSON");
    assert!(ops(&plan, "adopt") >= tools, "{}", stdout(&before));
    assert_eq!(ops(&plan, "create"), 0, "{}", stdout(&before));

    let once = run(dir.path(), &url, &["controller", "--once"]).await;
    expect_code(&once, 0);

    let after = run(dir.path(), &url, &["plan", "--detailed-exitcode"]).await;
    expect_code(&after, 0);
    assert!(stdout(&after).contains("No changes"), "{}", stdout(&after));
    assert_eq!(
        tool_count(&emu),
        bundled_tool_count(),
        "no tool created twice"
    );
    assert_no_duplicates(&emu);
}

/// How many actions of a JSON plan have this `op`.
fn ops(v: &serde_json::Value, op: &str) -> u64 {
    match v {
        serde_json::Value::Object(m) => {
            let here = u64::from(m.get("op").and_then(|o| o.as_str()) == Some(op));
            here + m.values().map(|c| ops(c, op)).sum::<u64>()
        }
        serde_json::Value::Array(a) => a.iter().map(|c| ops(c, op)).sum(),
        _ => 0,
    }
}
