//! Issue 24: one restaurant whose agent answers 500 forever holds nobody. It backs off in the
//! queue (not inside a batch), another restaurant inserted meanwhile is provisioned, and
//! `/readyz` stays 200 throughout: readiness follows the controller, the feed and the server,
//! never one tenant. A retry sends each request once (no quick retry inside its batch).

mod common;

use std::sync::{Arc, Mutex};

use common::controller::*;
use common::db::Engine;
use common::hostile::Hostile;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_tenant_holds_nobody_and_readiness_stays_up() {
    let emu = emulator().await;
    // The agent named here answers 500 to every call, forever.
    let (proxy, bad) = Hostile::failing_for(&emu.base_url()).await;
    let url = proxy.base_url();
    let failed_calls = |id: &str| {
        proxy
            .seen()
            .iter()
            .filter(|s| s.route().contains(id))
            .count()
    };

    let db = platform(Engine::Sqlite).await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &url);
    insert(&db, 0..1).await;
    let ctl = start(dir.path(), &url, &[], &[]);
    eventually("restaurant 0 provisioned", 30, || provisioned(&db, &emu, 0)).await;
    eventually("ready", 30, || async {
        ctl.get("/readyz").await.is_some_and(|(c, _)| c == 200)
    })
    .await;

    // Readiness, polled from now on.
    let codes: Arc<Mutex<Vec<u16>>> = Arc::default();
    let poll_codes = codes.clone();
    let readyz = ctl.url("/readyz");
    let poller = tokio::spawn(async move {
        loop {
            let code = match reqwest::get(&readyz).await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            poll_codes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(code);
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    });

    let agent0 = agent_of(&emu, 0).expect("agent 0")["id"]
        .as_str()
        .expect("agent id")
        .to_string();
    *bad.lock().unwrap_or_else(|e| e.into_inner()) = Some(agent0.clone());
    db.exec(&format!(
        "UPDATE restaurants SET name = 'Renamed 0' WHERE id = {}",
        db.id_literal(&rid(0))
    ))
    .await;
    let retries = |ctl: &Ctl| ctl.log_text().matches("will retry").count();
    // The client's own quick retries ("retrying in …") happen in the first attempt only: a
    // retry from the queue sends each request once, its backoff is the queue's.
    let quick_retries = |ctl: &Ctl| ctl.log_text().matches("retrying in").count();
    eventually("restaurant 0's reconcile to fail once", 60, || async {
        retries(&ctl) >= 1
    })
    .await;
    let quick_after_first = quick_retries(&ctl);
    eventually("restaurant 0's reconcile to fail twice", 60, || async {
        retries(&ctl) >= 2
    })
    .await;
    assert!(failed_calls(&agent0) >= 2, "its agent's calls failed");

    insert(&db, 1..2).await;
    eventually("restaurant 1 provisioned meanwhile", 30, || {
        provisioned(&db, &emu, 1)
    })
    .await;
    let so_far = retries(&ctl);
    eventually("restaurant 0 still retried, with backoff", 60, || async {
        retries(&ctl) > so_far
    })
    .await;
    poller.abort();
    assert_eq!(
        quick_retries(&ctl),
        quick_after_first,
        "a queue retry was retried inside its batch\n{}",
        ctl.log_text()
    );

    let codes = codes.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(codes.len() >= 5, "readyz polled: {codes:?}");
    assert!(
        codes.iter().all(|c| *c == 200),
        "readyz left 200 because of one tenant: {codes:?}\n{}",
        ctl.log_text()
    );
}
