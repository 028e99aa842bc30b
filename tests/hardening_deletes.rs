//! Issue 25, item 5: a DELETE answered 200 but not done. Apply confirms each delete by a read
//! answering 404; an object still there is a transient error naming the route, state keeps
//! it, and the next run deletes it again.

mod common;

use common::*;
use sipform_emulator::{Faults, ResetRule};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_answered_but_not_done_is_an_error_and_done_next_run() {
    let emu = emulator().await;
    let dir = project_copy();
    let url = emu.base_url();
    generate_restaurants(dir.path(), 2);
    apply_ok(dir.path(), &url).await;
    let gone = rid(1);
    let agent = read_state(dir.path())["restaurants"][&gone]["agentId"]
        .as_str()
        .expect("agent id")
        .to_string();
    std::fs::remove_file(dir.path().join("restaurants/r0001.yaml")).expect("remove");

    emu.set_faults(Faults {
        ignored_deletes: vec![ResetRule {
            method: "DELETE".into(),
            route: "/api/agents/:id".into(),
            rate: 1.0,
        }],
        ..Faults::default()
    });
    let out = sipform(
        dir.path(),
        &url,
        &["apply", "--auto-approve", "--allow-destroy"],
    );
    let text = all_output(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("/api/agents/:id") && text.contains("still there"),
        "the error names the route: {text}"
    );
    assert!(
        agents(&emu).iter().any(|a| a["id"] == agent.as_str()),
        "the server kept it"
    );
    assert_eq!(
        read_state(dir.path())["restaurants"][&gone]["agentId"],
        serde_json::json!(agent),
        "state still records it, so the next run deletes it again"
    );

    emu.set_faults(Faults::default());
    let out = sipform(
        dir.path(),
        &url,
        &["apply", "--auto-approve", "--allow-destroy"],
    );
    expect_code(&out, 0);
    assert!(
        !agents(&emu).iter().any(|a| a["id"] == agent.as_str()),
        "deleted on the next run"
    );
    emu.shutdown().await;
}

/// An agent of the account whose restaurant is in neither the inventory nor state (a
/// restaurant removed from both while its agent stayed) is listed as an orphan on every plan,
/// in the human, JSON and Markdown forms, and left untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_of_no_restaurant_is_reported_as_an_orphan() {
    let emu = emulator().await;
    let dir = project_copy();
    let url = emu.base_url();
    generate_restaurants(dir.path(), 2);
    apply_ok(dir.path(), &url).await;
    let gone = rid(1);
    let mut state = read_state(dir.path());
    let agent = state["restaurants"][&gone]["agentId"]
        .as_str()
        .expect("agent id")
        .to_string();
    state["restaurants"]
        .as_object_mut()
        .expect("restaurants")
        .remove(&gone);
    std::fs::write(
        dir.path().join("sipform.state.json"),
        serde_json::to_string_pretty(&state).expect("json"),
    )
    .expect("write");
    std::fs::remove_file(dir.path().join("restaurants/r0001.yaml")).expect("remove");

    let human = stdout(&run(dir.path(), &url, &["plan"]).await);
    assert!(
        human.contains(&format!("orphan agent {agent}")) && human.contains(&gone),
        "{human}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&run(dir.path(), &url, &["plan", "--json"]).await))
            .expect("JSON plan");
    assert_eq!(
        json["orphans"][0]["id"],
        serde_json::json!(agent),
        "{json:#}"
    );
    assert_eq!(json["orphans"][0]["restaurantId"], serde_json::json!(gone));
    let md = stdout(&run(dir.path(), &url, &["plan", "--markdown"]).await);
    assert!(
        md.contains("1 agent of this account belongs to no restaurant"),
        "{md}"
    );
    let mark = writes(&emu);
    apply_ok(dir.path(), &url).await;
    assert!(writes_since(&emu, &mark).is_empty(), "left untouched");
    emu.shutdown().await;
}
