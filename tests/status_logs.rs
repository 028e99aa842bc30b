//! The controller's log says what happened to whom: each reconcile that changes something has
//! one INFO line naming the restaurant (name and id) and what changed, field names only.

mod common;
use common::*;

use serde_json::Value;

const NAPOLI: &str = "3f6c2a1e-8b4d-4c59-9a2e-1d7f5b6c8e01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_line_names_the_restaurant_and_what_changed_without_secrets() {
    let emu = emulator().await;
    let dir = project_copy();
    let (d, url) = (dir.path(), emu.base_url());
    apply_ok(d, &url).await;
    // The agent's name follows the restaurant's; a tool's description changes for everyone.
    edit_yaml(&d.join("restaurants/pizzeria-napoli.yaml"), |r| {
        r["name"] = Value::String("Pizzeria Napoli Due".into());
    });
    edit_yaml(&d.join("tools/end_call.yaml"), |t| {
        t["description"] = Value::String("Ends the call politely.".into());
    });
    // -v: INFO lines, as a controller runs (debug would add the unchanged ones).
    let out = run(d, &url, &["controller", "--once", "-v"]).await;
    expect_code(&out, 0);
    let log = stderr(&out);
    let line = log
        .lines()
        .find(|l| l.contains(NAPOLI) && l.contains("reconciled"))
        .unwrap_or_else(|| panic!("no reconcile line for {NAPOLI}:\n{log}"));
    assert!(line.contains("INFO"), "{line}");
    assert!(
        line.contains(&format!("\"Pizzeria Napoli Due\" ({NAPOLI})")),
        "{line}"
    );
    assert!(line.contains("agent name"), "{line}");
    assert!(line.contains("tool end_call: description"), "{line}");
    // Every other restaurant says its own change too.
    let others = log
        .lines()
        .filter(|l| l.contains("reconciled") && l.contains("tool end_call: description"))
        .count();
    assert_eq!(others, restaurant_files(d).len(), "{log}");
    // No token the server holds for an agent appears in the log.
    for a in agents(&emu) {
        for key in ["apiToken", "publicToken"] {
            if let Some(secret) = a[key].as_str().filter(|s| !s.is_empty()) {
                assert!(!log.contains(secret), "{key} in the log:\n{log}");
            }
        }
    }
}
