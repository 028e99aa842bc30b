//! SIGINT and SIGTERM during apply (issue 14, #14): the first signal stops new work, lets the
//! requests in flight finish and be recorded, prints the summary and exits 128 + the signal's
//! number; a second one exits at once. Either way state stays consistent and the next apply
//! converges without a duplicate.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Child, ExitStatus};

use common::*;
use sipform_emulator::EmulatorHandle;

const RESTAURANTS: usize = 40;
const TOOL_POSTS: &str = "POST /api/agents/:id/tools";

/// Starts `apply --auto-approve` of [`RESTAURANTS`] restaurants, its output in files (the
/// plan is larger than a pipe's buffer, and nobody reads a pipe while it runs), and waits
/// until tool creates are under way.
async fn apply_under_way(dir: &Path, emu: &EmulatorHandle) -> Child {
    generate_restaurants(dir, RESTAURANTS);
    let out = File::create(dir.join("apply.out")).expect("apply.out");
    let err = File::create(dir.join("apply.err")).expect("apply.err");
    let mut child = command(dir, &emu.base_url(), &["apply", "--auto-approve"])
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn");
    wait_for("tool creates under way", || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("apply ended before the signal: {status}");
        }
        count(emu, TOOL_POSTS) >= 3
    })
    .await;
    child
}

fn send(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill");
}

async fn wait(mut child: Child) -> ExitStatus {
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait")
}

fn output(dir: &Path) -> (String, String) {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    (read("apply.out"), read("apply.err"))
}

/// A second apply finishes the job: every restaurant has one agent, one final customer and
/// its tools, nothing twice, and state names exactly the server's objects.
async fn converges(dir: &Path, emu: &EmulatorHandle) {
    apply_ok(dir, &emu.base_url()).await;
    assert_converged(dir, &emu.snapshot(), RESTAURANTS);
    assert_state_matches_server(dir, emu);
    let again = run(dir, &emu.base_url(), &["plan", "--detailed-exitcode"]).await;
    expect_code(&again, 0);
}

async fn first_signal_stops_cleanly(signal: libc::c_int, name: &str, code: i32) {
    let emu = emulator_with(latency(20), 7).await;
    let dir = project_copy();
    let child = apply_under_way(dir.path(), &emu).await;
    send(&child, signal);
    let status = wait(child).await;
    let (out, err) = output(dir.path());
    assert_eq!(
        status.code(),
        Some(code),
        "exit status {status}\n--- stdout (tail)\n{}\n--- stderr\n{err}",
        out.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );

    // The summary is printed, and what was held back is not reported as a failure.
    let summary = out
        .lines()
        .rev()
        .find(|l| l.starts_with("Apply "))
        .unwrap_or_else(|| panic!("no summary:\n{out}"));
    assert!(summary.starts_with("Apply incomplete: "), "{summary}");
    assert!(
        summary.contains("not started") || summary.contains("stopped part-way"),
        "{summary}"
    );
    assert!(summary.contains(" 0 failed"), "{summary}");
    assert!(apply_figures(&out).is_some(), "{summary}");
    assert!(!out.contains("FAILED"), "{out}");
    assert!(!err.contains("FAILED") && !err.contains("WARN"), "{err}");
    assert!(err.contains(&format!("Interrupted by {name}")), "{err}");

    // It stopped early: far fewer objects than the whole job.
    let (agents, fcs, tools) = snapshot_counts(&emu.snapshot());
    assert!(
        agents + fcs + tools < RESTAURANTS * 14 / 2,
        "stopped late: {agents} agents, {fcs} final customers, {tools} tools"
    );
    // Everything that reached the server is in state, and only that.
    assert_state_matches_server(dir.path(), &emu);

    converges(dir.path(), &emu).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_new_work_records_what_was_in_flight_and_exits_143() {
    first_signal_stops_cleanly(libc::SIGTERM, "SIGTERM", 143).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_new_work_records_what_was_in_flight_and_exits_130() {
    first_signal_stops_cleanly(libc::SIGINT, "SIGINT", 130).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once_and_the_next_apply_converges() {
    let emu = emulator_with(latency(20), 11).await;
    let dir = project_copy();
    let child = apply_under_way(dir.path(), &emu).await;
    // From now on every answer takes 5 s, so an orderly stop would take that long.
    emu.set_faults(latency(5_000));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    send(&child, libc::SIGINT);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    send(&child, libc::SIGINT);
    let status = wait(child).await;
    let (_, err) = output(dir.path());
    assert_eq!(status.code(), Some(130), "{status}\n{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "did not exit at once: {:?}",
        started.elapsed()
    );
    assert!(err.contains("exiting now"), "{err}");
    // What the killed run had in flight is adopted, not made twice.
    emu.set_faults(latency(0));
    converges(dir.path(), &emu).await;
}
