//! The integration tests' one support module (`mod common;` in a test file, then
//! `use common::*;`): a copy of the bundled project in a temp folder (or one reading the
//! platform's table), an emulator on a random port, the real binary pointed at it, and the
//! assertions many tests share. Its parts:
//! - this file: the project, the emulator, the binary, the server's objects and the checks on
//!   them;
//! - [`db`]: a throwaway PostgreSQL schema or SQLite file with the platform's tables (also
//!   compiled into `benches/controller.rs`);
//! - [`controller`]: `sipform controller` as a child process, and the platform table it watches;
//! - [`hostile`]: a proxy in front of the emulator that rewrites its answers;
//! - [`platform_service`]: the platform's own provisioning path, as during a switch-over;
//! - [`receiver`]: a local webhook receiver for notifications.
//!
//! Counts derived from the bundled tools are written with [`bundled_tool_count`], never as a
//! number.
#![allow(dead_code)]

pub mod controller;
pub mod db;
pub mod hostile;
pub mod platform_service;
pub mod receiver;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sipform_emulator::{Emulator, EmulatorConfig, EmulatorHandle, Faults};

use db::{Engine, TestDb};

pub const BIN: &str = env!("CARGO_BIN_EXE_sipform");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `tests/fixtures/` (facts vendored into the repository: see its `SOURCE.md`).
pub fn fixture(rel: &str) -> PathBuf {
    repo().join("tests/fixtures").join(rel)
}

/// How many tools the bundled project gives each restaurant: the YAML files in the
/// repository's `tools/`. Every count derived from the tools is written with this.
pub fn bundled_tool_count() -> usize {
    std::fs::read_dir(repo().join("tools"))
        .expect("tools/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .count()
}

/// The objects a fresh apply creates per restaurant of the bundled project: its final
/// customer, agent and subscription, and one of each tool.
pub fn objects_per_restaurant() -> usize {
    3 + bundled_tool_count()
}

/// A restaurant id as the generated projects and tables use them (`…-000000000007`).
pub fn rid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// Copies sipform.yaml, tools/, templates/ and restaurants/ into a fresh temp folder.
pub fn project_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&repo().join("tools"), &dir.path().join("tools"));
    copy_tree(&repo().join("templates"), &dir.path().join("templates"));
    copy_tree(&repo().join("restaurants"), &dir.path().join("restaurants"));
    std::fs::copy(repo().join("sipform.yaml"), dir.path().join("sipform.yaml")).expect("copy");
    // sipform.yaml's platform.openapi: the contract `validate` checks the tools against.
    std::fs::create_dir_all(dir.path().join("docs")).expect("docs");
    std::fs::copy(
        repo().join("docs/platform.openapi.yaml"),
        dir.path().join("docs/platform.openapi.yaml"),
    )
    .expect("copy");
    dir
}

/// How a project reading the platform's table is set up, besides the table (see
/// [`project_on_table`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct TableProject<'a> {
    /// `server.timeout_sec`, when set.
    pub timeout_sec: Option<u64>,
    /// The state in the table's database too (a SQLite file beside it, or its PostgreSQL
    /// schema); otherwise the default, a file in the project.
    pub state_in_db: bool,
    /// More top-level keys of `sipform.yaml`, verbatim.
    pub extra: &'a str,
}

/// A project copy whose inventory is `db`'s `restaurants` table.
pub fn project_on_table(db: &TestDb, how: TableProject) -> tempfile::TempDir {
    let dir = project_copy();
    let mut yaml = String::from("account:\n  name: AlloResto\n  email: tech@alloresto.fr\n");
    if let Some(secs) = how.timeout_sec {
        yaml.push_str(&format!("server:\n  timeout_sec: {secs}\n"));
    }
    yaml.push_str(&format!(
        "inventory:\n  source: database\n  url: \"{}\"\n",
        db.url
    ));
    yaml.push_str(how.extra);
    if how.state_in_db {
        yaml.push_str(&match db.engine {
            Engine::Sqlite => format!(
                "state:\n  backend: sqlite\n  url: sqlite://{}\n",
                db.dir.path().join("state.db").display()
            ),
            Engine::Postgres => format!("state:\n  backend: postgres\n  url: \"{}\"\n", db.url),
        });
    }
    std::fs::write(dir.path().join("sipform.yaml"), yaml).expect("sipform.yaml");
    dir
}

/// A project copy whose inventory is `db`'s table and whose state lives in `db` too, with a
/// 3 s request timeout: what the controller and database apply tests run.
pub fn project_on(db: &TestDb) -> tempfile::TempDir {
    project_on_table(
        db,
        TableProject {
            timeout_sec: Some(3),
            state_in_db: true,
            extra: "",
        },
    )
}

/// Column `col` of restaurant `i`'s row ([`rid`]) in `db`'s `restaurants` table.
pub async fn column(db: &TestDb, col: &str, i: usize) -> Option<String> {
    db.text(&format!(
        "SELECT {col} FROM restaurants WHERE id = {}",
        db.id_literal(&rid(i))
    ))
    .await
}

/// The project's restaurant files, sorted.
pub fn restaurant_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("restaurants"))
        .expect("restaurants/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

/// Edits a YAML file as JSON (written back as JSON, which is YAML); returns the edited
/// document.
pub fn edit_yaml(path: &Path, edit: impl FnOnce(&mut Value)) -> Value {
    let text = std::fs::read_to_string(path).expect("read");
    let mut v: Value = serde_saphyr::from_str(&text).expect("yaml");
    edit(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).expect("json")).expect("write");
    v
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

/// `git -C dir args…` with a fixed identity and no system configuration, which must succeed;
/// its standard output, trimmed (local repositories standing for CI, origin, a controller).
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=ci", "-c", "user.email=ci@example.com"])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
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

/// `apply --auto-approve`, which must succeed.
pub async fn apply_ok(dir: &Path, url: &str) -> Output {
    let out = run(dir, url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 0);
    out
}

/// `plan --detailed-exitcode` finds nothing to do: exit 0 and "No changes".
pub async fn expect_no_changes(dir: &Path, url: &str) {
    let out = run(dir, url, &["plan", "--detailed-exitcode"]).await;
    expect_code(&out, 0);
    assert!(stdout(&out).contains("No changes"), "{}", stdout(&out));
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Standard output, then standard error.
pub fn all_output(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
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
    counts_since(writes(h), mark)
}

/// Requests by route since `mark` (an earlier `request_counts`).
pub fn requests_since(h: &EmulatorHandle, mark: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    counts_since(h.request_counts(), mark)
}

/// The routes whose count grew since `mark`, by how much.
fn counts_since(now: BTreeMap<String, u64>, mark: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    now.into_iter()
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

/// The state as a run reads it: the file and its journal replayed (after a SIGKILL the
/// newest ids may be in the journal only).
pub fn read_state(dir: &Path) -> Value {
    let state = sipform::state::file::read_file(&dir.join("sipform.state.json"))
        .expect("state readable")
        .expect("state file");
    serde_json::to_value(&state).expect("state JSON")
}

/// The server's objects and state name each other exactly: every id in state exists, every
/// agent/final customer/tool on the server is in state, and no restaurant has two agents or
/// a tool name twice ([`assert_state_matches_snapshot`] on the emulator's store).
pub fn assert_state_matches_server(dir: &Path, h: &EmulatorHandle) {
    assert_state_matches_snapshot(dir, &h.snapshot());
}

// --- reliability helpers (soak, crash kills, server restart) ------------------------------

/// `GET base/__emulator/<what>` as JSON: works for an in-process or a separate emulator.
pub async fn admin_get(base: &str, what: &str) -> Value {
    reqwest::get(format!("{base}/__emulator/{what}"))
        .await
        .unwrap_or_else(|e| panic!("GET /__emulator/{what}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET /__emulator/{what}: not JSON: {e}"))
}

/// Served requests by HTTP status from the emulator's log (0 = no answer: reset or hang).
pub async fn statuses(base: &str) -> BTreeMap<u16, u64> {
    let log = admin_get(base, "requests").await;
    let mut by = BTreeMap::new();
    for e in log["log"].as_array().cloned().unwrap_or_default() {
        *by.entry(e["status"].as_u64().unwrap_or(0) as u16)
            .or_insert(0) += 1;
    }
    by
}

/// The figures of apply's closing line `… N actions, N requests, N retries, X.Ys.`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ApplyFigures {
    pub actions: u64,
    pub requests: u64,
    pub retries: u64,
    pub seconds: f64,
}

pub fn apply_figures(out: &str) -> Option<ApplyFigures> {
    let line = out.lines().rev().find(|l| l.starts_with("Apply "))?;
    let num_before = |word: &str| -> Option<f64> {
        let i = line.find(word)?;
        line[..i].split_whitespace().last()?.parse().ok()
    };
    let secs = line
        .trim_end_matches('.')
        .rsplit(' ')
        .next()?
        .trim_end_matches('s')
        .parse()
        .ok()?;
    Some(ApplyFigures {
        actions: num_before(" actions")? as u64,
        requests: num_before(" requests")? as u64,
        retries: num_before(" retries")? as u64,
        seconds: secs,
    })
}

/// Sets `server.timeout_sec` in the copied sipform.yaml.
pub fn set_timeout(dir: &Path, secs: u64) {
    let p = dir.join("sipform.yaml");
    let text = std::fs::read_to_string(&p).expect("sipform.yaml");
    let text = text.replace("server:\n", &format!("server:\n  timeout_sec: {secs}\n"));
    std::fs::write(&p, text).expect("write sipform.yaml");
}

/// A port free right now on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind :0");
    l.local_addr().expect("addr").port()
}

/// What an emulator snapshot holds, counted: (agents, final customers, tools).
pub fn snapshot_counts(snap: &Value) -> (usize, usize, usize) {
    let agents = snap["agents"].as_array().cloned().unwrap_or_default();
    let tools = agents
        .iter()
        .map(|a| a["tools"].as_array().map(|t| t.len()).unwrap_or(0))
        .sum();
    let fcs = snap["finalCustomers"].as_array().map_or(0, |f| f.len());
    (agents.len(), fcs, tools)
}

/// State and a server snapshot (`GET /__emulator/state`, or an in-process emulator's
/// `snapshot()`) name exactly the same agents, final customers and tools: each state id exists
/// where state says (its restaurant's agent, the agent's final customer, the tool's name), the
/// server has nothing state lacks, and no restaurant has two agents or a tool name twice.
pub fn assert_state_matches_snapshot(dir: &Path, snap: &Value) {
    use std::collections::BTreeSet;
    let state = read_state(dir);
    let server_agents = snap["agents"].as_array().cloned().unwrap_or_default();
    let server_fcs = snap["finalCustomers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let agent_ids: BTreeSet<String> = server_agents
        .iter()
        .filter_map(|a| a["id"].as_str().map(str::to_string))
        .collect();
    let fc_ids: BTreeSet<String> = server_fcs
        .iter()
        .filter_map(|f| f["id"].as_str().map(str::to_string))
        .collect();
    let tool_ids: BTreeSet<String> = server_agents
        .iter()
        .flat_map(|a| a["tools"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect();
    let (mut sa, mut sf, mut st) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for (rid, r) in state["restaurants"]
        .as_object()
        .cloned()
        .unwrap_or_default()
    {
        if let Some(a) = r["agentId"].as_str() {
            let agent = server_agents
                .iter()
                .find(|x| x["id"] == a)
                .unwrap_or_else(|| panic!("state agent {a} of {rid} not on the server"));
            assert_eq!(agent["config"]["restaurantId"], rid.as_str());
            if let Some(f) = r["finalCustomerId"].as_str() {
                assert_eq!(agent["finalCustomerId"], f, "agent {a} of {rid}");
            }
            for (name, t) in r["tools"].as_object().cloned().unwrap_or_default() {
                let tool = agent["tools"]
                    .as_array()
                    .and_then(|ts| ts.iter().find(|x| x["id"] == t).cloned())
                    .unwrap_or_else(|| panic!("state tool {name} {t} of {rid} not on agent {a}"));
                assert_eq!(tool["name"], name.as_str());
            }
            sa.insert(a.to_string());
        }
        if let Some(f) = r["finalCustomerId"].as_str() {
            assert!(
                fc_ids.contains(f),
                "state final customer {f} of {rid} not on the server"
            );
            sf.insert(f.to_string());
        }
        for (_, t) in r["tools"].as_object().cloned().unwrap_or_default() {
            st.insert(t.as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(sa, agent_ids, "agents: state vs server");
    assert_eq!(sf, fc_ids, "final customers: state vs server");
    assert_eq!(st, tool_ids, "tools: state vs server");
    let mut seen = BTreeSet::new();
    for a in &server_agents {
        let rid = a["config"]["restaurantId"].as_str().unwrap_or_default();
        assert!(
            seen.insert(rid.to_string()),
            "two agents for restaurant {rid}"
        );
        let mut names = BTreeSet::new();
        for t in a["tools"].as_array().cloned().unwrap_or_default() {
            assert!(
                names.insert(t["name"].as_str().unwrap_or_default().to_string()),
                "duplicate tool {} on agent {}",
                t["name"],
                a["id"]
            );
        }
    }
}

/// The full invariant after convergence: exactly `n` agents, `n` final customers, every
/// bundled tool `n` times, one agent per restaurant, and state naming exactly the server's
/// objects.
pub fn assert_converged(dir: &Path, snap: &Value, n: usize) {
    assert_eq!(
        snapshot_counts(snap),
        (n, n, bundled_tool_count() * n),
        "(agents, final customers, tools)"
    );
    assert_state_matches_snapshot(dir, snap);
}

/// [`sipform`] from async code: the binary runs on a blocking thread, so the in-process
/// emulator keeps serving on the runtime's workers.
pub async fn run(dir: &Path, url: &str, args: &[&str]) -> Output {
    let (dir, url) = (dir.to_path_buf(), url.to_string());
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        sipform(&dir, &url, &a)
    })
    .await
    .expect("join")
}

/// Polls `cond` until it holds; fails the test after a minute.
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A fault set of fixed latency only.
pub fn latency(ms: u64) -> Faults {
    serde_json::from_value(serde_json::json!({"latency": {"fixedMs": ms, "jitterMs": 0}}))
        .expect("faults")
}

/// Two applies on one state: while a first one runs, an impatient second one fails naming the
/// holder, and a patient one waits for it, then finds nothing left to do. Both the first and
/// the patient one must succeed.
pub async fn assert_applies_never_overlap(dir: &Path, emu: &EmulatorHandle) {
    // Nobody reads its output while it runs: discard it, so a full pipe cannot stall it.
    // Two requests at a time: it must still be running when the others try the lock (with
    // `--parallelism auto` it could finish first).
    let mut first = command(
        dir,
        &emu.base_url(),
        &["apply", "--auto-approve", "--parallelism", "2"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("spawn");
    wait_for("the first apply to start writing", || {
        if let Ok(Some(status)) = first.try_wait() {
            panic!("the first apply ended early: {status}");
        }
        count(emu, "POST /api/accounts") >= 1
    })
    .await;

    let impatient = run(
        dir,
        &emu.base_url(),
        &["apply", "--auto-approve", "--lock-timeout", "300ms"],
    )
    .await;
    expect_code(&impatient, 1);
    let msg = stderr(&impatient);
    assert!(
        msg.contains("locked") && msg.contains("apply by pid"),
        "{msg}"
    );

    let patient = {
        let (d, url) = (dir.to_path_buf(), emu.base_url());
        tokio::task::spawn_blocking(move || {
            sipform(
                &d,
                &url,
                &["apply", "--auto-approve", "--lock-timeout", "120s"],
            )
        })
    };
    let status = tokio::task::spawn_blocking(move || first.wait())
        .await
        .expect("join")
        .expect("first apply");
    assert_eq!(status.code(), Some(0), "the first apply must succeed");
    let patient = patient.await.expect("join");
    expect_code(&patient, 0);
    assert!(
        stdout(&patient).contains("No changes"),
        "{}",
        stdout(&patient)
    );
}

/// Starts `apply --auto-approve` (output discarded: nobody reads it while it runs) and
/// SIGKILLs it once the emulator has seen `tool_posts` tool creates.
pub async fn kill_apply_after(dir: &Path, emu: &EmulatorHandle, tool_posts: u64) {
    let mut child = command(dir, &emu.base_url(), &["apply", "--auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for("tool creates under way", || {
        count(emu, "POST /api/agents/:id/tools") >= tool_posts
    })
    .await;
    child.kill().expect("SIGKILL");
    let _ = child.wait();
}

/// `POST base/__emulator/calls`: records `calls` (call records, missing fields filled in) for
/// agent `agent`, as `GET /api/calls` will return them to its token.
pub async fn record_calls(base: &str, agent: &str, calls: Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/__emulator/calls"))
        .json(&serde_json::json!({ "agentId": agent, "calls": calls }))
        .send()
        .await
        .expect("POST /__emulator/calls");
    assert!(
        resp.status().is_success(),
        "POST /__emulator/calls: {}",
        resp.status()
    );
}
