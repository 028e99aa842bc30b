//! The controller keeps state between batches and reuses it while the backend's serial says
//! nobody committed since (issue 24: a batch reads one meta row, not every restaurant's
//! state). Another writer's commit in between (here `sipform suspend`, from the CLI) bumps
//! the serial, and the next batch reads state again and sees it.

mod common;
use common::controller::*;
use common::db::Engine;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_by_another_writer_between_batches_is_seen() {
    let emu = emulator().await;
    let db = platform(Engine::Postgres).await;
    let dir = project_on(&db);
    insert(&db, 0..2).await;
    install_trigger(dir.path(), &emu.base_url());
    let ctl = start(dir.path(), &emu.base_url(), &[], &[]);
    eventually("both provisioned", 60, || async {
        provisioned(&db, &emu, 0).await && provisioned(&db, &emu, 1).await
    })
    .await;
    // A batch of the controller's own, so the state it keeps is its last commit's.
    db.exec(&format!(
        "UPDATE restaurants SET name = 'Renamed once' WHERE id = {}",
        db.id_literal(&rid(0))
    ))
    .await;
    eventually("the first rename", 60, || async {
        agent_of(&emu, 0).is_some_and(|a| a["name"] == "Renamed once")
    })
    .await;

    // Another writer commits: restaurant 1 suspended (state's serial bumped).
    let out = sipform(
        dir.path(),
        &emu.base_url(),
        &["suspend", "--restaurant", &rid(1)],
    );
    expect_code(&out, 0);
    db.exec(&format!(
        "UPDATE restaurants SET name = 'Renamed twice' WHERE id IN ({}, {})",
        db.id_literal(&rid(0)),
        db.id_literal(&rid(1))
    ))
    .await;
    eventually("the second rename of restaurant 0", 60, || async {
        agent_of(&emu, 0).is_some_and(|a| a["name"] == "Renamed twice")
    })
    .await;
    eventually("restaurant 1 reported suspended", 30, || async {
        let Some((_, body)) = ctl.get("/v1/status").await else {
            return false;
        };
        let report: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        report["restaurants"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["id"] == rid(1).as_str() && r["status"] == "suspended")
    })
    .await;
    assert_eq!(
        agent_of(&emu, 1).map(|a| a["name"].clone()),
        Some(serde_json::Value::String("Restaurant 1".into())),
        "a suspended restaurant was changed from state kept across the suspension"
    );
}
