//! Issue 24: a restart, a failover or a lock blip does not force a full re-read of the server
//! when the cache and state are fresh. State stamps when each restaurant was last checked (its
//! revision record's `at`); a new leadership reads the account-wide lists once and schedules
//! each restaurant one resync interval after its last check, instead of re-reading every one
//! at once; a lock blip that keeps the process reads nothing when nobody wrote state
//! meanwhile (its serial says so).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::controller::*;
use common::db::{Engine, TestDb};
use common::*;
use sipform_emulator::EmulatorHandle;

/// Reads that name one restaurant's objects (by id, or the lists under one of them).
fn per_restaurant_reads(since: &BTreeMap<String, u64>) -> u64 {
    since
        .iter()
        .filter(|(k, _)| k.starts_with("GET ") && k.contains(":id"))
        .map(|(_, v)| *v)
        .sum()
}

/// Restaurants `0..n` provisioned by a controller started on `dir` with `flags`, its queue
/// drained.
async fn provisioned_fleet(
    db: &TestDb,
    dir: &Path,
    emu: &EmulatorHandle,
    n: usize,
    flags: &[&str],
) -> Ctl {
    insert(db, 0..n).await;
    let ctl = start(dir, &emu.base_url(), flags, &[]);
    eventually("every restaurant provisioned", 90, || async {
        for i in 0..n {
            if !provisioned(db, emu, i).await {
                return false;
            }
        }
        true
    })
    .await;
    eventually("the queue drained", 30, || async {
        ctl.metric("sipform_controller_queue_depth").await == Some(0.0)
    })
    .await;
    ctl
}

/// The platform's table with the change trigger, and a project on it.
async fn fleet(engine: Engine, emu: &EmulatorHandle) -> (TestDb, tempfile::TempDir) {
    let db = platform(engine).await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &emu.base_url());
    (db, dir)
}

/// Provisioned: the reads it took since `mark` are only the account-wide lists and the new
/// restaurant's own, never one per restaurant of the fleet.
fn assert_only_lists_and_the_new_one(
    emu: &EmulatorHandle,
    mark: &BTreeMap<String, u64>,
    n: usize,
    log: &str,
) {
    let since = requests_since(emu, mark);
    let reads = per_restaurant_reads(&since);
    assert!(
        reads <= 3,
        "{reads} per-restaurant reads for a fleet of {n} checked just now: {since:?}\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_fresh_state_reads_the_lists_only_and_provisions_a_new_row_at_once() {
    let emu = emulator().await;
    let (db, dir) = fleet(Engine::Sqlite, &emu).await;
    let n = 20;
    let flags = ["--resync", "1h"];
    let ctl = provisioned_fleet(&db, dir.path(), &emu, n, &flags).await;
    ctl.signal(SIGTERM);
    let mut ctl = ctl;
    assert!(ctl.exited(30).await.success(), "{}", ctl.log_text());

    let mark = emu.request_counts();
    let token = "fresh-token";
    let again = start(
        dir.path(),
        &emu.base_url(),
        &flags,
        &[("SIPFORM_CONTROLLER_TOKEN", token)],
    );
    eventually("the restarted controller leads", 30, || again.is_leader()).await;
    insert(&db, n..n + 1).await;
    eventually("the row inserted after the restart provisioned", 30, || {
        provisioned(&db, &emu, n)
    })
    .await;
    // Long enough for a burst of the fleet's reads to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let since = requests_since(&emu, &mark);
    assert_eq!(
        since.get("GET /api/agents").copied(),
        Some(1),
        "the account-wide lists are read once at start: {since:?}"
    );
    assert_only_lists_and_the_new_one(&emu, &mark, n, &again.log_text());
    assert!(
        again.log_text().contains("sweep resumed: 20 of 20"),
        "{}",
        again.log_text()
    );
    // Asked for, a full reconcile reads everyone now, turns or not.
    let mark = emu.request_counts();
    let (code, body) = again.post("/v1/reconcile", Some(token)).await;
    assert_eq!(code, 202, "{body}");
    eventually("every restaurant read again", 30, || async {
        per_restaurant_reads(&requests_since(&emu, &mark)) >= n as u64
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_blip_with_no_other_writer_reads_nothing_again() {
    let emu = emulator().await;
    let (db, dir) = fleet(Engine::Postgres, &emu).await;
    let n = 20;
    let ctl = provisioned_fleet(&db, dir.path(), &emu, n, &["--resync", "1h"]).await;
    // One more batch: the state the controller keeps between batches is a copy it can check
    // (a database's serial) from the second batch of a new history on.
    insert(&db, n..n + 1).await;
    eventually("one more restaurant provisioned", 30, || {
        provisioned(&db, &emu, n)
    })
    .await;
    let n = n + 1;

    let mark = emu.request_counts();
    // The session holding the leader's advisory lock, found by its application_name.
    let cut = cut_leader_lock(&db).await;
    assert_eq!(cut.as_deref(), Some("1"), "the leader's lock session");
    eventually("the controller to see its lock lost", 30, || async {
        ctl.log_text().contains("lost the leader lock")
    })
    .await;
    eventually("the controller leads again", 30, || ctl.is_leader()).await;
    insert(&db, n..n + 1).await;
    eventually("the row inserted after the blip provisioned", 30, || {
        provisioned(&db, &emu, n)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let since = requests_since(&emu, &mark);
    assert_eq!(
        since.get("GET /api/agents"),
        None,
        "nobody wrote meanwhile: the cache is still the server's, no list is read: {since:?}\n{}",
        ctl.log_text()
    );
    assert_only_lists_and_the_new_one(&emu, &mark, n, &ctl.log_text());
}

/// Each restaurant's last check, as state stamps it (`revision.at`), by restaurant.
async fn checked_at(db: &TestDb) -> BTreeMap<String, String> {
    let text = db
        .text(
            "SELECT string_agg(restaurant_id || ' ' || revision, E'\\n' ORDER BY restaurant_id) \
             FROM sipform_state_restaurants",
        )
        .await
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (id, json) = l.split_once(' ')?;
            let v: serde_json::Value = serde_json::from_str(json).ok()?;
            Some((id.to_string(), v["at"].as_str()?.to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_stamps_each_check_in_state() {
    let emu = emulator().await;
    let (db, dir) = fleet(Engine::Postgres, &emu).await;
    let n = 10;
    let ctl = provisioned_fleet(&db, dir.path(), &emu, n, &["--resync", "3s"]).await;
    let first = checked_at(&db).await;
    assert_eq!(first.len(), n, "each restaurant's revision is recorded");
    let mark = emu.request_counts();
    // A sweep of a converged fleet writes nothing to the server, and stamps every check.
    eventually("every restaurant stamped by a later sweep", 30, || async {
        let now = checked_at(&db).await;
        first
            .iter()
            .all(|(id, at)| now.get(id).is_some_and(|t| t > at))
    })
    .await;
    assert!(writes_since(&emu, &mark).is_empty(), "{}", ctl.log_text());
}
