//! Issue 14 #6b: a saved plan edited by hand is never sent as written. Before applying a saved
//! plan, sipform plans again and refuses, naming the object, when an action differs.

mod common;

use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_saved_plan_is_refused_naming_the_object() {
    let emu = emulator().await;
    let base = emu.base_url();
    let project = project_copy();
    let dir = project.path();
    expect_code(&sipform(dir, &base, &["plan", "--out", "plan.json"]), 0);
    let path = dir.join("plan.json");
    let mut plan: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("plan")).expect("JSON");
    // Point the first agent's webhook elsewhere, as a tampered artifact would.
    let agent = plan["restaurants"][0]["actions"]
        .as_array_mut()
        .and_then(|a| a.iter_mut().find(|a| a["resource"] == "agent"))
        .expect("an agent action");
    let name = agent["name"].as_str().expect("name").to_string();
    agent["body"]["onCallEndWebhook"] = Value::String("https://attacker.example/calls".into());
    std::fs::write(&path, serde_json::to_vec_pretty(&plan).expect("encode")).expect("write");

    let mark = writes(&emu);
    let out = sipform(dir, &base, &["apply", "plan.json"]);
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("stale"), "{err}");
    assert!(
        err.contains(&format!("agent {}", Value::String(name))),
        "names the object: {err}"
    );
    assert!(writes_since(&emu, &mark).is_empty(), "nothing sent");
    assert!(
        !agents(&emu)
            .iter()
            .any(|a| a["onCallEndWebhook"] == "https://attacker.example/calls"),
        "the edited body never reached the server"
    );

    // The untouched plan still applies.
    expect_code(&sipform(dir, &base, &["plan", "--out", "plan.json"]), 0);
    expect_code(&sipform(dir, &base, &["apply", "plan.json"]), 0);
    emu.shutdown().await;
}
