//! `sipform status`: every restaurant of the inventory and of state with its status, reason
//! and revision; `--refresh` compares with the server through a plan; `--json`, `--restaurant`.

mod common;
use common::*;

use serde_json::Value;

/// The report with its clock readings replaced, for snapshots.
fn settle(text: &str) -> String {
    let mut out = String::new();
    for word in text.split_inclusive([' ', '\n', '(', ')']) {
        let core = word.trim_end_matches([' ', '\n', '(', ')']);
        let is_time =
            core.len() == 20 && core.ends_with('Z') && core.as_bytes().get(10) == Some(&b'T');
        if is_time {
            out.push_str(&word.replacen(core, "YYYY-MM-DDTHH:MM:SSZ", 1));
        } else {
            out.push_str(word);
        }
    }
    out
}

fn json(out: &std::process::Output) -> Value {
    expect_code(out, 0);
    serde_json::from_str(&stdout(out)).expect("status --json is JSON")
}

#[tokio::test]
async fn status_says_pending_then_synced_then_out_of_sync_with_what_changed() {
    let emu = emulator().await;
    let dir = project_copy();
    let url = emu.base_url();
    let n = restaurant_files(dir.path()).len();

    let before = json(&run(dir.path(), &url, &["status", "--json"]).await);
    assert_eq!(before["counts"]["pending"], n, "{before}");
    assert_eq!(before["restaurants"].as_array().map(Vec::len), Some(n));

    apply_ok(dir.path(), &url).await;
    let human = run(dir.path(), &url, &["status"]).await;
    expect_code(&human, 0);
    insta::assert_snapshot!("status_after_apply", settle(&stdout(&human)));

    edit_yaml(&dir.path().join("tools/end_call.yaml"), |t| {
        t["description"] = Value::String("Ends the call politely.".into());
    });
    let refreshed = run(dir.path(), &url, &["status", "--refresh"]).await;
    expect_code(&refreshed, 0);
    insta::assert_snapshot!("status_refresh_out_of_sync", settle(&stdout(&refreshed)));

    let one_id = "3f6c2a1e-8b4d-4c59-9a2e-1d7f5b6c8e01";
    let one = json(
        &run(
            dir.path(),
            &url,
            &["status", "--refresh", "--json", "--restaurant", one_id],
        )
        .await,
    );
    let rows = one["restaurants"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "{one}");
    assert_eq!(rows[0]["id"], one_id);
    assert_eq!(rows[0]["name"], "Pizzeria Napoli");
    assert_eq!(rows[0]["status"], "out_of_sync");
    let reason = rows[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("tool end_call: description"), "{reason}");
    assert!(rows[0]["when"].is_string(), "{one}");
    assert_eq!(one["counts"]["out_of_sync"], 1);

    let unknown = run(dir.path(), &url, &["status", "--restaurant", "nope"]).await;
    expect_code(&unknown, 1);
    assert!(stderr(&unknown).contains("nope"), "{}", stderr(&unknown));
}
