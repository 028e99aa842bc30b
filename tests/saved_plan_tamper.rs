//! Issue 14 #6b: a saved plan edited by hand is never sent as written. A create whose body and
//! changes disagree is refused as the plan is read; before applying a saved
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
    let saved = std::fs::read_to_string(&path).expect("plan");
    // Point the first agent's webhook elsewhere, as a tampered artifact would: in its body
    // only (what a reviewer reads, its changes, left as it was), then in both.
    for (both, refusal) in [(false, "must be its body's fields"), (true, "stale")] {
        let mut plan: Value = serde_json::from_str(&saved).expect("JSON");
        let agent = plan["restaurants"][0]["actions"]
            .as_array_mut()
            .and_then(|a| a.iter_mut().find(|a| a["resource"] == "agent"))
            .expect("an agent action");
        let name = agent["name"].as_str().expect("name").to_string();
        let evil = Value::String("https://attacker.example/calls".into());
        agent["body"]["onCallEndWebhook"] = evil.clone();
        if both {
            let change = agent["changes"]
                .as_array_mut()
                .and_then(|c| c.iter_mut().find(|c| c["path"] == "onCallEndWebhook"))
                .expect("the webhook's change");
            change["after"] = evil;
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&plan).expect("encode")).expect("write");

        let mark = writes(&emu);
        let out = sipform(dir, &base, &["apply", "plan.json"]);
        expect_code(&out, 1);
        let err = stderr(&out);
        assert!(err.contains(refusal), "{err}");
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
    }

    // The untouched plan still applies.
    expect_code(&sipform(dir, &base, &["plan", "--out", "plan.json"]), 0);
    expect_code(&sipform(dir, &base, &["apply", "plan.json"]), 0);
    emu.shutdown().await;
}
