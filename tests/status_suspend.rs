//! `sipform suspend` / `resume`: recorded in state, shown by `status`; a suspended restaurant
//! is left as it is by plan, apply and the controller, and caught up once resumed.

mod common;
use common::*;

use serde_json::Value;
use sipform_emulator::EmulatorHandle;

const NAPOLI: &str = "3f6c2a1e-8b4d-4c59-9a2e-1d7f5b6c8e01";
const NEW: &str = "Ends the call politely.";

/// The description of restaurant `id`'s tool `name` on the server.
fn tool_description(emu: &EmulatorHandle, id: &str, name: &str) -> String {
    agents(emu)
        .into_iter()
        .find(|a| a["config"]["restaurantId"] == id)
        .and_then(|a| {
            a["tools"]
                .as_array()
                .and_then(|t| t.iter().find(|t| t["name"] == name).cloned())
        })
        .and_then(|t| t["description"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The restaurant ids whose `end_call` has the new description.
fn updated(emu: &EmulatorHandle) -> Vec<String> {
    let mut ids: Vec<String> = agents(emu)
        .iter()
        .filter_map(|a| a["config"]["restaurantId"].as_str().map(str::to_string))
        .filter(|id| tool_description(emu, id, "end_call") == NEW)
        .collect();
    ids.sort();
    ids
}

async fn status_json(dir: &std::path::Path, url: &str) -> Value {
    let out = run(dir, url, &["status", "--json"]).await;
    expect_code(&out, 0);
    serde_json::from_str(&stdout(&out)).expect("JSON")
}

fn status_of(report: &Value, id: &str) -> String {
    report["restaurants"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["id"] == id))
        .and_then(|r| r["status"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Applied, then Napoli suspended, then a tool edited: each way of writing (apply, the
/// controller) changes every restaurant but Napoli; resumed, it is caught up.
async fn suspended_is_left_alone_by(controller: bool) {
    let emu = emulator().await;
    let dir = project_copy();
    let (d, url) = (dir.path(), emu.base_url());
    let n = restaurant_files(d).len();
    apply_ok(d, &url).await;

    let out = run(d, &url, &["suspend", "--restaurant", NAPOLI]).await;
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("suspended 1 restaurant(s)"),
        "{}",
        stdout(&out)
    );
    let report = status_json(d, &url).await;
    assert_eq!(status_of(&report, NAPOLI), "suspended", "{report}");
    assert_eq!(report["counts"]["suspended"], 1);
    assert_eq!(read_state(d)["restaurants"][NAPOLI]["suspended"], true);

    edit_yaml(&d.join("tools/end_call.yaml"), |t| {
        t["description"] = Value::String(NEW.into());
    });
    let plan = run(d, &url, &["plan"]).await;
    expect_code(&plan, 0);
    assert!(
        !stdout(&plan).contains("Pizzeria Napoli"),
        "{}",
        stdout(&plan)
    );
    let out = if controller {
        run(d, &url, &["controller", "--once", "-v"]).await
    } else {
        run(d, &url, &["apply", "--auto-approve"]).await
    };
    expect_code(&out, 0);
    let done = updated(&emu);
    assert_eq!(done.len(), n - 1, "{done:?}");
    assert!(
        !done.contains(&NAPOLI.to_string()),
        "a suspended restaurant was changed"
    );
    let refreshed = run(d, &url, &["status", "--refresh", "--json"]).await;
    expect_code(&refreshed, 0);
    let refreshed: Value = serde_json::from_str(&stdout(&refreshed)).expect("JSON");
    assert_eq!(status_of(&refreshed, NAPOLI), "suspended", "{refreshed}");

    let out = run(d, &url, &["resume", "--all"]).await;
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("resumed 1 restaurant(s)"),
        "{}",
        stdout(&out)
    );
    let refreshed = run(d, &url, &["status", "--refresh", "--json"]).await;
    let refreshed: Value = serde_json::from_str(&stdout(&refreshed)).expect("JSON");
    assert_eq!(status_of(&refreshed, NAPOLI), "out_of_sync", "{refreshed}");
    apply_ok(d, &url).await;
    assert_eq!(updated(&emu).len(), n);
    assert!(read_state(d)["restaurants"][NAPOLI]
        .get("suspended")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_leaves_a_suspended_restaurant_alone() {
    suspended_is_left_alone_by(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_leaves_a_suspended_restaurant_alone() {
    suspended_is_left_alone_by(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_refuses_an_unknown_restaurant_and_needs_a_choice() {
    let emu = emulator().await;
    let dir = project_copy();
    let (d, url) = (dir.path(), emu.base_url());
    let out = run(d, &url, &["suspend", "--restaurant", "no-such-id"]).await;
    expect_code(&out, 1);
    assert!(stderr(&out).contains("no-such-id"), "{}", stderr(&out));
    let out = run(d, &url, &["suspend"]).await;
    expect_code(&out, 1);
    // Suspending before any apply: remembered, and the first apply leaves it out.
    let out = run(d, &url, &["suspend", "--all"]).await;
    expect_code(&out, 0);
    let report = status_json(d, &url).await;
    assert_eq!(
        report["counts"]["suspended"],
        restaurant_files(d).len(),
        "{report}"
    );
    apply_ok(d, &url).await;
    assert!(
        agents(&emu).is_empty(),
        "nothing created for a suspended restaurant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_saved_before_a_suspension_is_not_applied_to_it() {
    let emu = emulator().await;
    let dir = project_copy();
    let (d, url) = (dir.path(), emu.base_url());
    apply_ok(d, &url).await;
    edit_yaml(&d.join("tools/end_call.yaml"), |t| {
        t["description"] = Value::String(NEW.into());
    });
    let out = run(d, &url, &["plan", "--out", "saved.json"]).await;
    expect_code(&out, 0);
    let out = run(d, &url, &["suspend", "--restaurant", NAPOLI]).await;
    expect_code(&out, 0);
    let out = run(d, &url, &["apply", "saved.json", "--auto-approve"]).await;
    expect_code(&out, 1);
    assert!(all_output(&out).contains("stale"), "{}", all_output(&out));
    assert!(
        !updated(&emu).contains(&NAPOLI.to_string()),
        "a saved plan changed a suspended restaurant"
    );
}
