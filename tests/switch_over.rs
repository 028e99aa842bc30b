//! The switch-over (issue 23, item 5): while the platform's handlers still call their own
//! provisioning service, there are two accounts named "AlloResto" and two agents per
//! restaurant, and the platform's handler saves its own agent's ids into the row. sipform keeps
//! working: the account state records is used whatever else carries its name, the platform's
//! copies are listed as duplicates on every plan (in either account), and after one
//! `dedupe --allow-destroy` + `apply` every restaurant has one agent, its row names it, and
//! `plan` runs clean.

mod common;

use common::controller::{insert, platform};
use common::db::Engine;
use common::platform_service::{save_into_row, PlatformService};
use common::*;

async fn both_paths_then_dedupe_and_apply(engine: Engine) {
    let emu = emulator().await;
    let url = emu.base_url();
    let db = platform(engine).await;
    insert(&db, 0..3).await;
    let dir = project_on_table(
        &db,
        TableProject {
            timeout_sec: Some(3),
            state_in_db: false,
            extra: "",
        },
    );
    apply_ok(dir.path(), &url).await;
    let ours: Vec<String> = (0..3)
        .map(|i| {
            common::controller::agent_of(&emu, i).expect("agent")["id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();

    // The platform's path: a second "AlloResto" (two handlers raced), its copies of
    // restaurants 0 and 1 there, and of restaurant 2 in sipform's account (found by name);
    // each handler saves its agent into the row.
    let service = PlatformService::new(&url);
    let second = service.create_account("AlloResto").await;
    let first = service.account_by_name("AlloResto").await;
    for i in 0..3 {
        let account = if i < 2 { &second } else { &first };
        let made = service
            .provision(account, &rid(i), &format!("Restaurant {i}"))
            .await;
        save_into_row(&db, &rid(i), &made).await;
    }
    assert_eq!(agents(&emu).len(), 6, "two agents per restaurant");

    // plan runs (the recorded account is used) and lists every copy, twice.
    for _ in 0..2 {
        let out = run(dir.path(), &url, &["plan"]).await;
        assert!(
            out.status.code() == Some(0) || out.status.code() == Some(2),
            "plan runs with two accounts named AlloResto: {}",
            all_output(&out)
        );
        let text = stdout(&out);
        assert!(
            text.contains("3 restaurants have duplicates"),
            "the platform's copies are listed: {text}"
        );
    }

    let out = run(dir.path(), &url, &["dedupe", "--allow-destroy"]).await;
    expect_code(&out, 0);
    apply_ok(dir.path(), &url).await;

    let left = agents(&emu);
    assert_eq!(left.len(), 3, "one agent per restaurant: {left:#?}");
    for (i, id) in ours.iter().enumerate() {
        assert_eq!(
            column(&db, "agent_id", i).await.as_deref(),
            Some(id.as_str()),
            "row {i} names sipform's agent"
        );
        assert!(
            column(&db, "agent_api_token", i).await.is_some(),
            "row {i} has its token"
        );
    }
    common::controller::assert_no_duplicates(&emu);
    expect_no_changes(dir.path(), &url).await;
    let out = run(dir.path(), &url, &["plan"]).await;
    assert!(
        !stdout(&out).contains("duplicates"),
        "no duplicates left: {}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn both_paths_then_dedupe_and_apply_sqlite() {
    both_paths_then_dedupe_and_apply(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn both_paths_then_dedupe_and_apply_postgres() {
    both_paths_then_dedupe_and_apply(Engine::Postgres).await;
}

/// The same overlap with the controller running: the platform's handler provisions a new
/// restaurant in its second account and saves its agent into the row; the controller still
/// provisions it in the recorded account and keeps the row naming sipform's agent; one
/// `dedupe --allow-destroy` + `apply` leaves one agent per restaurant.
async fn both_paths_beside_the_controller(engine: Engine) {
    use common::controller::{assert_no_duplicates, eventually, install_trigger, start};
    let emu = emulator().await;
    let url = emu.base_url();
    let db = platform(engine).await;
    let dir = project_on_table(
        &db,
        TableProject {
            timeout_sec: Some(3),
            state_in_db: false,
            extra: "",
        },
    );
    install_trigger(dir.path(), &url);
    let mut ctl = start(dir.path(), &url, &[], &[]);
    eventually("the controller to lead", 20, || ctl.is_leader()).await;
    insert(&db, 0..1).await;
    eventually("restaurant 0 provisioned", 20, || {
        common::controller::provisioned(&db, &emu, 0)
    })
    .await;
    let ours = agents(&emu)[0]["accountId"].clone();

    // The platform's POST handler: the row, then its service in a second account, then the
    // row saved with its agent.
    let service = PlatformService::new(&url);
    let second = service.create_account("AlloResto").await;
    insert(&db, 1..2).await;
    let made = service.provision(&second, &rid(1), "Restaurant 1").await;
    save_into_row(&db, &rid(1), &made).await;

    let sipform_agent_in_row = || async {
        let Some(id) = column(&db, "agent_id", 1).await else {
            return false;
        };
        agents(&emu)
            .iter()
            .any(|a| a["id"] == id.as_str() && a["accountId"] == ours)
            && column(&db, "agent_api_token", 1).await.is_some()
    };
    eventually("the row names sipform's agent", 20, sipform_agent_in_row).await;
    ctl.signal(libc::SIGTERM);
    ctl.exited(5).await;

    let out = run(dir.path(), &url, &["dedupe", "--allow-destroy"]).await;
    expect_code(&out, 0);
    apply_ok(dir.path(), &url).await;
    assert_eq!(agents(&emu).len(), 2, "one agent per restaurant");
    assert!(
        sipform_agent_in_row().await,
        "the row still names sipform's agent"
    );
    assert_no_duplicates(&emu);
    expect_no_changes(dir.path(), &url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn both_paths_beside_the_controller_sqlite() {
    both_paths_beside_the_controller(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn both_paths_beside_the_controller_postgres() {
    both_paths_beside_the_controller(Engine::Postgres).await;
}
