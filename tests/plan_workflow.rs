//! Issue 12 against the emulator, through the real binary: `--target` naming nothing, saved
//! plans stale per restaurant, and the command sequence the shipped CI workflow runs.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};

fn restaurant_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("restaurants"))
        .expect("restaurants/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

/// Rewrites a YAML file as JSON (valid YAML) after `edit`; returns the restaurant's id.
fn edit_yaml(path: &Path, edit: impl FnOnce(&mut Value)) -> String {
    let text = std::fs::read_to_string(path).expect("read");
    let mut v: Value = serde_saphyr::from_str(&text).expect("yaml");
    edit(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).expect("json")).expect("write");
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
    expect_code(
        &run(dir.path(), &base, &["apply", "--auto-approve"]).await,
        0,
    );
    let files = restaurant_files(dir.path());
    let (file_a, file_b) = (&files[0], &files[1]);

    // Plan for A, then apply a change to B: the saved plan for A still applies.
    let a = edit_yaml(file_a, |v| v["ai_voice"] = json!("verse"));
    expect_code(
        &run(
            dir.path(),
            &base,
            &["plan", "--target", &a, "--out", "a.json"],
        )
        .await,
        0,
    );
    let b = edit_yaml(file_b, |v| v["ai_voice"] = json!("coral"));
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
