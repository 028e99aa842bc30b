//! SIGTERM while the server hangs (issue 23, the SIGTERM bullet): the controller exits within
//! its short grace instead of waiting out request timeouts and retries (systemd's and compose's
//! stop timeouts are 10 s), and the create it abandoned is re-read at the next start, as after a
//! crash: no duplicate. The time is measured and printed, never asserted beyond a generous
//! bound (speed goes in benches).

mod common;

use std::time::{Duration, Instant};

use common::controller::*;
use common::db::Engine;
use common::*;
use sipform_emulator::{Faults, Latency};

async fn sigterm_while_the_server_hangs(engine: Engine) {
    let emu = emulator().await;
    let db = platform(engine).await;
    // The default request timeout: before the fix the exit waited for it, and its retries.
    let dir = project_on_table(
        &db,
        TableProject {
            timeout_sec: Some(10),
            state_in_db: true,
            extra: "",
        },
    );
    install_trigger(dir.path(), &emu.base_url());
    let mut ctl = start(dir.path(), &emu.base_url(), &[], &[]);
    eventually("the controller to lead", 20, || ctl.is_leader()).await;
    insert(&db, 0..1).await;
    eventually("restaurant 0 provisioned", 20, || provisioned(&db, &emu, 0)).await;

    // The server hangs: every request waits a minute.
    emu.set_faults(Faults {
        latency: Some(Latency {
            fixed_ms: 60_000,
            jitter_ms: 0,
        }),
        ..Faults::default()
    });
    insert(&db, 1..2).await;
    // The emulator counts a request once answered: give the controller (polling every
    // 100 ms) time to send its first one, then check it is still waiting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        ctl.child.try_wait().expect("try_wait").is_none(),
        "the controller is running"
    );

    let sent = Instant::now();
    ctl.signal(libc::SIGTERM);
    let status = ctl.exited(5).await;
    let took = sent.elapsed();
    eprintln!("controller exit after SIGTERM with the server hanging: {took:?}");
    assert!(status.success(), "exit code {status:?}\n{}", ctl.log_text());
    assert!(
        ctl.log_text().contains("abandoned"),
        "the log says what was abandoned: {}",
        ctl.log_text()
    );

    // The next start, the server back: restaurant 1 ends with one agent, nothing twice.
    emu.set_faults(Faults::default());
    let ctl = start(dir.path(), &emu.base_url(), &[], &[]);
    eventually("the controller to lead again", 20, || ctl.is_leader()).await;
    eventually("restaurant 1 provisioned", 20, || provisioned(&db, &emu, 1)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_no_duplicates(&emu);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_the_server_hangs_sqlite() {
    sigterm_while_the_server_hangs(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_the_server_hangs_postgres() {
    sigterm_while_the_server_hangs(Engine::Postgres).await;
}
