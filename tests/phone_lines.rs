//! Phone lines (issue 11): one per restaurant under its agent, keyed by number; the SIP
//! password comes from the environment variable a `phone_line:` block names, is compared
//! through a salted hash in state, and never appears in any output, plan file or state file.
//! Request counts are asserted against the emulator.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;
use serde_json::Value;

const LINES: &str = "POST /api/agents/:id/phone-lines";
const LINE: &str = "PUT /api/agents/:id/phone-lines/:lineId";

fn var(i: usize) -> String {
    format!("SIPFORM_TEST_LINE_PW_{i}")
}

fn password(i: usize, round: u32) -> String {
    format!("Pw{round}x{i}-9fQz7-sipsecret")
}

fn number(i: usize) -> String {
    format!("+3314000{i:04}")
}

/// Adds a `phone_line:` block to each of the `n` generated restaurants.
fn add_blocks(dir: &Path, n: usize) {
    for i in 0..n {
        let p = dir.join("restaurants").join(format!("r{i:04}.yaml"));
        let mut text = std::fs::read_to_string(&p).expect("read");
        text.push_str(&format!(
            "phone_line:\n  phone_number: \"{}\"\n  sip_transport: tls\n  stun_server: stun.example.net:3478\n  sip_domain: sip.example.net\n  sip_username: user{i}\n  sip_password_env: {}\n",
            number(i),
            var(i)
        ));
        std::fs::write(&p, text).expect("write");
    }
}

/// The binary with the passwords of `round` in its environment.
async fn run_env(dir: &Path, url: &str, args: &[&str], n: usize, round: u32) -> Output {
    let mut c = command(dir, url, args);
    for i in 0..n {
        c.env(var(i), password(i, round));
    }
    tokio::task::spawn_blocking(move || c.output().expect("run sipform"))
        .await
        .expect("join")
}

fn lines_of(agent: &Value) -> Vec<Value> {
    agent["phoneLines"].as_array().cloned().unwrap_or_default()
}

/// The agent whose config names restaurant `i`.
fn agent_of(emu: &sipform_emulator::EmulatorHandle, i: usize) -> Value {
    let id = format!("00000000-0000-4000-8000-{i:012}");
    agents(emu)
        .into_iter()
        .find(|a| a["config"]["restaurantId"] == id.as_str())
        .expect("the restaurant's agent")
}

fn assert_no_password(what: &str, text: &str, n: usize, rounds: &[u32]) {
    for i in 0..n {
        for &r in rounds {
            assert!(
                !text.contains(&password(i, r)),
                "{what} holds a SIP password:\n{text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_are_created_converge_and_a_rotated_password_is_one_put_each() {
    let emu = emulator().await;
    let dir = project_copy();
    let n = 3;
    generate_restaurants(dir.path(), n);
    add_blocks(dir.path(), n);
    let url = emu.base_url();

    let out = run_env(dir.path(), &url, &["apply", "--auto-approve"], n, 1).await;
    expect_code(&out, 0);
    assert_no_password("apply's output", &all_output(&out), n, &[1]);
    assert_eq!(count(&emu, LINES), n as u64);
    assert_eq!(count(&emu, LINE), 0);
    for i in 0..n {
        let lines = lines_of(&agent_of(&emu, i));
        assert_eq!(lines.len(), 1, "exactly one line on agent {i}");
        let l = &lines[0];
        assert_eq!(l["phoneNumber"], number(i).as_str());
        assert_eq!(l["provider"], "sip", "sip_domain set: provider sip");
        assert_eq!(l["sipTransport"], "tls");
        assert_eq!(l["stunServer"], "stun.example.net:3478");
        assert_eq!(l["sipDomain"], "sip.example.net");
        assert_eq!(l["sipUsername"], format!("user{i}").as_str());
        assert_eq!(l["sipPassword"], password(i, 1).as_str());
        assert_eq!(l["twilioTrunkSid"], Value::Null);
        assert_eq!(l["isActive"], true);
    }
    let state_text =
        std::fs::read_to_string(dir.path().join("sipform.state.json")).expect("state file");
    assert_no_password("the state file", &state_text, n, &[1]);
    assert!(state_text.contains("phoneLinePassword"), "{state_text}");

    // Converged: nothing to do, with the same passwords.
    let out = run_env(dir.path(), &url, &["plan", "--detailed-exitcode"], n, 1).await;
    expect_code(&out, 0);

    // Rotated: every format says the password changes, none shows it.
    let mut seen = String::new();
    for args in [
        &["plan", "--detailed-exitcode"][..],
        &["plan", "--json"][..],
        &["plan", "--markdown"][..],
        &["plan", "--out", "rotate.json"][..],
    ] {
        let out = run_env(dir.path(), &url, args, n, 2).await;
        assert!(
            matches!(out.status.code(), Some(0 | 2)),
            "{args:?}: {}",
            all_output(&out)
        );
        let text = all_output(&out);
        assert_no_password(&format!("{args:?}"), &text, n, &[1, 2]);
        seen.push_str(&text);
    }
    assert!(seen.contains("sipPassword"), "{seen}");
    assert!(seen.contains("sipPassword: (sensitive, changed)"), "{seen}");
    let saved = std::fs::read_to_string(dir.path().join("rotate.json")).expect("saved plan");
    assert_no_password("the saved plan", &saved, n, &[1, 2]);
    assert!(saved.contains("\"sensitive\": true") || saved.contains("\"sensitive\":true"));

    let before = writes(&emu);
    let out = run_env(dir.path(), &url, &["apply", "rotate.json"], n, 2).await;
    expect_code(&out, 0);
    assert_no_password("apply's output", &all_output(&out), n, &[1, 2]);
    let w = writes_since(&emu, &before);
    assert_eq!(w.get(LINE).copied(), Some(n as u64), "{w:?}");
    assert_eq!(w.len(), 1, "only the phone lines were written: {w:?}");
    for i in 0..n {
        let lines = lines_of(&agent_of(&emu, i));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["sipPassword"], password(i, 2).as_str());
    }
    let state_text =
        std::fs::read_to_string(dir.path().join("sipform.state.json")).expect("state file");
    assert_no_password("the state file", &state_text, n, &[1, 2]);

    let out = run_env(dir.path(), &url, &["plan", "--detailed-exitcode"], n, 2).await;
    expect_code(&out, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_literal_password_is_refused_by_validate_with_its_line() {
    let emu = emulator().await;
    let dir = project_copy();
    generate_restaurants(dir.path(), 2);
    add_blocks(dir.path(), 2);
    let p = dir.path().join("restaurants/r0001.yaml");
    let mut text = std::fs::read_to_string(&p).expect("read");
    text.push_str("  sip_password: Hunter2-literal-pw\n");
    let line = text.lines().count();
    std::fs::write(&p, text).expect("write");

    let out = run_env(dir.path(), &emu.base_url(), &["validate"], 2, 1).await;
    expect_code(&out, 1);
    let all = all_output(&out);
    assert!(all.contains(&format!("r0001.yaml:{line}:")), "{all}");
    assert!(all.contains("sip_password_env"), "{all}");
    assert!(!all.contains("Hunter2-literal-pw"), "{all}");
    assert!(emu.request_counts().values().all(|&c| c == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unset_password_variable_refuses_that_restaurant_only() {
    let emu = emulator().await;
    let dir = project_copy();
    generate_restaurants(dir.path(), 2);
    add_blocks(dir.path(), 2);
    // Only restaurant 0's variable is set.
    let out = run_env(
        dir.path(),
        &emu.base_url(),
        &["apply", "--auto-approve"],
        1,
        1,
    )
    .await;
    let all = all_output(&out);
    assert!(all.contains(&var(1)), "{all}");
    assert_no_password("apply's output", &all, 1, &[1]);
    assert_eq!(count(&emu, LINES), 1);
    assert_eq!(
        agents(&emu).len(),
        1,
        "nothing is sent for the refused restaurant"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restaurant_phone_source_is_the_platforms_old_behaviour() {
    let emu = emulator().await;
    let dir = project_copy();
    let n = 2;
    generate_restaurants(dir.path(), n);
    let p = dir.path().join("sipform.yaml");
    let mut text = std::fs::read_to_string(&p).expect("read sipform.yaml");
    text.push_str("phone_lines:\n  source: restaurant_phone\n");
    std::fs::write(&p, text).expect("write sipform.yaml");

    apply_ok(dir.path(), &emu.base_url()).await;
    assert_eq!(count(&emu, LINES), n as u64);
    for i in 0..n {
        let lines = lines_of(&agent_of(&emu, i));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["phoneNumber"], number(i).as_str());
        assert_eq!(lines[0]["provider"], "twilio");
        assert_eq!(lines[0]["sipPassword"], Value::Null);
    }
    let out = run(
        dir.path(),
        &emu.base_url(),
        &["plan", "--detailed-exitcode"],
    )
    .await;
    expect_code(&out, 0);
}
