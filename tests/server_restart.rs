//! The server dies mid-apply and comes back: the emulator runs as its own process with a
//! `--data` snapshot, is SIGKILLed while an apply is creating objects, and restarts on the same
//! port from the same file. The apply either rides it out (retries) or fails cleanly; the next
//! apply converges; nothing is duplicated or orphaned and state names exactly the server's
//! objects.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const RESTAURANTS: usize = 40;

/// A `sipform emulator` process, SIGKILLed when dropped (so a failing test leaves none).
struct EmulatorProcess {
    child: Child,
}

impl EmulatorProcess {
    /// Starts it and waits for its `listening on` line.
    fn start(port: u16, data: &Path) -> Option<EmulatorProcess> {
        let mut child = Command::new(BIN)
            .args(["emulator", "--port", &port.to_string(), "--data"])
            .arg(data)
            .args(["--latency-ms", "15", "--jitter-ms", "10", "--seed", "7"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn emulator");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        let read = BufReader::new(stdout).read_line(&mut line);
        if read.is_err() || !line.starts_with("listening on http://") {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        Some(EmulatorProcess { child })
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Restarts on the same port; the port may take a moment to be free again.
fn restart(port: u16, data: &Path) -> EmulatorProcess {
    for _ in 0..50 {
        if let Some(e) = EmulatorProcess::start(port, data) {
            return e;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the emulator could not listen on port {port} again");
}

async fn posts(url: &str) -> u64 {
    admin_get(url, "requests").await["counts"]
        .as_object()
        .map(|c| {
            c.iter()
                .filter(|(k, _)| k.starts_with("POST "))
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_restarts_mid_apply_and_the_next_apply_converges() {
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("emulator.json");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = restart(port, &data);

    let dir = project_copy();
    generate_restaurants(dir.path(), RESTAURANTS);
    let total = 1 + ((2 + bundled_tool_count()) * RESTAURANTS) as u64;
    // The plan output is large and nobody reads it while the apply runs: send it to a file.
    let log = std::fs::File::create(work.path().join("apply.out")).expect("log file");
    let mut apply = command(dir.path(), &url, &["apply", "--auto-approve"])
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn apply");

    let deadline = Instant::now() + Duration::from_secs(60);
    while posts(&url).await < total / 3 {
        assert!(
            apply.try_wait().expect("try_wait").is_none(),
            "the apply ended before the server went down"
        );
        assert!(Instant::now() < deadline, "the apply made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    assert!(
        apply.try_wait().expect("try_wait").is_none(),
        "the server must go down mid-apply"
    );
    let snap_at_crash: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&data).expect("the data file exists after writes"))
            .expect("the data file is a snapshot");
    let at_crash = snapshot_counts(&snap_at_crash);
    assert!(
        at_crash.2 < bundled_tool_count() * RESTAURANTS,
        "the crash must leave work to do: {at_crash:?}"
    );
    // Down for a second (the apply sees refused connections), then back on the same port.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut server = restart(port, &data);

    let first = tokio::task::spawn_blocking(move || apply.wait())
        .await
        .expect("join")
        .expect("wait apply");
    let first_out = std::fs::read_to_string(work.path().join("apply.out")).expect("apply output");
    assert!(
        matches!(first.code(), Some(0) | Some(1)),
        "the interrupted apply must finish or fail cleanly: {first}"
    );
    let first_figures = apply_figures(&first_out);
    if first.code() == Some(0) {
        let f = first_figures.expect("a finished apply prints its summary");
        assert!(f.retries > 0, "riding out the restart takes retries: {f:?}");
    }

    let second = apply_ok(dir.path(), &url).await;
    expect_no_changes(dir.path(), &url).await;

    let snap = admin_get(&url, "state").await;
    assert_converged(dir.path(), &snap, RESTAURANTS);
    assert_eq!(
        snap["accounts"].as_array().map(|a| a.len()),
        Some(1),
        "one account"
    );
    // What the restarted server reloaded from its file survived: nothing stored before the
    // crash was lost or replaced (every pre-crash agent is still the one state names).
    let before: Vec<&str> = snap_at_crash["agents"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["id"].as_str()).collect())
        .unwrap_or_default();
    let state = read_state(dir.path()).to_string();
    for id in &before {
        assert!(state.contains(id), "pre-crash agent {id} is not in state");
    }
    eprintln!(
        "RESTART server held {at_crash:?} at the kill; interrupted apply exit {:?} {:?}; second apply {:?}",
        first.code(),
        first_figures,
        apply_figures(&stdout(&second))
    );
    server.kill();
}
