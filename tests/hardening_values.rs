//! Issue 25, item 15: tenant values of the wrong type are never coerced. A call duration that
//! is not a number (SQLite lets `'abc'` into an integer column), a NUL byte in a name, a voice
//! the server does not know and a transfer number that is not one: each is an error naming the
//! row and the column, that restaurant is skipped, and the others are planned and applied.

mod common;

use common::db::{Engine, TestDb};
use common::*;
use sipform_emulator::EmulatorHandle;

const GOOD_A: &str = "00000000-0000-4000-8000-00000000000a";
const GOOD_Z: &str = "00000000-0000-4000-8000-00000000000f";

/// A project copy whose inventory is `db`'s table (state in a file).
const ON_TABLE: TableProject = TableProject {
    timeout_sec: Some(3),
    state_in_db: false,
    extra: "",
};

fn bad(i: u8) -> String {
    format!("00000000-0000-4000-8000-00000000000{i}")
}

fn restaurant_ids(emu: &EmulatorHandle) -> Vec<String> {
    let mut ids: Vec<String> = agents(emu)
        .iter()
        .filter_map(|a| a["config"]["restaurantId"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// Two good rows around one bad row per `(column, SQL value)`; the bad rows' ids are
/// `bad(1)`, `bad(2)`, … in order.
async fn platform(engine: Engine, bad_values: &[(&str, &str)]) -> TestDb {
    let db = TestDb::new(engine).await;
    db.create_restaurants("restaurants").await;
    let mut sql = String::new();
    for id in [GOOD_A, GOOD_Z] {
        sql.push_str(&format!(
            "INSERT INTO restaurants (id, name, sip_enabled) VALUES ({}, 'Chez {}', true);\n",
            db.id_literal(id),
            &id[id.len() - 1..]
        ));
    }
    for (i, (column, value)) in bad_values.iter().enumerate() {
        let id = bad(u8::try_from(i + 1).expect("few"));
        sql.push_str(&format!(
            "INSERT INTO restaurants (id, name, sip_enabled, {column}) VALUES ({}, 'Bad {i}', true, {value});\n",
            db.id_literal(&id),
        ));
    }
    db.exec(&sql).await;
    db
}

/// Plans and applies: exit 1 (a restaurant was skipped), each bad row named with its column
/// and reason, only the good rows provisioned.
async fn only_good_rows_applied(db: &TestDb, expected: &[(&str, &str)]) {
    let emu = emulator().await;
    let dir = project_on_table(db, ON_TABLE);
    let url = emu.base_url();
    let out = run(dir.path(), &url, &["plan"]).await;
    expect_code(&out, 1);
    let err = stderr(&out);
    for (i, (column, why)) in expected.iter().enumerate() {
        let id = bad(u8::try_from(i + 1).expect("few"));
        assert!(
            err.contains(&format!("table restaurants, row id={id}: {column}:"))
                && err.contains(why),
            "row {id}, column {column}: {why}\n{err}"
        );
    }
    let out = run(dir.path(), &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains(&format!("{} restaurants skipped", expected.len())),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        restaurant_ids(&emu),
        [GOOD_A, GOOD_Z],
        "{}",
        all_output(&out)
    );
    let sent = emu.snapshot().to_string();
    for needle in ["robot-9000", "call me", "\\u0000"] {
        assert!(!sent.contains(needle), "{needle} reached the server");
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_values_of_the_wrong_type_skip_their_row_only() {
    let db = platform(
        Engine::Sqlite,
        &[
            ("max_call_duration_sec", "'abc'"),
            ("chat_title", "'Chez' || char(0) || 'B'"),
            ("ai_voice", "'robot-9000'"),
            ("transfer_phone_number", "'call me'"),
        ],
    )
    .await;
    // The name itself with a NUL byte, too.
    db.exec(&format!(
        "INSERT INTO restaurants (id, name, sip_enabled) VALUES ('{}', 'Nul' || char(0) || 'Name', true);",
        bad(5)
    ))
    .await;
    only_good_rows_applied(
        &db,
        &[
            ("max_call_duration_sec", "\"abc\" is not a whole number"),
            ("chat_title", "NUL byte"),
            ("ai_voice", "not a voice the server knows"),
            ("transfer_phone_number", "not a phone number in E.164 form"),
            ("name", "NUL byte"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_values_of_the_wrong_kind_skip_their_row_only() {
    let db = platform(
        Engine::Postgres,
        &[
            ("max_call_duration_sec", "-5"),
            ("ai_voice", "'robot-9000'"),
            ("transfer_phone_number", "'call me'"),
        ],
    )
    .await;
    only_good_rows_applied(
        &db,
        &[
            ("max_call_duration_sec", "-5 is not a number of seconds"),
            ("ai_voice", "not a voice the server knows"),
            ("transfer_phone_number", "not a phone number in E.164 form"),
        ],
    )
    .await;
}
