//! Issue 24: a deposed leader stops at once. Two controllers on PostgreSQL, each behind its own
//! proxy so the server's writes are counted per controller; the leader's lock connection is
//! cut (`pg_terminate_backend`) in the middle of a storm of inserts. After the bound (5 s), the
//! old leader sends no write at all, and the standby, now leading, provisions everything.

mod common;

use std::time::Duration;

use common::controller::*;
use common::db::Engine;
use common::hostile::{Hostile, Reply};
use common::*;

/// Write requests (anything but GET) that went through `proxy`.
fn writes_through(proxy: &Hostile) -> usize {
    proxy.seen().iter().filter(|s| !s.is("GET")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lock_connection_is_cut_stops_writing_within_the_bound() {
    let emu = emulator_with(latency(200), 11).await;
    let proxy_a = Hostile::proxy(&emu.base_url(), |_| Reply::Pass).await;
    let proxy_b = Hostile::proxy(&emu.base_url(), |_| Reply::Pass).await;
    let db = platform(Engine::Postgres).await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &emu.base_url());
    // A fixed pace, so the storm lasts well beyond the bound.
    let pace = ["--parallelism", "8"];
    let a = start(dir.path(), &proxy_a.base_url(), &pace, &[]);
    eventually("A to lead", 30, || a.is_leader()).await;
    let b = start(dir.path(), &proxy_b.base_url(), &pace, &[]);
    eventually("B to stand by", 30, || async {
        b.readyz().await["standby"] == true
    })
    .await;

    let n = 80;
    insert(&db, 0..n).await;
    wait_for("A mid-storm", || writes_through(&proxy_a) >= 30).await;

    // The session holding the leader's advisory lock, found by its application_name.
    let cut = cut_leader_lock(&db).await;
    assert_eq!(cut.as_deref(), Some("1"), "the leader's lock session");

    // The bound: from here on, not one write from A.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let a_at_bound = writes_through(&proxy_a);

    eventually("B to lead", 30, || b.is_leader()).await;
    eventually("every restaurant provisioned", 120, || async {
        for i in 0..n {
            if !provisioned(&db, &emu, i).await {
                return false;
            }
        }
        true
    })
    .await;
    assert_eq!(
        writes_through(&proxy_a),
        a_at_bound,
        "the deposed leader kept writing after the bound\n{}",
        a.log_text()
    );
    assert!(writes_through(&proxy_b) > 0, "B finished the storm");
    // A was alive and held its presence when B took the lock: B waited for it to let go
    // (or for its lease to run out), not a moment less.
    let log = b.log_text();
    assert!(
        log.contains("a previous leader is still running (it holds its presence)"),
        "{log}"
    );
    assert!(!log.contains("no previous leader is running"), "{log}");
}
