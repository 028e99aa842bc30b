//! Shared harness: a copy of the bundled project in a temp folder, an emulator on a random
//! port, and the real binary pointed at it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sipform::emulator::{Emulator, EmulatorConfig, EmulatorHandle, Faults};

pub const BIN: &str = env!("CARGO_BIN_EXE_sipform");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Copies sipform.yaml, tools/, templates/ and restaurants/ into a fresh temp folder.
pub fn project_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo().join("tools"), &dir.path().join("tools"));
    copy_tree(&repo().join("templates"), &dir.path().join("templates"));
    copy_tree(&repo().join("restaurants"), &dir.path().join("restaurants"));
    std::fs::copy(repo().join("sipform.yaml"), dir.path().join("sipform.yaml")).expect("copy");
    dir
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        if e.path().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

/// Replaces restaurants/ with `n` generated restaurants (ids r-0001…), flags varied.
pub fn generate_restaurants(dir: &Path, n: usize) {
    let r = dir.join("restaurants");
    let _ = std::fs::remove_dir_all(&r);
    std::fs::create_dir_all(&r).expect("mkdir");
    for i in 0..n {
        let text = format!(
            "id: 00000000-0000-4000-8000-{i:012}\nname: Restaurant {i}\nphone: \"+3314000{i:04}\"\ncontact_email: r{i}@example.com\ndelivery_enabled: {}\nreservation_enabled: {}\norder_status_enabled: {}\ntransfer_enabled: {}\ntransfer_phone_number: \"+33600000000\"\nsip_enabled: true\n",
            i % 2 == 0,
            i % 3 == 0,
            i % 5 == 0,
            i % 7 == 0,
        );
        std::fs::write(r.join(format!("r{i:04}.yaml")), text).expect("write");
    }
}

pub async fn emulator() -> EmulatorHandle {
    Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts")
}

pub async fn emulator_with(faults: Faults, seed: u64) -> EmulatorHandle {
    Emulator::start(EmulatorConfig {
        faults,
        seed,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

/// Runs the binary in `dir` against `url`; never inherits a real server or key.
pub fn sipform(dir: &Path, url: &str, args: &[&str]) -> Output {
    command(dir, url, args).output().expect("run sipform")
}

pub fn command(dir: &Path, url: &str, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .args(args)
        .env("SIP_AGENT_SERVER_URL", url)
        .env_remove("SIP_AGENT_INTERNAL_URL")
        .env_remove("SIP_ACCOUNT_API_KEY")
        .env_remove("NEXT_PUBLIC_APP_URL")
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1");
    c
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, showing the output when it is not the expected one.
pub fn expect_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit code\n--- stdout\n{}\n--- stderr\n{}",
        stdout(o),
        stderr(o)
    );
}

/// Write requests (POST/PUT/DELETE) by route, from the emulator's counters.
pub fn writes(h: &EmulatorHandle) -> BTreeMap<String, u64> {
    h.request_counts()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("GET "))
        .collect()
}

/// Writes since `mark` (an earlier [`writes`]).
pub fn writes_since(h: &EmulatorHandle, mark: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    writes(h)
        .into_iter()
        .map(|(k, v)| {
            let before = mark.get(&k).copied().unwrap_or(0);
            (k, v - before)
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}

pub fn count(h: &EmulatorHandle, key: &str) -> u64 {
    h.request_counts().get(key).copied().unwrap_or(0)
}

pub fn agents(h: &EmulatorHandle) -> Vec<Value> {
    h.snapshot()["agents"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub fn final_customers(h: &EmulatorHandle) -> Vec<Value> {
    h.snapshot()["finalCustomers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub fn tool_count(h: &EmulatorHandle) -> usize {
    agents(h)
        .iter()
        .map(|a| a["tools"].as_array().map(|t| t.len()).unwrap_or(0))
        .sum()
}

pub fn read_state(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("sipform.state.json")).expect("state file");
    serde_json::from_str(&text).expect("state JSON")
}

/// The server's objects and state name each other exactly: every id in state exists, every
/// agent/final customer/tool on the server is in state, and no restaurant has two agents or
/// a tool name twice.
pub fn assert_state_matches_server(dir: &Path, h: &EmulatorHandle) {
    let state = read_state(dir);
    let snap = h.snapshot();
    let server_agents = snap["agents"].as_array().cloned().unwrap_or_default();
    let server_fcs = snap["finalCustomers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let restaurants = state["restaurants"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut state_agents = std::collections::BTreeSet::new();
    let mut state_fcs = std::collections::BTreeSet::new();
    let mut state_tools = std::collections::BTreeSet::new();
    for (rid, r) in &restaurants {
        if let Some(a) = r["agentId"].as_str() {
            state_agents.insert(a.to_string());
            let agent = server_agents
                .iter()
                .find(|x| x["id"] == a)
                .unwrap_or_else(|| panic!("state agent {a} of {rid} not on the server"));
            assert_eq!(agent["config"]["restaurantId"], rid.as_str());
        }
        if let Some(f) = r["finalCustomerId"].as_str() {
            state_fcs.insert(f.to_string());
        }
        for (_, t) in r["tools"].as_object().cloned().unwrap_or_default() {
            state_tools.insert(t.as_str().unwrap_or_default().to_string());
        }
    }
    let mut seen_restaurants = std::collections::BTreeSet::new();
    for a in &server_agents {
        let id = a["id"].as_str().unwrap_or_default();
        assert!(
            state_agents.contains(id),
            "server agent {id} is not in state"
        );
        let rid = a["config"]["restaurantId"].as_str().unwrap_or_default();
        assert!(
            seen_restaurants.insert(rid.to_string()),
            "two agents for restaurant {rid}"
        );
        let mut names = std::collections::BTreeSet::new();
        for t in a["tools"].as_array().cloned().unwrap_or_default() {
            let tid = t["id"].as_str().unwrap_or_default();
            assert!(
                state_tools.contains(tid),
                "server tool {tid} is not in state"
            );
            assert!(
                names.insert(t["name"].as_str().unwrap_or_default().to_string()),
                "duplicate tool {} on agent {id}",
                t["name"]
            );
        }
    }
    for f in &server_fcs {
        let id = f["id"].as_str().unwrap_or_default();
        assert!(
            state_fcs.contains(id),
            "server final customer {id} is not in state"
        );
    }
    assert_eq!(state_fcs.len(), server_fcs.len());
}
