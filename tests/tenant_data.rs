//! Restaurants are tenant data (issue 14, items 15 and 16): a value from the inventory never
//! becomes a server expression, an id that is not the platform's UUID never reaches a request,
//! and one bad restaurant is reported and skipped while the others are planned and applied
//! (plan and apply still exit 1, so CI notices).

mod common;

use std::path::Path;

use common::db::{Engine, TestDb};
use common::*;
use sipform_emulator::EmulatorHandle;

const GOOD_A: &str = "00000000-0000-4000-8000-00000000000a";
const BAD: &str = "00000000-0000-4000-8000-00000000000b";
const GOOD_C: &str = "00000000-0000-4000-8000-00000000000c";

/// The platform's table (SQLite) with three restaurants, SIP on; the middle one named `name`.
async fn platform(middle_name: &str) -> TestDb {
    let db = TestDb::new(Engine::Sqlite).await;
    db.create_restaurants("restaurants").await;
    let mut sql = String::new();
    for (id, name) in [(GOOD_A, "Chez A"), (BAD, middle_name), (GOOD_C, "Chez C")] {
        sql.push_str(&format!(
            "INSERT INTO restaurants (id, name, sip_enabled) VALUES ('{id}', '{}', true);\n",
            name.replace('\'', "''")
        ));
    }
    db.exec(&sql).await;
    db
}

/// A project copy whose inventory is `db`'s table (state in a file).
const ON_TABLE: TableProject = TableProject {
    timeout_sec: Some(3),
    state_in_db: false,
    extra: "",
};

fn restaurant_ids(emu: &EmulatorHandle) -> Vec<String> {
    let mut ids: Vec<String> = agents(emu)
        .iter()
        .map(|a| {
            a["config"]["restaurantId"]
                .as_str()
                .unwrap_or("?")
                .to_string()
        })
        .collect();
    ids.sort();
    ids
}

/// Nothing the server holds, and no path it was asked for, carries `needle`.
async fn never_sent(emu: &EmulatorHandle, needle: &str) {
    let snapshot = emu.snapshot().to_string();
    assert!(!snapshot.contains(needle), "{needle:?} reached the server");
    let log = admin_get(&emu.base_url(), "requests").await;
    for e in log["log"].as_array().cloned().unwrap_or_default() {
        let path = e["path"].as_str().unwrap_or_default();
        assert!(
            !path.contains(needle),
            "{needle:?} in a request path: {path}"
        );
    }
}

async fn row_agent_id(db: &TestDb, id: &str) -> Option<String> {
    db.text(&format!(
        "SELECT agent_id FROM restaurants WHERE id = '{id}'"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_whose_name_is_an_expression_is_skipped_and_the_others_applied() {
    let emu = emulator().await;
    let db = platform("={{callerPhone}}").await;
    let dir = project_on_table(&db, ON_TABLE);
    let url = emu.base_url();

    let out = run(dir.path(), &url, &["plan"]).await;
    expect_code(&out, 1);
    let (plan, err) = (stdout(&out), stderr(&out));
    assert!(plan.contains("Chez A") && plan.contains("Chez C"), "{plan}");
    assert!(!plan.contains("callerPhone}}\""), "{plan}");
    assert!(
        err.contains(&format!("table restaurants, row id={BAD}: name:"))
            && err.contains("starts with `=`")
            && err.contains("agent.name")
            && err.contains("1 restaurant skipped"),
        "{err}"
    );

    let out = run(dir.path(), &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 1);
    assert_eq!(restaurant_ids(&emu), [GOOD_A, GOOD_C]);
    assert!(row_agent_id(&db, GOOD_A).await.is_some());
    assert!(row_agent_id(&db, GOOD_C).await.is_some());
    assert_eq!(row_agent_id(&db, BAD).await, None);
    // The whole value as a JSON string (the template's own externalSessionUrl holds the text).
    never_sent(&emu, "\"={{callerPhone}}\"").await;
    assert!(
        stderr(&out).contains("1 restaurant skipped"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_restaurant_is_left_as_it_is_never_destroyed() {
    let emu = emulator().await;
    let db = platform("Chez B").await;
    let dir = project_on_table(&db, ON_TABLE);
    let url = emu.base_url();
    apply_ok(dir.path(), &url).await;
    assert_eq!(restaurant_ids(&emu), [GOOD_A, BAD, GOOD_C]);

    // The tenant renames it to an expression: it is skipped, not updated, not deleted.
    db.exec(&format!(
        "UPDATE restaurants SET name = '={{{{callerPhone}}}}' WHERE id = '{BAD}'"
    ))
    .await;
    let out = run(
        dir.path(),
        &url,
        &["apply", "--auto-approve", "--allow-destroy"],
    )
    .await;
    expect_code(&out, 1);
    assert_eq!(
        restaurant_ids(&emu),
        [GOOD_A, BAD, GOOD_C],
        "{}",
        stdout(&out)
    );
    let names: Vec<String> = agents(&emu)
        .iter()
        .map(|a| a["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(names.contains(&"Chez B".to_string()), "{names:?}");
    // The whole value as a JSON string (the template's own externalSessionUrl holds the text).
    never_sent(&emu, "\"={{callerPhone}}\"").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_whose_chat_title_is_an_expression_is_skipped() {
    let emu = emulator().await;
    let dir = project_copy();
    let file = dir.path().join("restaurants/le-bistrot-du-port.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    let text = text.replace(
        "chat_title: Réservez au Bistrot du Port",
        "chat_title: \"=Bonjour {{callerPhone}}\"",
    );
    std::fs::write(&file, text).expect("write");
    let url = emu.base_url();

    let out = run(dir.path(), &url, &["plan"]).await;
    expect_code(&out, 1);
    let (plan, err) = (stdout(&out), stderr(&out));
    assert!(
        plan.contains("Pizzeria Napoli") && plan.contains("Sushi Kyoto"),
        "{plan}"
    );
    assert!(!plan.contains("Bistrot"), "{plan}");
    assert!(
        err.contains("restaurants/le-bistrot-du-port.yaml:13:1: chat_title:")
            && err.contains("agent.chatTitle"),
        "{err}"
    );

    let out = run(dir.path(), &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 1);
    assert_eq!(agents(&emu).len(), 2);
    never_sent(&emu, "Bonjour").await;

    // validate still fails on it, naming the same place.
    let out = run(dir.path(), &url, &["validate"]).await;
    expect_code(&out, 1);
    assert!(stderr(&out).contains("le-bistrot-du-port.yaml:13:1"));
}

/// A restaurant file next to the bundled three.
fn add_restaurant(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join("restaurants").join(file), text).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_id_that_is_not_a_uuid_is_skipped_and_never_sent() {
    let emu = emulator().await;
    let dir = project_copy();
    add_restaurant(
        dir.path(),
        "zz-bad-id.yaml",
        "name: Path Walker\nid: \"x?y/../\"\nsip_enabled: true\n",
    );
    let url = emu.base_url();

    let out = run(dir.path(), &url, &["plan"]).await;
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("restaurants/zz-bad-id.yaml:2:1: id:") && err.contains("x?y/../"),
        "{err}"
    );
    assert!(stdout(&out).contains("Sushi Kyoto"), "{}", stdout(&out));

    let out = run(dir.path(), &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 1);
    assert_eq!(agents(&emu).len(), 3);
    never_sent(&emu, "x?y").await;
    never_sent(&emu, "Path Walker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_id_that_is_not_a_uuid_is_skipped_and_never_sent() {
    let emu = emulator().await;
    let db = platform("Chez B").await;
    db.exec("INSERT INTO restaurants (id, name, sip_enabled) VALUES ('=1+1', 'Eval', true);")
        .await;
    let dir = project_on_table(&db, ON_TABLE);
    let url = emu.base_url();

    let out = run(dir.path(), &url, &["plan"]).await;
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("table restaurants, row id==1+1: id:") && err.contains("UUID"),
        "{err}"
    );

    let out = run(dir.path(), &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 1);
    assert_eq!(restaurant_ids(&emu), [GOOD_A, BAD, GOOD_C]);
    never_sent(&emu, "=1+1").await;
    never_sent(&emu, "Eval").await;

    // validate reports the row too.
    let out = run(dir.path(), &url, &["validate"]).await;
    expect_code(&out, 1);
    assert!(stderr(&out).contains("row id==1+1"), "{}", stderr(&out));
}
