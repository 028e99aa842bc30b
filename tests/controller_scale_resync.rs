//! Issue 24: a full resync that scales. Beyond the account-wide lists, one sweep sends at most
//! 1.1 reads per restaurant: phone lines come from the agent list (which carries them, per the
//! contract), subscriptions from the cache (sipform alone writes them); each agent's tools list
//! is the one read left.

mod common;

use common::controller::*;
use common::db::Engine;
use common::*;

/// Reads that name one restaurant's objects (by id, or the lists under one of them).
fn per_restaurant_reads(since: &std::collections::BTreeMap<String, u64>) -> u64 {
    since
        .iter()
        .filter(|(k, _)| k.starts_with("GET ") && k.contains(":id"))
        .map(|(_, v)| *v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sweep_reads_at_most_one_list_per_restaurant() {
    let emu = emulator().await;
    let url = emu.base_url();
    let db = platform(Engine::Sqlite).await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &url);
    let n = 20;
    insert(&db, 0..n).await;
    let token = "sweep-token";
    let ctl = start(
        dir.path(),
        &url,
        &["--resync", "1h"],
        &[("SIPFORM_CONTROLLER_TOKEN", token)],
    );
    eventually("every restaurant provisioned", 60, || async {
        for i in 0..n {
            if !provisioned(&db, &emu, i).await {
                return false;
            }
        }
        true
    })
    .await;
    let unchanged = || async {
        ctl.metric("sipform_controller_reconciles_total{result=\"unchanged\"}")
            .await
            .unwrap_or(0.0)
    };
    eventually("the queue drained", 30, || async {
        ctl.metric("sipform_controller_queue_depth").await == Some(0.0)
    })
    .await;

    let mark = emu.request_counts();
    let before = unchanged().await;
    let (code, body) = ctl.post("/v1/reconcile", Some(token)).await;
    assert_eq!(code, 202, "{body}");
    eventually("the sweep done", 60, || async {
        unchanged().await >= before + n as f64
    })
    .await;

    let since = requests_since(&emu, &mark);
    let lists = since.get("GET /api/agents").copied().unwrap_or(0);
    assert_eq!(lists, 1, "one agent list per sweep: {since:?}");
    let reads = per_restaurant_reads(&since);
    let per_restaurant = reads as f64 / n as f64;
    assert!(
        per_restaurant <= 1.1,
        "{per_restaurant} reads per restaurant per sweep: {since:?}"
    );
    assert_eq!(
        since.get("GET /api/agents/:id/phone-lines"),
        None,
        "phone lines come from the agent list"
    );
    assert!(
        writes_since(&emu, &mark).is_empty(),
        "a sweep of a converged fleet writes nothing"
    );
}
