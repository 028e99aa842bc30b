//! Issue 12 against the emulator, through the real binary: `--target` naming nothing, saved
//! plans stale per restaurant, and the command sequence the shipped CI workflow runs.

mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};

/// A restaurant document's id.
fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_naming_no_restaurant_fails_naming_it_and_sends_nothing() {
    let emu = emulator().await;
    let dir = project_copy();
    let ghost = "0badc0de-0000-4000-8000-000000000000";
    let mark = writes(&emu);
    for args in [
        vec!["plan", "--target", ghost],
        vec!["apply", "--auto-approve", "--target", ghost],
    ] {
        let out = run(dir.path(), &emu.base_url(), &args).await;
        expect_code(&out, 1);
        assert!(stderr(&out).contains(ghost), "{args:?}: {}", stderr(&out));
        assert!(!stdout(&out).contains("No changes"), "{}", stdout(&out));
    }
    assert!(writes_since(&emu, &mark).is_empty(), "nothing sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_is_stale_only_for_the_restaurants_it_touches() {
    let emu = emulator().await;
    let dir = project_copy();
    let base = emu.base_url();
    apply_ok(dir.path(), &base).await;
    let files = restaurant_files(dir.path());
    let (file_a, file_b) = (&files[0], &files[1]);

    // Plan for A, then apply a change to B: the saved plan for A still applies.
    let a = id_of(&edit_yaml(file_a, |v| v["ai_voice"] = json!("verse")));
    expect_code(
        &run(
            dir.path(),
            &base,
            &["plan", "--target", &a, "--out", "a.json"],
        )
        .await,
        0,
    );
    let b = id_of(&edit_yaml(file_b, |v| v["ai_voice"] = json!("coral")));
    expect_code(
        &run(
            dir.path(),
            &base,
            &["apply", "--auto-approve", "--target", &b],
        )
        .await,
        0,
    );
    let out = run(dir.path(), &base, &["apply", "a.json"]).await;
    expect_code(&out, 0);
    let voice_of = |id: &str| {
        agents(&emu)
            .into_iter()
            .find(|g| g["config"]["restaurantId"] == id)
            .map(|g| g["aiVoice"].clone())
    };
    assert_eq!(voice_of(&a), Some(json!("verse")));
    assert_eq!(voice_of(&b), Some(json!("coral")));

    // Plan for A, then a change to A lands first: the saved plan is refused, naming A.
    edit_yaml(file_a, |v| v["ai_voice"] = json!("sage"));
    expect_code(
        &run(
            dir.path(),
            &base,
            &["plan", "--target", &a, "--out", "a2.json"],
        )
        .await,
        0,
    );
    edit_yaml(file_a, |v| v["ai_voice"] = json!("ash"));
    expect_code(
        &run(
            dir.path(),
            &base,
            &["apply", "--auto-approve", "--target", &a],
        )
        .await,
        0,
    );
    let mark = writes(&emu);
    let out = run(dir.path(), &base, &["apply", "a2.json"]).await;
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("stale") && err.contains(&a), "{err}");
    assert!(writes_since(&emu, &mark).is_empty(), "nothing sent");
    assert_eq!(voice_of(&a), Some(json!("ash")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_json_is_one_document_per_run() {
    let emu = emulator().await;
    let dir = project_copy();
    let base = emu.base_url();
    let n = restaurant_files(dir.path()).len();
    let doc = |out: &std::process::Output| -> Value {
        serde_json::from_str(&stdout(out))
            .unwrap_or_else(|e| panic!("stdout is one JSON document ({e}):\n{}", stdout(out)))
    };

    let out = run(dir.path(), &base, &["apply", "--json", "--auto-approve"]).await;
    expect_code(&out, 0);
    let v = doc(&out);
    assert_eq!(v["formatVersion"], 1);
    assert_eq!(v["status"], "complete");
    assert_eq!(v["restaurants"].as_array().map(Vec::len), Some(n));
    assert!(v["restaurants"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|r| r["status"] == "done" && r["done"] == r["planned"]));
    assert!(v["requests"].as_u64().unwrap_or(0) > 0);
    assert!(v["elapsedMs"].is_u64());

    let out = run(dir.path(), &base, &["apply", "--json", "--auto-approve"]).await;
    expect_code(&out, 0);
    assert_eq!(doc(&out)["status"], "noChanges");

    // A stale saved plan: still one document, saying why.
    expect_code(
        &run(dir.path(), &base, &["plan", "--out", "p.json"]).await,
        0,
    );
    edit_yaml(&restaurant_files(dir.path())[0], |v| {
        v["ai_voice"] = json!("verse")
    });
    let out = run(dir.path(), &base, &["apply", "--json", "p.json"]).await;
    expect_code(&out, 0);
    assert_eq!(
        doc(&out)["status"],
        "noChanges",
        "an empty saved plan has nothing to do"
    );
    expect_code(
        &run(dir.path(), &base, &["plan", "--out", "q.json"]).await,
        0,
    );
    apply_ok(dir.path(), &base).await;
    let out = run(dir.path(), &base, &["apply", "--json", "q.json"]).await;
    expect_code(&out, 1);
    let v = doc(&out);
    assert_eq!(v["status"], "error");
    assert!(
        v["error"].as_str().unwrap_or_default().contains("stale"),
        "{v}"
    );
}

/// The sipform commands the shipped workflow runs (action.yml), in its order. The test checks
/// that action.yml still holds each of them verbatim, so the two cannot drift apart.
const WORKFLOW_VALIDATE: &str = "sipform validate";
const WORKFLOW_PLAN: &str = "sipform plan --out \"$PLAN_FILE\" --markdown --detailed-exitcode";
const WORKFLOW_APPLY_SAVED: &str = "sipform apply --json \"$PLAN_FILE\"";
const WORKFLOW_FRESH_PLAN: &str = "sipform plan\n";
const WORKFLOW_APPLY_FRESH: &str = "sipform apply --json --auto-approve";

/// `"$PLAN_FILE"` and the rest as argv.
fn argv(command: &str) -> Vec<String> {
    command
        .split_whitespace()
        .skip(1)
        .map(|a| a.replace("\"$PLAN_FILE\"", "plan.json"))
        .collect()
}

async fn step(dir: &Path, base: &str, command: &str, env: &[(&str, &str)]) -> std::process::Output {
    let (dir, base, command) = (dir.to_path_buf(), base.to_string(), command.to_string());
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args = argv(&command);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = common::command(&dir, &base, &args);
        for (k, v) in &env {
            c.env(k, v);
        }
        c.output().expect("run sipform")
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workflow_command_sequence_runs_green_against_the_emulator() {
    let action = std::fs::read_to_string(repo().join("action.yml")).expect("action.yml");
    for command in [
        WORKFLOW_VALIDATE,
        WORKFLOW_PLAN,
        WORKFLOW_APPLY_SAVED,
        WORKFLOW_FRESH_PLAN,
        WORKFLOW_APPLY_FRESH,
    ] {
        assert!(
            action.contains(command),
            "action.yml no longer runs {command:?}"
        );
    }
    let emu = emulator().await;
    let dir = project_copy();
    let base = emu.base_url();
    let gha = [("GITHUB_ACTIONS", "true"), ("GITHUB_SHA", "cafe0123")];

    // Pull request: validate, plan with the comment and the saved plan.
    expect_code(&step(dir.path(), &base, WORKFLOW_VALIDATE, &gha).await, 0);
    let out = step(dir.path(), &base, WORKFLOW_PLAN, &gha).await;
    expect_code(&out, 2);
    let comment = stdout(&out);
    assert!(comment.starts_with("<!-- sipform-plan -->\n"), "{comment}");
    assert!(comment.contains("Made from commit cafe0123."), "{comment}");
    assert!(dir.path().join("plan.json").exists());

    // Merge: the saved plan is still valid and is applied as is.
    let out = step(dir.path(), &base, WORKFLOW_APPLY_SAVED, &gha).await;
    expect_code(&out, 0);
    let report: Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(report["status"], "complete");

    // Next pull request: a tool edit; then something else lands on the same restaurants
    // before the merge, so the saved plan is stale and a fresh plan is printed and applied.
    let tool = dir.path().join("tools/end_call.yaml");
    let text = std::fs::read_to_string(&tool).expect("end_call.yaml");
    let mut v: Value = serde_saphyr::from_str(&text).expect("yaml");
    let desc = v["description"].as_str().unwrap_or_default().to_string();
    v["description"] = json!(format!("{desc} Always say goodbye politely."));
    std::fs::write(&tool, serde_json::to_string_pretty(&v).expect("json")).expect("write");
    expect_code(&step(dir.path(), &base, WORKFLOW_VALIDATE, &gha).await, 0);
    let out = step(dir.path(), &base, WORKFLOW_PLAN, &gha).await;
    expect_code(&out, 2);
    let comment = stdout(&out);
    let n = restaurant_files(dir.path()).len();
    assert!(
        comment.contains(&format!(
            "- ~ tool `end_call`: description changed, {n} agents"
        )),
        "{comment}"
    );
    edit_yaml(&restaurant_files(dir.path())[0], |v| {
        v["ai_voice"] = json!("verse")
    });
    apply_ok(dir.path(), &base).await;
    let out = step(dir.path(), &base, WORKFLOW_APPLY_SAVED, &gha).await;
    expect_code(&out, 1);
    let report: Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(report["status"], "error");
    assert!(report["error"]
        .as_str()
        .unwrap_or_default()
        .contains("stale"));
    expect_code(&step(dir.path(), &base, WORKFLOW_FRESH_PLAN, &gha).await, 0);
    let out = step(dir.path(), &base, WORKFLOW_APPLY_FRESH, &gha).await;
    expect_code(&out, 0);
    let report: Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    assert_eq!(
        report["status"], "noChanges",
        "the earlier apply already carried the edit"
    );
    expect_no_changes(dir.path(), &base).await;
}
