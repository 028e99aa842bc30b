//! Database mode end to end, in SQLite and PostgreSQL: restaurants read from the platform's
//! table, ids written back to its rows, state in the same database.

mod common;

use common::db::{Engine, TestDb};
use common::*;

/// The platform's table with `n` restaurants, SIP on, flags varied.
async fn platform(engine: Engine, n: usize) -> TestDb {
    let db = TestDb::new(engine).await;
    db.create_restaurants("restaurants").await;
    let mut sql = String::new();
    for i in 0..n {
        sql.push_str(&format!(
            "INSERT INTO restaurants (id, name, contact_email, delivery_enabled, reservation_enabled, order_status_enabled, transfer_enabled, transfer_phone_number, sip_enabled, chat_enabled) VALUES ({}, 'Restaurant {i}', 'r{i}@example.com', {}, {}, {}, {}, '+33600000000', true, false);\n",
            db.id_literal(&rid(i)),
            i % 2 == 0,
            i % 3 == 0,
            i % 5 == 0,
            i % 7 == 0
        ));
    }
    db.exec(&sql).await;
    db
}

/// Every row's agent_id names an existing agent of that restaurant, and every agent on the
/// server is named by its row.
async fn assert_rows_match_server(db: &TestDb, emu: &sipform_emulator::EmulatorHandle, n: usize) {
    let agents = agents(emu);
    for i in 0..n {
        let id = column(db, "agent_id", i).await;
        let agent = agents
            .iter()
            .find(|a| a["config"]["restaurantId"] == rid(i).as_str());
        match (id, agent) {
            (Some(id), Some(a)) => {
                assert_eq!(a["id"], id.as_str(), "row {i}");
                assert_eq!(
                    column(db, "agent_api_token", i).await.as_deref(),
                    a["apiToken"].as_str(),
                    "row {i} token"
                );
                assert_eq!(
                    column(db, "final_customer_id", i).await.as_deref(),
                    a["finalCustomerId"].as_str(),
                    "row {i} final customer"
                );
            }
            (None, None) => {}
            (id, a) => panic!(
                "row {i}: agent_id {id:?} but server agent {:?}",
                a.map(|a| &a["id"])
            ),
        }
    }
}

async fn lifecycle(engine: Engine) {
    let emu = emulator().await;
    let db = platform(engine, 3).await;
    let dir = project_on(&db);

    apply_ok(dir.path(), &emu.base_url()).await;
    assert_eq!(agents(&emu).len(), 3);
    assert_eq!(tool_count(&emu), 3 * bundled_tool_count());
    assert_rows_match_server(&db, &emu, 3).await;
    expect_no_changes(dir.path(), &emu.base_url()).await;

    // SIP (and chat) off: the agent stays, inactive; its row keeps its ids.
    db.exec(&format!(
        "UPDATE restaurants SET sip_enabled = false WHERE id = {}",
        db.id_literal(&rid(0))
    ))
    .await;
    apply_ok(dir.path(), &emu.base_url()).await;
    assert_eq!(count(&emu, "DELETE /api/agents/:id"), 0);
    let a0 = agents(&emu)
        .into_iter()
        .find(|a| a["config"]["restaurantId"] == rid(0).as_str())
        .expect("agent 0");
    assert_eq!(a0["isActive"], false);
    assert_rows_match_server(&db, &emu, 3).await;

    // A row deleted: kept without --allow-destroy, deleted with it; nothing to null.
    db.exec(&format!(
        "DELETE FROM restaurants WHERE id = {}",
        db.id_literal(&rid(1))
    ))
    .await;
    let out = apply_ok(dir.path(), &emu.base_url()).await;
    assert!(stdout(&out).contains("--allow-destroy"), "{}", stdout(&out));
    assert_eq!(agents(&emu).len(), 3);
    expect_code(
        &run(
            dir.path(),
            &emu.base_url(),
            &["apply", "--auto-approve", "--allow-destroy"],
        )
        .await,
        0,
    );
    assert_eq!(agents(&emu).len(), 2);
    assert_eq!(final_customers(&emu).len(), 2);
    assert_eq!(
        db.text("SELECT CAST(COUNT(*) AS TEXT) FROM restaurants")
            .await
            .as_deref(),
        Some("2")
    );
    expect_no_changes(dir.path(), &emu.base_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_apply_from_the_table_writes_ids_back_deactivates_and_destroys() {
    lifecycle(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_apply_from_the_table_writes_ids_back_deactivates_and_destroys() {
    lifecycle(Engine::Postgres).await;
}

async fn long_ids_refused(engine: Engine) {
    let emu = sipform_emulator::Emulator::start(sipform_emulator::EmulatorConfig {
        id_suffix: "x".into(),
        ..Default::default()
    })
    .await
    .expect("emulator");
    let db = platform(engine, 2).await;
    let dir = project_on(&db);
    let out = run(dir.path(), &emu.base_url(), &["apply", "--auto-approve"]).await;
    expect_code(&out, 1);
    let all = all_output(&out);
    assert!(all.contains("37") && all.contains("36"), "{all}");
    for i in 0..2 {
        assert_eq!(column(&db, "final_customer_id", i).await, None);
        assert_eq!(column(&db, "agent_id", i).await, None);
    }
    // Nothing reached state either.
    let out = run(dir.path(), &emu.base_url(), &["state", "list"]).await;
    assert!(!stdout(&out).contains(&rid(0)), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_37_character_id_is_refused_before_writing() {
    long_ids_refused(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_37_character_id_is_refused_before_writing() {
    long_ids_refused(Engine::Postgres).await;
}

async fn killed_mid_apply(engine: Engine) {
    let n = 30;
    let emu = emulator_with(latency(20), 3).await;
    let db = platform(engine, n).await;
    let dir = project_on(&db);
    kill_apply_after(dir.path(), &emu, 120).await;
    assert!(
        tool_count(&emu) < bundled_tool_count() * n,
        "the kill must land mid-apply"
    );

    emu.set_faults(Default::default());
    apply_ok(dir.path(), &emu.base_url()).await;
    assert_eq!(agents(&emu).len(), n);
    assert_eq!(final_customers(&emu).len(), n);
    assert_eq!(tool_count(&emu), bundled_tool_count() * n);
    assert_rows_match_server(&db, &emu, n).await;
    expect_no_changes(dir.path(), &emu.base_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_9_mid_apply_then_apply_again_leaves_rows_and_server_agreeing() {
    killed_mid_apply(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill_9_mid_apply_then_apply_again_leaves_rows_and_server_agreeing() {
    killed_mid_apply(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_applies_on_one_postgres_state_never_overlap() {
    let n = 15;
    let emu = emulator_with(latency(30), 4).await;
    let db = platform(Engine::Postgres, n).await;
    let dir = project_on(&db);
    assert_applies_never_overlap(dir.path(), &emu).await;
    assert_eq!(agents(&emu).len(), n);
    assert_rows_match_server(&db, &emu, n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_reads_the_table_and_names_a_missing_column() {
    let emu = emulator().await;
    let db = platform(Engine::Sqlite, 3).await;
    let dir = project_on(&db);
    let out = run(dir.path(), &emu.base_url(), &["validate"]).await;
    expect_code(&out, 0);
    assert!(stdout(&out).contains("3 restaurants"), "{}", stdout(&out));
    db.exec("ALTER TABLE restaurants DROP COLUMN chat_title")
        .await;
    let out = run(dir.path(), &emu.base_url(), &["validate"]).await;
    expect_code(&out, 1);
    assert!(stderr(&out).contains("chat_title"), "{}", stderr(&out));
    assert!(
        emu.request_counts().is_empty(),
        "validate never contacts the server"
    );
}
