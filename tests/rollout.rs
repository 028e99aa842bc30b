//! Rolling a change out in waves (issue 29, docs/rollout.md): the canary first, a halt on
//! error calls that leaves the rest untouched, resume to the end with no restaurant done twice,
//! abort back to the stable revision, new restaurants never delayed, the policy checked.

mod common;
use common::*;

use std::path::Path;

use serde_json::{json, Value};

const TOOL_PUT: &str = "PUT /api/agents/:id/tools/:toolId";

/// A project of `n` generated restaurants in a git repository, applied, with `policy` (YAML
/// lines under `rollout:`) added and committed afterwards.
async fn fleet(n: usize, url: &str, policy: &str) -> tempfile::TempDir {
    let dir = project_copy();
    generate_restaurants(dir.path(), n);
    git(dir.path(), &["init", "-q"]);
    std::fs::write(dir.path().join(".gitignore"), "sipform.state.json*\n").unwrap();
    commit(dir.path(), "fleet");
    apply_ok(dir.path(), url).await;
    let yaml = dir.path().join("sipform.yaml");
    let mut text = std::fs::read_to_string(&yaml).unwrap();
    text.push_str(&format!("rollout:\n{policy}"));
    std::fs::write(&yaml, text).unwrap();
    commit(dir.path(), "rollout policy");
    dir
}

fn commit(dir: &Path, what: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", what]);
}

/// The one-tool edit every restaurant's agent takes.
fn edit_end_call(dir: &Path, description: &str) {
    edit_yaml(&dir.join("tools/end_call.yaml"), |v| {
        v["description"] = json!(description);
    });
    commit(dir, "end_call: new description");
}

/// Agent ids by restaurant id, from state.
fn agent_of(dir: &Path, restaurant: &str) -> String {
    read_state(dir)["restaurants"][restaurant]["agentId"]
        .as_str()
        .unwrap_or_else(|| panic!("no agent for {restaurant} in state"))
        .to_string()
}

/// The rollout record state holds.
fn record(dir: &Path) -> Value {
    let rec = read_state(dir)["rollout"].clone();
    assert!(rec.is_object(), "state holds no rollout record");
    rec
}

fn canary(dir: &Path) -> Vec<String> {
    record(dir)["canary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Agents whose end_call says `description`.
fn agents_with(emu: &sipform_emulator::EmulatorHandle, description: &str) -> usize {
    agents(emu)
        .iter()
        .filter(|a| {
            a["tools"].as_array().is_some_and(|t| {
                t.iter()
                    .any(|t| t["name"] == "end_call" && t["description"] == description)
            })
        })
        .count()
}

fn calls(outcome: &str, n: usize) -> Value {
    Value::Array((0..n).map(|_| json!({ "outcome": outcome })).collect())
}

async fn record_for(base: &str, dir: &Path, restaurants: &[String], outcome: &str, n: usize) {
    for r in restaurants {
        record_calls(base, &agent_of(dir, r), calls(outcome, n)).await;
    }
}

fn rollout_json(dir: &Path, url: &str) -> Value {
    let out = sipform(dir, url, &["rollout", "status", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", all_output(&out)))
}

const POLICY_200: &str = "  canary: 5\n  waves: [\"25%\", \"100%\"]\n  pause: 0s\n  max_failures: 0\n  health:\n    min_calls: 3\n    max_error_rate: 0.5\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn canary_halts_on_error_calls_then_resume_completes_once_each() {
    let emu = emulator().await;
    let url = emu.base_url();
    let dir = fleet(200, &url, POLICY_200).await;
    let d = dir.path();
    edit_end_call(d, "Raccroche (v2).");
    let start = writes(&emu);

    // The canary applies first; the gate waits for calls: paused, exit 0.
    let out = run(d, &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("Rollout paused: wave 0: waiting for calls"),
        "{}",
        all_output(&out)
    );
    assert_eq!(writes_since(&emu, &start).get(TOOL_PUT), Some(&5));
    assert_eq!(agents_with(&emu, "Raccroche (v2)."), 5);
    let canary = canary(d);
    assert_eq!(canary.len(), 5);

    // Error calls on the canary's agents: halted after the canary, exit 1, 195 untouched.
    record_for(&url, d, &canary, "error", 3).await;
    let mark = writes(&emu);
    let out = run(d, &url, &["apply", "--auto-approve", "--json"]).await;
    expect_code(&out, 1);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["rollout"]["state"], "halted", "{doc}");
    assert_eq!(doc["rollout"]["events"][0]["event"], "halted", "{doc}");
    assert!(
        stderr(&out).contains("HALTED at wave 0: wave 0: 15 of 15 calls ended in error"),
        "{}",
        all_output(&out)
    );
    assert_eq!(writes_since(&emu, &mark).get(TOOL_PUT), None);
    assert_eq!(agents_with(&emu, "Raccroche (v2)."), 5);
    let status = rollout_json(d, &url);
    assert_eq!(status["phase"], "halted");
    assert_eq!(status["waves"][0]["done"], 5);
    assert_eq!(status["waves"][1]["done"], 0);
    expect_code(&sipform(d, &url, &["rollout", "status"]), 1);

    // A halted rollout still provisions a new restaurant at once, at the stable revision.
    generate_restaurants_from(d, 200, 201);
    let mark = writes(&emu);
    let out = run(d, &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 1);
    assert_eq!(writes_since(&emu, &mark).get("POST /api/agents"), Some(&1));
    assert_eq!(writes_since(&emu, &mark).get(TOOL_PUT), None);
    assert_eq!(agents_with(&emu, "Raccroche (v2)."), 5);

    // Resume with healthy calls: the 25% wave, then (healthy again) the rest.
    expect_code(&sipform(d, &url, &["rollout", "resume"]), 0);
    record_for(&url, d, &canary, "completed", 3).await;
    let out = run(d, &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("Wave 1 started: 49 restaurants"),
        "{}",
        all_output(&out)
    );
    let all: Vec<String> = (0..200).map(rid).collect();
    record_for(&url, d, &all, "completed", 1).await;
    let out = run(d, &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 0);
    assert!(stdout(&out).contains("finished"), "{}", all_output(&out));
    assert_eq!(rollout_json(d, &url)["phase"], "finished");

    // Every agent took the edit exactly once (the new one, created at the stable revision,
    // by its wave).
    assert_eq!(agents_with(&emu, "Raccroche (v2)."), 201);
    assert_eq!(writes_since(&emu, &start).get(TOOL_PUT), Some(&201));
    expect_no_changes(d, &url).await;
}

/// Adds generated restaurants `from..to` beside the existing ones.
fn generate_restaurants_from(dir: &Path, from: usize, to: usize) {
    let tmp = tempfile::tempdir().unwrap();
    generate_restaurants(tmp.path(), to);
    for i in from..to {
        let name = format!("r{i:04}.yaml");
        std::fs::copy(
            tmp.path().join("restaurants").join(&name),
            dir.join("restaurants").join(&name),
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abort_puts_the_canary_back_on_the_stable_revision() {
    let emu = emulator().await;
    let url = emu.base_url();
    let dir = fleet(
        20,
        &url,
        "  canary: 3\n  waves: [\"100%\"]\n  pause: manual\n",
    )
    .await;
    let d = dir.path();
    // The stable revision: the one state records for the fleet before the change.
    let stable = read_state(d)["restaurants"][rid(0)]["revision"]["commit"].clone();
    assert!(stable.is_string());
    let before = agents(&emu)[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "end_call")
        .unwrap()["description"]
        .clone();
    edit_end_call(d, "Raccroche (v2).");

    let out = run(d, &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("pause: manual"),
        "{}",
        all_output(&out)
    );
    assert_eq!(agents_with(&emu, "Raccroche (v2)."), 3);

    let mark = writes(&emu);
    let out = run(d, &url, &["rollout", "abort", "--auto-approve"]).await;
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("Rollout aborted"),
        "{}",
        all_output(&out)
    );
    // Planned and shown like any change, then applied: the three go back, no one else moves.
    assert!(stdout(&out).contains("end_call"), "{}", all_output(&out));
    assert_eq!(writes_since(&emu, &mark).get(TOOL_PUT), Some(&3));
    assert_eq!(agents_with(&emu, "Raccroche (v2)."), 0);
    let description = before.as_str().unwrap();
    assert_eq!(agents_with(&emu, description), 20);
    let state = read_state(d);
    for r in canary(d) {
        assert_eq!(
            state["restaurants"][&r]["revision"]["commit"], stable,
            "{r}"
        );
    }
    assert_eq!(rollout_json(d, &url)["phase"], "aborted");
}

/// The end_call description of `restaurant`'s agent on the server.
fn end_call_of(emu: &sipform_emulator::EmulatorHandle, dir: &Path, restaurant: &str) -> Value {
    let id = agent_of(dir, restaurant);
    let agent = agents(emu)
        .into_iter()
        .find(|a| a["id"] == id.as_str())
        .unwrap_or_else(|| panic!("no agent {id} on the server"));
    agent["tools"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "end_call"))
        .map(|t| t["description"].clone())
        .unwrap_or_else(|| panic!("no end_call on {id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_restaurant_starts_at_the_stable_revision_then_its_wave_moves_it() {
    let emu = emulator().await;
    let url = emu.base_url();
    let dir = fleet(
        20,
        &url,
        "  canary: 3\n  waves: [\"100%\"]\n  pause: manual\n",
    )
    .await;
    let d = dir.path();
    let stable = read_state(d)["restaurants"][rid(0)]["revision"]["commit"].clone();
    assert!(stable.is_string());
    let before = end_call_of(&emu, d, &rid(0));
    edit_end_call(d, "Raccroche (v2).");
    let start = writes(&emu);
    let out = run(d, &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("pause: manual"),
        "{}",
        all_output(&out)
    );
    assert_eq!(agents_with(&emu, "Raccroche (v2)."), 3);

    // Paused after the canary: the new restaurant is created at once, with the stable tools.
    generate_restaurants_from(d, 20, 21);
    let mark = writes(&emu);
    let out = run(d, &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 0);
    assert_eq!(
        writes_since(&emu, &mark).get("POST /api/agents"),
        Some(&1),
        "{}",
        all_output(&out)
    );
    assert_eq!(writes_since(&emu, &mark).get(TOOL_PUT), None);
    assert_eq!(end_call_of(&emu, d, &rid(20)), before);
    assert_eq!(agents_with(&emu, "Raccroche (v2)."), 3);
    let state = read_state(d);
    assert_eq!(
        state["restaurants"][rid(20)]["revision"]["commit"],
        stable,
        "{state}"
    );
    // It counts in the rollout: pending in the last wave, not skipped.
    let status = rollout_json(d, &url);
    let waves = status["waves"].as_array().unwrap();
    let pending: u64 = waves
        .iter()
        .map(|w| w["pending"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(pending, 18, "{status}");

    // Released: the last wave moves it like everyone, each restaurant written once.
    expect_code(&sipform(d, &url, &["rollout", "resume"]), 0);
    let out = run(d, &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 0);
    assert!(stdout(&out).contains("finished"), "{}", all_output(&out));
    assert_eq!(end_call_of(&emu, d, &rid(20)), json!("Raccroche (v2)."));
    assert_eq!(agents_with(&emu, "Raccroche (v2)."), 21);
    assert_eq!(writes_since(&emu, &start).get(TOOL_PUT), Some(&21));
    assert_eq!(writes_since(&emu, &start).get("POST /api/agents"), Some(&1));
    let head = read_state(d)["restaurants"][rid(0)]["revision"]["commit"].clone();
    assert_eq!(
        read_state(d)["restaurants"][rid(20)]["revision"]["commit"],
        head
    );
    expect_no_changes(d, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_no_larger_than_the_canary_goes_at_once() {
    let emu = emulator().await;
    let url = emu.base_url();
    let dir = fleet(3, &url, "  canary: 5\n  waves: [\"100%\"]\n").await;
    edit_end_call(dir.path(), "Raccroche (v2).");
    let out = run(dir.path(), &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 0);
    assert_eq!(agents_with(&emu, "Raccroche (v2)."), 3);
    assert!(!stdout(&out).contains("Rollout"), "{}", all_output(&out));
    assert_eq!(rollout_json(dir.path(), &url)["phase"], "none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_answer_only_to_the_agents_own_token() {
    let emu = emulator().await;
    let url = emu.base_url();
    let dir = project_copy();
    generate_restaurants(dir.path(), 2);
    apply_ok(dir.path(), &url).await;
    let a = agent_of(dir.path(), &rid(0));
    record_calls(
        &url,
        &a,
        json!([{"outcome": "error", "errorLog": "tool timeout"}]),
    )
    .await;
    let token = agents(&emu).iter().find(|x| x["id"] == a.as_str()).unwrap()["apiToken"]
        .as_str()
        .unwrap()
        .to_string();
    let other = agents(&emu).iter().find(|x| x["id"] != a.as_str()).unwrap()["apiToken"]
        .as_str()
        .unwrap()
        .to_string();
    let get = |t: String| {
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .get(format!(
                    "{url}/api/calls?from=2000-01-01T00:00:00Z&limit=10"
                ))
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
        }
    };
    let mine: Value = get(token).await.json().await.unwrap();
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["outcome"], "error");
    assert_eq!(mine[0]["errorLog"], "tool timeout");
    assert!(mine[0]["startedAt"].is_string() && mine[0]["toolCalls"].is_array());
    let theirs: Value = get(other).await.json().await.unwrap();
    assert_eq!(theirs, json!([]));
    assert_eq!(get("nope".into()).await.status(), 401);
}

#[test]
fn a_bad_policy_is_refused_naming_the_key() {
    let dir = project_copy();
    let yaml = dir.path().join("sipform.yaml");
    let base = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(
        &yaml,
        format!("{base}rollout:\n  waves: [\"25%\"]\n  pause: soon\n"),
    )
    .unwrap();
    let out = sipform(dir.path(), "http://127.0.0.1:9", &["validate"]);
    expect_code(&out, 1);
    assert!(
        all_output(&out).contains("rollout.pause"),
        "{}",
        all_output(&out)
    );
    std::fs::write(
        &yaml,
        format!("{base}rollout:\n  waves: [\"25%\"]\n  rollback:\n    pause: soon\n"),
    )
    .unwrap();
    let out = sipform(dir.path(), "http://127.0.0.1:9", &["validate"]);
    expect_code(&out, 1);
    assert!(
        all_output(&out).contains("rollback"),
        "{}",
        all_output(&out)
    );
    std::fs::write(&yaml, format!("{base}rollout:\n  waves: [\"250%\"]\n")).unwrap();
    let out = sipform(dir.path(), "http://127.0.0.1:9", &["validate"]);
    expect_code(&out, 1);
    assert!(
        all_output(&out).contains("sipform.yaml:"),
        "{}",
        all_output(&out)
    );
}

/// 20 restaurants, canary 2 then everyone, `end_call` edited, and a server that drops the
/// `description` of every tool PUT (what post-apply verification must catch).
async fn fleet_dropping_descriptions(emu: &sipform_emulator::EmulatorHandle) -> tempfile::TempDir {
    let dir = fleet(20, &emu.base_url(), "  canary: 2\n  waves: [\"100%\"]\n").await;
    edit_end_call(dir.path(), "Raccroche (v2).");
    emu.set_faults(sipform_emulator::Faults {
        dropped_fields: vec![sipform_emulator::DropField {
            method: "PUT".into(),
            route: "/api/agents/:id/tools/:toolId".into(),
            field: "description".into(),
        }],
        ..Default::default()
    });
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_field_dropped_by_the_server_fails_verification_naming_it() {
    let emu = emulator().await;
    let url = emu.base_url();
    let dir = fleet_dropping_descriptions(&emu).await;
    let d = dir.path();
    let mark = writes(&emu);
    let out = run(d, &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 1);
    let text = stdout(&out);
    assert!(text.contains("HALTED at wave 0"), "{}", all_output(&out));
    assert!(
        text.contains("tool end_call: field `description` is not what was sent"),
        "{}",
        all_output(&out)
    );
    // The canary's two writes were sent and answered 200; no one else was touched.
    assert_eq!(writes_since(&emu, &mark).get(TOOL_PUT), Some(&2));
    let status = rollout_json(d, &url);
    assert_eq!(status["phase"], "halted");
    assert!(status["halted"]["reason"]
        .as_str()
        .unwrap()
        .contains("post-apply verification"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_wave_then_apply_again_finishes_with_no_restaurant_done_twice() {
    let emu = emulator().await;
    let url = emu.base_url();
    let dir = fleet(300, &url, "  canary: 3\n  waves: [\"100%\"]\n").await;
    let d = dir.path();
    edit_end_call(d, "Raccroche (v2).");
    // Slow enough that the kill lands inside the second wave.
    emu.set_faults(latency(50));
    let mark = writes(&emu);
    let mut child = command(d, &url, &["apply", "--auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for("the second wave under way", || {
        writes_since(&emu, &mark)
            .get(TOOL_PUT)
            .copied()
            .unwrap_or(0)
            >= 100
    })
    .await;
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let killed_at = writes_since(&emu, &mark)
        .get(TOOL_PUT)
        .copied()
        .unwrap_or(0);
    assert!(killed_at < 300, "the apply finished before the kill");
    let status = rollout_json(d, &url);
    assert!(status["waves"][1]["startedAt"].is_string(), "{status}");
    assert_eq!(status["waves"][0]["done"], 3);

    emu.set_faults(sipform_emulator::Faults::default());
    let out = run(d, &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 0);
    assert!(stdout(&out).contains("finished"), "{}", all_output(&out));
    // Every agent's end_call was written once: none skipped, none twice.
    assert_eq!(writes_since(&emu, &mark).get(TOOL_PUT), Some(&300));
    let log = admin_get(&url, "requests").await;
    let mut paths: Vec<&str> = log["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["method"] == "PUT" && e["route"] == "/api/agents/:id/tools/:toolId")
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let n = paths.len();
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(paths.len(), n, "a tool written twice");
    assert_eq!(agents_with(&emu, "Raccroche (v2)."), 300);
    assert_eq!(rollout_json(d, &url)["phase"], "finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_controller_rolls_a_new_revision_through_the_same_waves() {
    let emu = emulator().await;
    let url = emu.base_url();
    let hook = common::receiver::Receiver::start().await;
    let policy = format!(
        "  canary: 3\n  waves: [\"100%\"]\n  health:\n    min_calls: 1\nnotify:\n  webhook: {}/hook\n",
        hook.base
    );
    let dir = fleet(30, &url, &policy).await;
    let d = dir.path();
    edit_end_call(d, "Raccroche (v2).");
    generate_restaurants_from(d, 30, 31);
    let mark = writes(&emu);

    // The canary, and the new restaurant at once; the rest held until the canary has calls.
    let out = run(d, &url, &["controller", "--once"]).await;
    expect_code(&out, 0);
    assert_eq!(
        writes_since(&emu, &mark).get(TOOL_PUT),
        Some(&3),
        "{}",
        all_output(&out)
    );
    assert_eq!(writes_since(&emu, &mark).get("POST /api/agents"), Some(&1));
    assert!(
        all_output(&out).contains("rollout: in wave 1, not started yet"),
        "{}",
        all_output(&out)
    );
    let status = rollout_json(d, &url);
    assert_eq!(status["phase"], "in_progress");
    assert!(
        status["paused"]
            .as_str()
            .unwrap()
            .contains("waiting for calls"),
        "{status}"
    );

    // Healthy calls on the canary: the next run opens the last wave and finishes (the new
    // restaurant, created at the stable revision, is moved by it too).
    record_for(&url, d, &canary(d), "completed", 1).await;
    let out = run(d, &url, &["controller", "--once"]).await;
    expect_code(&out, 0);
    assert_eq!(
        writes_since(&emu, &mark).get(TOOL_PUT),
        Some(&31),
        "{}",
        all_output(&out)
    );
    assert_eq!(agents_with(&emu, "Raccroche (v2)."), 31);
    assert_eq!(rollout_json(d, &url)["phase"], "finished");
    // The controller told the webhook the rollout finished, once.
    assert_eq!(
        hook.of_kind("rollout_finished").len(),
        1,
        "{:?}",
        hook.received()
    );
    assert!(hook.of_kind("rollout_halted").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controller_killed_mid_wave_finishes_after_restart_with_no_restaurant_done_twice() {
    let emu = emulator().await;
    let url = emu.base_url();
    let dir = fleet(300, &url, "  canary: 3\n  waves: [\"100%\"]\n").await;
    let d = dir.path();
    edit_end_call(d, "Raccroche (v2).");
    emu.set_faults(latency(50));
    let mark = writes(&emu);
    let mut ctl = common::controller::start(d, &url, &[], &[]);
    wait_for("the second wave under way", || {
        writes_since(&emu, &mark)
            .get(TOOL_PUT)
            .copied()
            .unwrap_or(0)
            >= 100
    })
    .await;
    ctl.kill9();
    let killed_at = writes_since(&emu, &mark)
        .get(TOOL_PUT)
        .copied()
        .unwrap_or(0);
    assert!(killed_at < 300, "the rollout finished before the kill");

    emu.set_faults(sipform_emulator::Faults::default());
    let mut ctl = common::controller::start(d, &url, &[], &[]);
    wait_for("the rollout finished", || {
        rollout_json(d, &url)["phase"] == "finished"
    })
    .await;
    // Every agent's end_call was written once across both controllers.
    assert_eq!(writes_since(&emu, &mark).get(TOOL_PUT), Some(&300));
    let log = admin_get(&url, "requests").await;
    let mut paths: Vec<&str> = log["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["method"] == "PUT" && e["route"] == "/api/agents/:id/tools/:toolId")
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let n = paths.len();
    paths.sort_unstable();
    paths.dedup();
    assert_eq!(paths.len(), n, "a tool written twice");
    // The status board and the page show it.
    let mut shown = Value::Null;
    for _ in 0..100 {
        if let Some((200, body)) = ctl.get("/v1/status").await {
            shown = serde_json::from_str(&body).unwrap();
            if shown["rollout"]["phase"] == "finished" {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(shown["rollout"]["phase"], "finished", "{shown}");
    assert_eq!(shown["rollout"]["waves"][1]["done"], 297);
    let (_, page) = ctl.get("/").await.unwrap();
    assert!(page.contains("<p id=\"rollout\">Rollout of"), "{page}");
    ctl.kill9();
}

/// A halt and the end of a rollout reach `notify:`'s webhook once each (issue 30's
/// notifications), with no agent token in their bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_halt_and_the_end_reach_the_webhook_once_each() {
    let emu = emulator().await;
    let url = emu.base_url();
    let hook = common::receiver::Receiver::start().await;
    let policy = format!(
        "  canary: 2\n  waves: [\"100%\"]\n  pause: 0s\n  health:\n    min_calls: 1\n    max_error_rate: 0.5\nnotify:\n  webhook: {}/hook\n",
        hook.base
    );
    let dir = fleet(10, &url, &policy).await;
    let d = dir.path();
    edit_end_call(d, "Raccroche (v2).");
    expect_code(&run(d, &url, &["apply", "--auto-approve"]).await, 0);
    let canary = canary(d);
    record_for(&url, d, &canary, "error", 1).await;
    expect_code(&run(d, &url, &["apply", "--auto-approve"]).await, 1);
    assert_eq!(
        hook.of_kind("rollout_halted").len(),
        1,
        "{:?}",
        hook.received()
    );

    expect_code(&sipform(d, &url, &["rollout", "resume"]), 0);
    let all: Vec<String> = (0..10).map(rid).collect();
    for _ in 0..3 {
        record_for(&url, d, &all, "completed", 3).await;
        expect_code(&run(d, &url, &["apply", "--auto-approve"]).await, 0);
        if rollout_json(d, &url)["phase"] == "finished" {
            break;
        }
    }
    assert_eq!(rollout_json(d, &url)["phase"], "finished");
    let finished = hook.of_kind("rollout_finished");
    assert_eq!(finished.len(), 1, "{:?}", hook.received());
    assert_eq!(hook.of_kind("rollout_halted").len(), 1);
    let bodies = serde_json::to_string(&hook.received()).unwrap();
    for a in agents(&emu) {
        let token = a["apiToken"].as_str().unwrap_or_default();
        assert!(
            token.is_empty() || !bodies.contains(token),
            "an agent token in a notification"
        );
    }
}

/// Two project folders (two machines' checkouts) sharing one PostgreSQL state: a rollout
/// `apply` started from A is seen by `rollout status` from B, and resumed and finished from B
/// with no restaurant written twice. The record is state's, not a file beside A.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollout_started_from_one_folder_is_resumed_from_another_sharing_postgres() {
    let emu = emulator().await;
    let url = emu.base_url();
    let db = common::db::TestDb::new(common::db::Engine::Postgres).await;
    let a = project_copy();
    let da = a.path();
    generate_restaurants(da, 20);
    let yaml = da.join("sipform.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap().replace(
        "state:\n  backend: file\n  path: sipform.state.json\n",
        &format!("state:\n  backend: postgres\n  url: \"{}\"\n", db.url),
    );
    assert!(text.contains("backend: postgres"), "{text}");
    std::fs::write(
        &yaml,
        format!("{text}rollout:\n  canary: 3\n  waves: [\"100%\"]\n  pause: manual\n"),
    )
    .unwrap();
    git(da, &["init", "-q"]);
    commit(da, "fleet");
    apply_ok(da, &url).await;
    edit_end_call(da, "Raccroche (v2).");
    // B: the same repository at the same commit, in another folder.
    let b = tempfile::tempdir().unwrap();
    let db_ = b.path();
    git(db_, &["clone", "-q", &da.display().to_string(), "."]);
    let start = writes(&emu);

    let out = run(da, &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("pause: manual"),
        "{}",
        all_output(&out)
    );
    assert_eq!(writes_since(&emu, &start).get(TOOL_PUT), Some(&3));

    // B sees A's rollout: the canary done, the rest pending.
    let status = rollout_json(db_, &url);
    assert_eq!(status["phase"], "in_progress", "{status}");
    assert_eq!(status["waves"][0]["done"], 3, "{status}");
    assert_eq!(status["waves"][1]["pending"], 17, "{status}");

    // Released and applied from B: the last wave, each restaurant once.
    expect_code(&sipform(db_, &url, &["rollout", "resume"]), 0);
    let out = run(db_, &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 0);
    assert!(stdout(&out).contains("finished"), "{}", all_output(&out));
    assert_eq!(writes_since(&emu, &start).get(TOOL_PUT), Some(&20));
    assert_eq!(agents_with(&emu, "Raccroche (v2)."), 20);
    assert_eq!(rollout_json(da, &url)["phase"], "finished");
    assert!(!da.join("sipform.rollout.json").exists());
    assert!(!db_.join("sipform.rollout.json").exists());
}

/// The controller creates a row inserted into the platform's table during a rollout at the
/// stable revision (its tools from the stable commit's files, state recording that revision),
/// as `apply` does; when its wave opens, the wave moves it like any other restaurant.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_controller_creates_a_row_inserted_mid_rollout_at_the_stable_revision() {
    use common::controller::{insert, install_trigger, platform};
    let emu = emulator().await;
    let url = emu.base_url();
    let db = platform(common::db::Engine::Sqlite).await;
    let dir = project_on_table(
        &db,
        TableProject {
            timeout_sec: Some(3),
            state_in_db: false,
            extra: "rollout:\n  canary: 3\n  waves: [\"100%\"]\n  pause: manual\n",
        },
    );
    let d = dir.path();
    std::fs::write(
        d.join(".gitignore"),
        "sipform.state.json*\n.sipform-controller/\n",
    )
    .unwrap();
    git(d, &["init", "-q"]);
    commit(d, "fleet");
    install_trigger(d, &url);
    insert(&db, 0..10).await;
    expect_code(&sipform(d, &url, &["controller", "--once"]), 0);
    let stable = read_state(d)["restaurants"][rid(0)]["revision"]["commit"].clone();
    assert!(stable.is_string(), "{}", read_state(d));
    let before = end_call_of(&emu, d, &rid(0));

    // The edit: the canary moves; the row inserted meanwhile is created at the stable revision.
    edit_end_call(d, "Raccroche (v2).");
    insert(&db, 10..11).await;
    let mark = writes(&emu);
    let out = run(d, &url, &["controller", "--once"]).await;
    expect_code(&out, 0);
    let written = writes_since(&emu, &mark);
    assert_eq!(written.get(TOOL_PUT), Some(&3), "{}", all_output(&out));
    assert_eq!(written.get("POST /api/agents"), Some(&1), "{written:?}");
    assert_eq!(
        end_call_of(&emu, d, &rid(10)),
        before,
        "{}",
        all_output(&out)
    );
    let state = read_state(d);
    assert_eq!(state["restaurants"][rid(10)]["revision"]["commit"], stable);
    assert_eq!(agents_with(&emu, "Raccroche (v2)."), 3);

    // Released: the last wave moves it with the rest, each restaurant written once.
    expect_code(&sipform(d, &url, &["rollout", "resume"]), 0);
    let out = run(d, &url, &["controller", "--once"]).await;
    expect_code(&out, 0);
    assert_eq!(
        rollout_json(d, &url)["phase"],
        "finished",
        "{}",
        all_output(&out)
    );
    assert_eq!(end_call_of(&emu, d, &rid(10)), json!("Raccroche (v2)."));
    assert_eq!(agents_with(&emu, "Raccroche (v2)."), 11);
    assert_eq!(writes_since(&emu, &mark).get(TOOL_PUT), Some(&11));
    let head = read_state(d)["restaurants"][rid(0)]["revision"]["commit"].clone();
    assert_ne!(head, stable);
    assert_eq!(
        read_state(d)["restaurants"][rid(10)]["revision"]["commit"],
        head
    );
}

/// A rollback of a whole revision (here a `git revert` of the rolled-out commit) goes through
/// the same canary and waves, faster as `rollout.rollback` says: one wave and no pause, where
/// the change itself waited for `rollout resume` between each of its two waves.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollback_goes_through_the_waves_of_rollout_rollback() {
    let emu = emulator().await;
    let url = emu.base_url();
    let policy = "  canary: 2\n  waves: [\"50%\", \"100%\"]\n  pause: manual\n  rollback:\n    waves: [\"100%\"]\n    pause: 0s\n";
    let dir = fleet(20, &url, policy).await;
    let d = dir.path();
    let before = end_call_of(&emu, d, &rid(0));
    edit_end_call(d, "Raccroche (v2).");
    for _ in 0..2 {
        let out = run(d, &url, &["apply", "--auto-approve"]).await;
        expect_code(&out, 0);
        assert!(
            stdout(&out).contains("pause: manual"),
            "{}",
            all_output(&out)
        );
        expect_code(&sipform(d, &url, &["rollout", "resume"]), 0);
    }
    let out = run(d, &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 0);
    assert_eq!(agents_with(&emu, "Raccroche (v2)."), 20);
    assert_ne!(rollout_json(d, &url)["rollback"], true);

    // Reverted: a rollback, the canary then every restaurant at once, in one apply.
    git(d, &["revert", "--no-edit", "HEAD"]);
    let mark = writes(&emu);
    let out = run(d, &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 0);
    assert!(stdout(&out).contains("finished"), "{}", all_output(&out));
    assert_eq!(writes_since(&emu, &mark).get(TOOL_PUT), Some(&20));
    assert!(stdout(&out).contains("Rollback of"), "{}", all_output(&out));
    assert_eq!(agents_with(&emu, "Raccroche (v2)."), 0);
    assert_eq!(end_call_of(&emu, d, &rid(19)), before);
    let status = rollout_json(d, &url);
    assert_eq!(status["rollback"], true, "{status}");
    assert_eq!(
        status["waves"].as_array().map(Vec::len),
        Some(2),
        "{status}"
    );
    assert_eq!(status["waves"][0]["done"], 2, "{status}");
}

/// Following a branch (`controller.source`), the stable files of a new restaurant come from
/// the controller's mirror of the followed repository: its project folder (`path`) at the
/// stable commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_followed_branch_gives_new_restaurants_the_stable_commits_files() {
    let emu = emulator().await;
    let url = emu.base_url();
    // origin (bare) and CI's clone, the project in its `deploy/` folder.
    let repos = tempfile::tempdir().unwrap();
    let (origin, ci) = (repos.path().join("origin.git"), repos.path().join("ci"));
    git(repos.path(), &["init", "-q", "--bare", "origin.git"]);
    git(repos.path(), &["init", "-q", "-b", "main", "ci"]);
    let project = project_copy();
    let folder = ci.join("deploy");
    for part in ["tools", "templates", "docs"] {
        copy_tree(&project.path().join(part), &folder.join(part));
    }
    let yaml = std::fs::read_to_string(project.path().join("sipform.yaml")).unwrap();
    std::fs::write(
        folder.join("sipform.yaml"),
        format!("{yaml}rollout:\n  canary: 2\n  waves: [\"100%\"]\n  pause: manual\n"),
    )
    .unwrap();
    let push = |what: &str| {
        commit(&ci, what);
        git(&ci, &["push", "-q", &origin.display().to_string(), "main"]);
        git(&ci, &["rev-parse", "HEAD"]).trim().to_string()
    };
    let stable = push("the project");
    // The controller's own folder: restaurants, state, and the source it follows.
    let dir = project_copy();
    let d = dir.path();
    generate_restaurants(d, 8);
    std::fs::write(
        d.join("sipform.yaml"),
        format!(
            "{yaml}controller:\n  source:\n    git: {}\n    branch: main\n    path: deploy\n",
            origin.display()
        ),
    )
    .unwrap();
    expect_code(&sipform(d, &url, &["controller", "--once"]), 0);
    let before = end_call_of(&emu, d, &rid(0));

    edit_yaml(&folder.join("tools/end_call.yaml"), |v| {
        v["description"] = json!("Raccroche (v2).");
    });
    push("end_call: v2");
    generate_restaurants(d, 9);
    let out = run(d, &url, &["controller", "--once"]).await;
    expect_code(&out, 0);
    assert_eq!(
        agents_with(&emu, "Raccroche (v2)."),
        2,
        "{}",
        all_output(&out)
    );
    assert_eq!(
        end_call_of(&emu, d, &rid(8)),
        before,
        "{}",
        all_output(&out)
    );
    assert_eq!(
        read_state(d)["restaurants"][rid(8)]["revision"]["commit"],
        json!(stable)
    );
}

/// The controller reads a finished wave back before it opens the next, as `apply` does: a
/// field the server dropped halts the rollout naming it, and nobody past the canary is
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_controller_reads_the_canary_back_and_halts_on_a_dropped_field() {
    let emu = emulator().await;
    let url = emu.base_url();
    let dir = fleet_dropping_descriptions(&emu).await;
    let d = dir.path();
    let mark = writes(&emu);
    let out = run(d, &url, &["controller", "--once"]).await;
    expect_code(&out, 0);
    // The canary's two writes, then the read-back halts the rollout: no one else is written.
    assert_eq!(
        writes_since(&emu, &mark).get(TOOL_PUT),
        Some(&2),
        "{}",
        all_output(&out)
    );
    let status = rollout_json(d, &url);
    assert_eq!(status["phase"], "halted", "{status}");
    let reason = status["halted"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("post-apply verification"), "{reason}");
    assert!(
        reason.contains("tool end_call: field `description` is not what was sent"),
        "{reason}"
    );
    // A second run opens no wave: the rollout stays halted (the canary's own tools, which
    // the server keeps dropping a field of, are all it may write again).
    let out = run(d, &url, &["controller", "--once"]).await;
    expect_code(&out, 0);
    assert_eq!(rollout_json(d, &url)["phase"], "halted");
    assert!(
        writes_since(&emu, &mark)
            .get(TOOL_PUT)
            .is_some_and(|n| *n <= 4),
        "{}",
        all_output(&out)
    );
}
