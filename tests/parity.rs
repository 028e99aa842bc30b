//! Platform parity (issue 11): what the platform's own provisioning leaves, sipform leaves too.
//! Subscriptions to the account's default plan, `chatTitle` defaulting to the name, tool
//! parameters described for the voice model. Request counts are asserted against the emulator.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn set_billing(dir: &Path, plan: &str) {
    let p = dir.join("sipform.yaml");
    let mut text = std::fs::read_to_string(&p).expect("read sipform.yaml");
    text.push_str(&format!("billing:\n  plan: {plan:?}\n"));
    std::fs::write(&p, text).expect("write sipform.yaml");
}

fn subscriptions(emu: &sipform_emulator::EmulatorHandle) -> Vec<Value> {
    emu.snapshot()["subscriptions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The plan id of the account's plan of that name.
fn plan_id(emu: &sipform_emulator::EmulatorHandle, name: &str) -> String {
    emu.snapshot()["plans"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name))
        .and_then(|p| p["id"].as_str())
        .expect("plan")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_apply_subscribes_each_final_customer_to_the_default_plan() {
    let emu = emulator().await;
    let dir = project_copy();
    generate_restaurants(dir.path(), 4);
    let n = 4u64;

    apply_ok(dir.path(), &emu.base_url()).await;
    assert_eq!(
        count(&emu, "POST /api/final-customers/:id/subscriptions"),
        n
    );
    // The account was created by this run: its plans are read once, by the first create.
    assert_eq!(count(&emu, "GET /api/plans"), 1);
    let standard = plan_id(&emu, "Standard");
    let subs = subscriptions(&emu);
    assert_eq!(
        subs.len(),
        n as usize,
        "one subscription per final customer"
    );
    let fcs = final_customers(&emu);
    for fc in &fcs {
        let mine: Vec<&Value> = subs
            .iter()
            .filter(|s| s["finalCustomerId"] == fc["id"])
            .collect();
        assert_eq!(mine.len(), 1, "{fc}");
        assert_eq!(mine[0]["planId"], Value::from(standard.as_str()));
    }
    // chatTitle: the restaurant's name when the row has none, as the platform sends.
    for a in agents(&emu) {
        assert_eq!(a["chatTitle"], a["name"], "{a}");
    }

    let before = emu.request_counts();
    expect_no_changes(dir.path(), &emu.base_url()).await;
    let after = emu.request_counts();
    let gets =
        |m: &std::collections::BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    assert_eq!(
        gets(&after, "GET /api/plans") - gets(&before, "GET /api/plans"),
        1,
        "refresh reads the plans once"
    );
    assert_eq!(
        gets(&after, "GET /api/final-customers/:id/subscriptions")
            - gets(&before, "GET /api/final-customers/:id/subscriptions"),
        n,
        "one subscription list per final customer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_plan_waits_for_allow_replace_then_replaces() {
    let emu = emulator().await;
    let dir = project_copy();
    apply_ok(dir.path(), &emu.base_url()).await;
    let n = final_customers(&emu).len();
    assert_eq!(subscriptions(&emu).len(), n);

    set_billing(dir.path(), "Extra minutes");
    let mark = writes(&emu);
    let out = run(
        dir.path(),
        &emu.base_url(),
        &["plan", "--detailed-exitcode"],
    )
    .await;
    let text = stdout(&out);
    assert!(text.contains("--allow-replace"), "{text}");
    assert!(text.contains("subscription waits"), "{text}");
    apply_ok(dir.path(), &emu.base_url()).await;
    assert!(
        writes_since(&emu, &mark).is_empty(),
        "nothing replaced without --allow-replace"
    );

    let out = run(
        dir.path(),
        &emu.base_url(),
        &["apply", "--auto-approve", "--allow-replace"],
    )
    .await;
    expect_code(&out, 0);
    let w = writes_since(&emu, &mark);
    assert_eq!(
        w.get("DELETE /api/subscriptions/:id").copied(),
        Some(n as u64),
        "{w:?}"
    );
    assert_eq!(
        w.get("POST /api/final-customers/:id/subscriptions")
            .copied(),
        Some(n as u64),
        "{w:?}"
    );
    assert_eq!(w.len(), 2, "{w:?}");
    let extra = plan_id(&emu, "Extra minutes");
    let subs = subscriptions(&emu);
    assert_eq!(subs.len(), n);
    assert!(subs.iter().all(|s| s["planId"] == extra.as_str()));

    expect_no_changes(dir.path(), &emu.base_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_none_subscribes_no_one_and_reads_no_plans() {
    let emu = emulator().await;
    let dir = project_copy();
    set_billing(dir.path(), "none");
    apply_ok(dir.path(), &emu.base_url()).await;
    let out = run(
        dir.path(),
        &emu.base_url(),
        &["plan", "--detailed-exitcode"],
    )
    .await;
    expect_code(&out, 0);
    assert!(subscriptions(&emu).is_empty());
    assert_eq!(count(&emu, "GET /api/plans"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_plan_name_is_a_note_not_a_failure() {
    let emu = emulator().await;
    let dir = project_copy();
    apply_ok(dir.path(), &emu.base_url()).await;
    set_billing(dir.path(), "Gold");
    let mark = writes(&emu);
    let out = run(dir.path(), &emu.base_url(), &["plan"]).await;
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("no active plan of that name"),
        "{}",
        stdout(&out)
    );
    assert!(writes_since(&emu, &mark).is_empty());
}

/// A parameter without a description is a warning: validate still succeeds, and names it.
#[test]
fn validate_warns_on_an_undescribed_parameter() {
    let dir = project_copy();
    let p = dir.path().join("tools/cancel_order.yaml");
    let text = std::fs::read_to_string(&p).expect("read");
    let stripped: String = text
        .lines()
        .filter(|l| {
            !l.trim_start()
                .starts_with("description: \"Numéro de la commande")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(stripped, text, "the description was there");
    std::fs::write(&p, stripped).expect("write");
    let out = sipform(dir.path(), "http://127.0.0.1:9", &["validate"]);
    expect_code(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains("warning:")
            && err.contains("cancel_order.yaml:")
            && err.contains("order_number"),
        "{err}"
    );
}

/// Taking over final customers that are already subscribed (state lost, or made by the
/// platform): their subscriptions are adopted, never doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_subscriptions_are_adopted_not_doubled() {
    let emu = emulator().await;
    let dir = project_copy();
    apply_ok(dir.path(), &emu.base_url()).await;
    let n = subscriptions(&emu).len();
    assert!(n > 0);
    std::fs::remove_file(dir.path().join("sipform.state.json")).expect("state lost");

    let mark = writes(&emu);
    for _ in 0..2 {
        apply_ok(dir.path(), &emu.base_url()).await;
    }
    assert!(
        writes_since(&emu, &mark).is_empty(),
        "{:?}",
        writes_since(&emu, &mark)
    );
    assert_eq!(subscriptions(&emu).len(), n);
    let state = read_state(dir.path());
    let recorded = state["restaurants"]
        .as_object()
        .map(|m| {
            m.values()
                .filter(|r| r["objects"]["subscription"]["billing"].is_string())
                .count()
        })
        .unwrap_or(0);
    assert_eq!(recorded, n, "{state}");
    expect_no_changes(dir.path(), &emu.base_url()).await;
}
