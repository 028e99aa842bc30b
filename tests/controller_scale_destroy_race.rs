//! Issue 24: CI's `apply --allow-destroy` racing the controller never deletes a restaurant the
//! controller provisioned meanwhile, and never nulls its written-back row. `apply` reads the
//! restaurants under the state lock, with state, so both are one snapshot.
//!
//! The race is made deterministic: the test holds the state lock while `apply` loads the project
//! (it prints its warnings once loaded) and starts waiting for the lock; `apply` is then paused
//! (SIGSTOP), rows are inserted, the lock is let go, the controller provisions them, and only
//! then is `apply` let go on (SIGCONT).

mod common;

use std::io::Read;

use common::controller::*;
use common::db::Engine;
use common::*;

/// Sends `sig` to the process `pid` (a child of this test).
fn signal(pid: u32, sig: i32) {
    let pid = i32::try_from(pid).expect("pid");
    // SAFETY: a signal to our own child, not yet reaped.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_allow_destroy_keeps_what_the_controller_provisioned_meanwhile() {
    let emu = emulator().await;
    let url = emu.base_url();
    let db = platform(Engine::Sqlite).await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &url);
    insert(&db, 0..2).await;
    let ctl = start(dir.path(), &url, &[], &[]);
    eventually("the first rows provisioned", 30, || async {
        provisioned(&db, &emu, 0).await && provisioned(&db, &emu, 1).await
    })
    .await;

    // The state lock (SQLite state: an OS lock on `<database>.lock`), held by the test.
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(db.dir.path().join("state.db.lock"))
        .expect("lock file");
    lock.lock().expect("take the state lock");

    let err_path = dir.path().join("apply.err");
    let mut apply = command(
        dir.path(),
        &url,
        &[
            "apply",
            "--auto-approve",
            "--allow-destroy",
            "--lock-timeout",
            "120s",
        ],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(&err_path).expect("stderr file"))
    .spawn()
    .expect("spawn apply");
    wait_for("apply to load the project", || {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&err_path) {
            let _ = f.read_to_string(&mut text);
        }
        text.contains("warning:")
    })
    .await;
    // Loaded, and waiting for the lock the test holds: paused there.
    signal(apply.id(), libc::SIGSTOP);

    insert(&db, 2..22).await;
    lock.unlock().expect("let the state lock go");
    eventually("the new rows provisioned by the controller", 60, || async {
        for i in 2..22 {
            if !provisioned(&db, &emu, i).await {
                return false;
            }
        }
        true
    })
    .await;
    let deletes_before = count(&emu, "DELETE /api/agents/:id");

    signal(apply.id(), libc::SIGCONT);
    let status = tokio::task::spawn_blocking(move || apply.wait())
        .await
        .expect("join")
        .expect("apply");
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "{err}");

    assert_eq!(
        count(&emu, "DELETE /api/agents/:id"),
        deletes_before,
        "apply deleted agents the controller provisioned meanwhile\n{err}"
    );
    for i in 0..22 {
        assert!(
            provisioned(&db, &emu, i).await,
            "restaurant {i} lost its agent or its row's id"
        );
    }
    assert_no_duplicates(&emu);
    drop(ctl);
}
