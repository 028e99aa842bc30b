//! Issue 24: new restaurants never wait behind old work. While every row of the table is
//! updated (the platform's settings page, a migration), a restaurant inserted meanwhile is a
//! creation: it goes ahead of the storm's updates, waiting for the batch in progress only.

mod common;

use common::controller::*;
use common::db::Engine;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_during_a_storm_of_updates_goes_first() {
    let emu = emulator().await;
    let db = platform(Engine::Sqlite).await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &emu.base_url());
    let n = 120;
    insert(&db, 0..n).await;
    let ctl = start(
        dir.path(),
        &emu.base_url(),
        &["--resync", "1h", "--batch-size", "4", "--parallelism", "2"],
        &[],
    );
    eventually("every restaurant provisioned", 120, || async {
        let agents = agents(&emu);
        agents.len() == n
            && agents
                .iter()
                .all(|a| a["tools"].as_array().map(Vec::len) == Some(bundled_tool_count()))
    })
    .await;
    // Slow enough that the storm lasts: each batch of 4 takes a few round trips of 100 ms.
    emu.set_faults(latency(100));
    let puts = || count(&emu, "PUT /api/agents/:id");
    let before = puts();
    db.exec("UPDATE restaurants SET name = name || ' (renamed)'")
        .await;
    wait_for("the storm started", || puts() > before).await;
    insert(&db, n..n + 1).await;
    eventually("the row inserted during the storm provisioned", 60, || {
        provisioned(&db, &emu, n)
    })
    .await;
    let done = puts() - before;
    assert!(
        done < n as u64 / 2,
        "the insert waited for {done} of the storm's {n} updates\n{}",
        ctl.log_text()
    );
}
