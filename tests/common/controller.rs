//! Shared by the controller tests: the platform's table with the change trigger, a project on
//! it, and the real binary running `sipform controller` as a child (output to files, killed
//! on drop), with its HTTP listener on a free port.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sipform_emulator::EmulatorHandle;

use super::db::{Engine, TestDb};
use super::*;

/// The platform's table, empty.
pub async fn platform(engine: Engine) -> TestDb {
    let db = TestDb::new(engine).await;
    db.create_restaurants("restaurants").await;
    db
}

/// Inserts restaurants `range` (SIP on).
pub async fn insert(db: &TestDb, range: std::ops::Range<usize>) {
    let mut sql = String::new();
    for i in range {
        sql.push_str(&format!(
            "INSERT INTO restaurants (id, name, contact_email, sip_enabled, chat_enabled) VALUES ({}, 'Restaurant {i}', 'r{i}@example.com', true, false);\n",
            db.id_literal(&rid(i)),
        ));
    }
    db.exec(&sql).await;
}

/// The agent of restaurant `i` on the server.
/// Cuts the session holding a controller's leader lock in this test's database (found by its
/// `application_name`), as a failover or a network blip would; how many were cut.
pub async fn cut_leader_lock(db: &TestDb) -> Option<String> {
    db.text(
        "SELECT count(pg_terminate_backend(pid))::text FROM pg_stat_activity \
         WHERE application_name = 'sipform-controller-leader' \
         AND datname = current_database() \
         AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)",
    )
    .await
}

pub fn agent_of(emu: &EmulatorHandle, i: usize) -> Option<Value> {
    agents(emu)
        .into_iter()
        .find(|a| a["config"]["restaurantId"] == rid(i).as_str())
}

/// Restaurant `i` is provisioned: its agent with every bundled tool exists, its row names it.
pub async fn provisioned(db: &TestDb, emu: &EmulatorHandle, i: usize) -> bool {
    let Some(a) = agent_of(emu, i) else {
        return false;
    };
    a["tools"].as_array().map(Vec::len) == Some(bundled_tool_count())
        && column(db, "agent_id", i).await.as_deref() == a["id"].as_str()
}

/// Polls `cond` (async) until it holds; fails after `secs`.
pub async fn eventually<F, Fut>(what: &str, secs: u64, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out after {secs}s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// No agent has a twin, no tool name appears twice on one agent, and every agent is one
/// restaurant's.
pub fn assert_no_duplicates(emu: &EmulatorHandle) {
    let mut seen = std::collections::BTreeSet::new();
    for a in agents(emu) {
        let rid = a["config"]["restaurantId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(seen.insert(rid.clone()), "two agents for {rid}");
        let mut names = std::collections::BTreeSet::new();
        for t in a["tools"].as_array().cloned().unwrap_or_default() {
            assert!(
                names.insert(t["name"].as_str().unwrap_or_default().to_string()),
                "duplicate tool on {rid}"
            );
        }
    }
    assert_eq!(
        final_customers(emu).len(),
        agents(emu).len(),
        "one final customer per agent"
    );
}

/// `sipform controller` running as a child process.
pub struct Ctl {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

/// Short intervals so the tests stay fast; `extra` adds or overrides flags.
pub fn start(dir: &Path, url: &str, extra: &[&str], env: &[(&str, &str)]) -> Ctl {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let log = dir.join(format!("controller-{port}.log"));
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let mut args = vec![
        "controller",
        "-v",
        "--listen",
        &listen,
        "--poll-interval",
        "100ms",
        "--leader-retry",
        "300ms",
        "--backoff",
        "200ms",
        "--backoff-max",
        "1s",
    ];
    args.extend_from_slice(extra);
    let mut c = command(dir, url, &args);
    c.env_remove("SIPFORM_CONTROLLER_TOKEN");
    for (k, v) in env {
        c.env(k, v);
    }
    let child = c
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn the controller");
    Ctl { child, port, log }
}

impl Ctl {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: sending a signal to our own child, whose pid we hold (not yet reaped).
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig})");
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit; fails after `secs`.
    pub async fn exited(&mut self, secs: u64) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "the controller did not exit within {secs}s\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET path`: status and body; `None` while the listener is not up.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let r = reqwest::get(self.url(path)).await.ok()?;
        let code = r.status().as_u16();
        Some((code, r.text().await.unwrap_or_default()))
    }

    pub async fn post(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut req = reqwest::Client::new().post(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("POST");
        let code = r.status().as_u16();
        (code, r.text().await.unwrap_or_default())
    }

    /// `/readyz`'s JSON, once the listener answers.
    pub async fn readyz(&self) -> Value {
        loop {
            if let Some((_, body)) = self.get("/readyz").await {
                return serde_json::from_str(&body).expect("readyz JSON");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn is_leader(&self) -> bool {
        self.readyz().await["leader"] == true
    }

    /// One metric's value (the first sample whose line starts with `name`).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, text) = self.get("/metrics").await?;
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Installs the change log and trigger through the binary.
pub fn install_trigger(dir: &Path, url: &str) {
    let out = sipform(dir, url, &["controller", "install-trigger"]);
    expect_code(&out, 0);
}

pub const SIGTERM: i32 = libc::SIGTERM;
pub const SIGHUP: i32 = libc::SIGHUP;
