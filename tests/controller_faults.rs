//! The controller when things go wrong: the server down while rows are inserted, a kill -9
//! mid-reconcile, the webhook without the token, an invalid configuration on SIGHUP, and CI's
//! `apply` running at the same time.

mod common;

use std::time::Duration;

use common::controller::*;
use common::db::Engine;
use common::*;
use sipform_emulator::{Emulator, EmulatorConfig};

/// The server stopped while 20 rows are inserted: the rows are saved, nothing is lost, and
/// once it is back every restaurant is provisioned exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_while_rows_are_inserted() {
    let port = free_port();
    let data = tempfile::tempdir().expect("tempdir");
    let config = || EmulatorConfig {
        port,
        data: Some(data.path().join("emulator.json")),
        ..EmulatorConfig::default()
    };
    let emu = Emulator::start(config()).await.expect("emulator");
    let url = emu.base_url();
    let db = platform(Engine::Postgres).await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &url);
    let ctl = start(dir.path(), &url, &[], &[]);
    eventually("the controller to lead", 20, || ctl.is_leader()).await;
    insert(&db, 0..1).await;
    eventually("restaurant 0 provisioned", 20, || provisioned(&db, &emu, 0)).await;

    emu.shutdown().await;
    insert(&db, 1..21).await;
    eventually("readyz to report the server down", 20, || async {
        ctl.readyz().await["server"] == false
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 1..21 {
        assert_eq!(column(&db, "agent_id", i).await, None, "row {i}");
    }

    let emu = Emulator::start(config()).await.expect("emulator again");
    eventually(
        "all 21 provisioned after the server returns",
        40,
        || async {
            for i in 0..21 {
                if !provisioned(&db, &emu, i).await {
                    return false;
                }
            }
            true
        },
    )
    .await;
    assert_eq!(agents(&emu).len(), 21);
    assert_no_duplicates(&emu);
    assert!(
        ctl.metric("sipform_controller_reconciles_total{result=\"transient\"}")
            .await
            .unwrap_or(0.0)
            >= 1.0
    );
}

/// kill -9 while reconciling, then a restart: converges, nothing duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_reconcile_then_restart_converges() {
    let emu = emulator_with(latency(20), 7).await;
    let db = platform(Engine::Sqlite).await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &emu.base_url());
    let mut ctl = start(dir.path(), &emu.base_url(), &[], &[]);
    eventually("the controller to lead", 20, || ctl.is_leader()).await;
    insert(&db, 0..10).await;
    wait_for("tool creates under way", || {
        count(&emu, "POST /api/agents/:id/tools") >= 15
    })
    .await;
    ctl.kill9();
    assert!(
        agents(&emu).len() < 10 || tool_count(&emu) < 10 * bundled_tool_count(),
        "killed too late to test anything"
    );

    let ctl = start(dir.path(), &emu.base_url(), &[], &[]);
    eventually("all 10 provisioned after the restart", 40, || async {
        for i in 0..10 {
            if !provisioned(&db, &emu, i).await {
                return false;
            }
        }
        true
    })
    .await;
    // State converges too (an object created just before the kill is adopted, not made
    // twice): a plan comes out empty.
    eventually("state to match the server", 30, || async {
        run(
            dir.path(),
            &emu.base_url(),
            &["plan", "--detailed-exitcode"],
        )
        .await
        .status
        .code()
            == Some(0)
    })
    .await;
    assert_eq!(agents(&emu).len(), 10);
    assert_eq!(tool_count(&emu), 10 * bundled_tool_count());
    assert_no_duplicates(&emu);
    drop(ctl);
}

/// The webhook: without the token or with a bad one, 401 and nothing queued; with it, the
/// restaurant is reconciled. Without the change log, nothing else would have seen the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_needs_the_token() {
    let emu = emulator().await;
    let db = platform(Engine::Sqlite).await;
    let dir = project_on(&db);
    let token = "t0ken-for-the-test-0123456789";
    let ctl = start(
        dir.path(),
        &emu.base_url(),
        &["--resync", "1h"],
        &[("SIPFORM_CONTROLLER_TOKEN", token)],
    );
    eventually("the controller to lead", 20, || ctl.is_leader()).await;
    insert(&db, 0..1).await;
    let one = format!("/v1/restaurants/{}/reconcile", rid(0));
    assert_eq!(ctl.post(&one, None).await.0, 401);
    assert_eq!(ctl.post(&one, Some("wrong")).await.0, 401);
    assert_eq!(
        ctl.post(&one, Some(&format!("{token}x"))).await.0,
        401,
        "a longer token is wrong too"
    );
    assert_eq!(ctl.post("/v1/reconcile", Some("wrong")).await.0, 401);
    assert_eq!(ctl.post("/v1/reload", None).await.0, 401);
    // A bad id is refused before it reaches the queue.
    let (code, body) = ctl
        .post("/v1/restaurants/..%2F..%2Fetc/reconcile", Some(token))
        .await;
    assert_eq!(code, 400, "{body}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(agents(&emu).is_empty(), "nothing was queued");
    assert_eq!(
        ctl.metric("sipform_controller_queue_depth").await,
        Some(0.0)
    );

    let (code, body) = ctl.post(&one, Some(token)).await;
    assert_eq!(code, 202, "{body}");
    eventually("restaurant 0 provisioned", 20, || provisioned(&db, &emu, 0)).await;
    assert!(
        !ctl.log_text().contains(token),
        "the token never reaches the log"
    );
}

/// An invalid tool file on SIGHUP (or POST /v1/reload) is refused and the old configuration
/// keeps running; a valid change of a tool is applied to every restaurant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_reload_keeps_the_old_configuration() {
    let emu = emulator().await;
    let db = platform(Engine::Sqlite).await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &emu.base_url());
    let token = "another-t0ken-for-the-test";
    let ctl = start(
        dir.path(),
        &emu.base_url(),
        &[],
        &[("SIPFORM_CONTROLLER_TOKEN", token)],
    );
    eventually("the controller to lead", 20, || ctl.is_leader()).await;
    insert(&db, 0..1).await;
    eventually("restaurant 0 provisioned", 20, || provisioned(&db, &emu, 0)).await;

    let tool = dir.path().join("tools/end_call.yaml");
    let original = std::fs::read_to_string(&tool).expect("tool file");
    std::fs::write(&tool, "name: end_call\nsortOrder: [not a number\n").expect("write");
    ctl.signal(SIGHUP);
    eventually("the reload refused", 20, || async {
        ctl.metric("sipform_controller_reloads_total{result=\"refused\"}")
            .await
            .unwrap_or(0.0)
            >= 1.0
    })
    .await;
    let (code, body) = ctl.post("/v1/reload", Some(token)).await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("end_call.yaml"),
        "the error names the file: {body}"
    );

    // The old configuration keeps running: a new restaurant gets all its tools.
    insert(&db, 1..2).await;
    eventually("restaurant 1 provisioned", 20, || provisioned(&db, &emu, 1)).await;

    // A valid change of a tool: every restaurant is queued and updated.
    let changed = original.replacen("  Raccroche.", "  Raccroche poliment.", 1);
    assert_ne!(changed, original, "the test edits the description");
    std::fs::write(&tool, &changed).expect("write");
    let mark = writes(&emu);
    let (code, body) = ctl.post("/v1/reload", Some(token)).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"requeuedAll\":true"), "{body}");
    eventually("the tool updated on both agents", 20, || async {
        writes_since(&emu, &mark)
            .get("PUT /api/agents/:id/tools/:toolId")
            .copied()
            .unwrap_or(0)
            >= 2
    })
    .await;
}

/// CI's `apply` while the controller runs, on 200 restaurants: each takes the state lock in
/// turn; no duplicate, and state equals the server (a plan afterwards is empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_concurrently_with_the_controller() {
    let emu = emulator().await;
    let db = platform(Engine::Postgres).await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &emu.base_url());
    let ctl = start(dir.path(), &emu.base_url(), &["--batch-size", "20"], &[]);
    eventually("the controller to lead", 20, || ctl.is_leader()).await;
    insert(&db, 0..200).await;
    let apply = {
        let (d, url) = (dir.path().to_path_buf(), emu.base_url());
        tokio::task::spawn_blocking(move || {
            sipform(
                &d,
                &url,
                &["apply", "--auto-approve", "--lock-timeout", "120s"],
            )
        })
    };
    let out = apply.await.expect("join");
    expect_code(&out, 0);
    eventually("all 200 provisioned", 60, || async {
        agents(&emu).len() == 200 && tool_count(&emu) == 200 * bundled_tool_count()
    })
    .await;
    eventually("every row written back", 30, || async {
        db.text("SELECT CAST(COUNT(*) AS TEXT) FROM restaurants WHERE agent_id IS NULL")
            .await
            .as_deref()
            == Some("0")
    })
    .await;
    assert_no_duplicates(&emu);
    for i in [0, 99, 199] {
        assert!(provisioned(&db, &emu, i).await, "row {i}");
    }
    drop(ctl);
    let out = sipform(
        dir.path(),
        &emu.base_url(),
        &["plan", "--detailed-exitcode"],
    );
    expect_code(&out, 0);
}
