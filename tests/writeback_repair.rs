//! The written-back columns kept true (issue 23, item 1), on the platform's real DDL in SQLite
//! and PostgreSQL: the platform's settings page saves the whole restaurant it loaded before
//! sipform wrote the agent's id back, so `agent_id`, `final_customer_id` and both tokens become
//! NULL (reference fact 3). `apply` alone, and the controller within seconds, put all four
//! back, the tokens read from the server; a page save racing the write-back ends right.

mod common;

use common::controller::*;
use common::db::{Engine, TestDb};
use common::*;

/// Every column of the platform's row the settings page holds and saves back, besides the id
/// and the four written-back ones.
const PAGE_COLUMNS: &[&str] = &[
    "name",
    "cuisine_type",
    "description",
    "address",
    "city",
    "postal_code",
    "phone",
    "contact_name",
    "contact_email",
    "welcome_message",
    "ai_voice",
    "ai_instructions",
    "delivery_enabled",
    "reservation_enabled",
    "order_status_enabled",
    "chat_enabled",
    "chat_mode",
    "chat_open_on_load",
    "sip_enabled",
    "sip_bridge",
    "transfer_enabled",
    "transfer_phone_number",
    "transfer_automatic",
    "max_call_duration_sec",
    "is_active",
    "timezone",
    "currency",
    "default_locale",
];

/// The settings page's PATCH of the stale whole object it loaded before SIP was provisioned:
/// every column it holds saved as it was, one setting changed (the chat title), the written-
/// back columns NULL, `updated_at` bumped by the ORM.
async fn stale_page_save(db: &TestDb, i: usize, title: &str) {
    let mut sets: Vec<String> = PAGE_COLUMNS.iter().map(|c| format!("{c} = {c}")).collect();
    sets.push(format!("chat_title = '{title}'"));
    for c in [
        "agent_id",
        "final_customer_id",
        "agent_api_token",
        "agent_public_token",
    ] {
        sets.push(format!("{c} = NULL"));
    }
    sets.push("updated_at = CURRENT_TIMESTAMP".into());
    db.exec(&format!(
        "UPDATE restaurants SET {} WHERE id = {}",
        sets.join(", "),
        db.id_literal(&rid(i))
    ))
    .await;
}

/// The four written-back columns of restaurant `i`'s row.
async fn written_back(db: &TestDb, i: usize) -> [Option<String>; 4] {
    [
        column(db, "agent_id", i).await,
        column(db, "final_customer_id", i).await,
        column(db, "agent_api_token", i).await,
        column(db, "agent_public_token", i).await,
    ]
}

/// What the server says restaurant `i`'s row must hold: its agent's id, final customer and
/// tokens.
fn expected(emu: &sipform_emulator::EmulatorHandle, i: usize) -> [Option<String>; 4] {
    let a = agent_of(emu, i).expect("the restaurant's agent");
    let s = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let want = [
        s(&a["id"]),
        s(&a["finalCustomerId"]),
        s(&a["apiToken"]),
        s(&a["publicToken"]),
    ];
    assert!(
        want.iter().all(Option::is_some),
        "the emulator's agent carries ids and tokens"
    );
    want
}

async fn apply_restores_the_page_wipe(engine: Engine) {
    let emu = emulator().await;
    let db = platform(engine).await;
    insert(&db, 0..3).await;
    let dir = project_on(&db);
    apply_ok(dir.path(), &emu.base_url()).await;
    let before = written_back(&db, 1).await;
    assert_eq!(before, expected(&emu, 1), "apply wrote all four back");

    stale_page_save(&db, 1, "Saved by the page").await;
    assert_eq!(written_back(&db, 1).await, [None, None, None, None]);
    let mark = writes(&emu);
    apply_ok(dir.path(), &emu.base_url()).await;
    assert_eq!(
        written_back(&db, 1).await,
        before,
        "apply restores the ids and the tokens"
    );
    assert_eq!(
        written_back(&db, 0).await,
        expected(&emu, 0),
        "other rows untouched"
    );
    let written = writes_since(&emu, &mark);
    assert!(
        written.keys().all(|k| k.starts_with("PUT ")),
        "restoring the row creates nothing (the page's chat title is an update): {written:?}"
    );
    // And the run after it has nothing to do.
    expect_no_changes(dir.path(), &emu.base_url()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_restores_the_page_wipe_sqlite() {
    apply_restores_the_page_wipe(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_restores_the_page_wipe_postgres() {
    apply_restores_the_page_wipe(Engine::Postgres).await;
}

/// A token edited by hand (not NULL, just wrong) is put back too when state keeps the token.
async fn apply_restores_an_edited_row(engine: Engine) {
    let emu = emulator().await;
    let db = platform(engine).await;
    insert(&db, 0..1).await;
    let dir = project_on(&db);
    apply_ok(dir.path(), &emu.base_url()).await;
    db.exec(&format!(
        "UPDATE restaurants SET agent_public_token = '' , final_customer_id = 'fc-edited' WHERE id = {}",
        db.id_literal(&rid(0))
    ))
    .await;
    apply_ok(dir.path(), &emu.base_url()).await;
    assert_eq!(written_back(&db, 0).await, expected(&emu, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_restores_an_edited_row_sqlite() {
    apply_restores_an_edited_row(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_restores_an_edited_row_postgres() {
    apply_restores_an_edited_row(Engine::Postgres).await;
}

/// Everything the state backend of a project made by [`fresh_apply_restores_an_edited_token`]
/// stored, as text: the state file and its journal, the SQLite file, or the PostgreSQL rows.
async fn state_stored(db: &TestDb, dir: &std::path::Path, state_in_db: bool) -> String {
    let read = |p: std::path::PathBuf| {
        std::fs::read(&p)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    if !state_in_db {
        return ["sipform.state.json", "sipform.state.json.journal"]
            .iter()
            .map(|f| read(dir.join(f)))
            .collect();
    }
    match db.engine {
        Engine::Sqlite => read(db.dir.path().join("state.db")),
        Engine::Postgres => db
            .text(
                "SELECT string_agg(concat_ws('|', restaurant_id, agent_id, api_token, tools, \
                 objects, revision, token_digest), '\n') FROM sipform_state_restaurants",
            )
            .await
            .unwrap_or_default(),
    }
}

/// How many restaurants state records a token digest for (the file, after the run folded its
/// journal in; or the state table).
async fn digests_recorded(db: &TestDb, dir: &std::path::Path, state_in_db: bool) -> usize {
    let sql = "SELECT CAST(count(*) AS TEXT) FROM sipform_state_restaurants \
               WHERE token_digest LIKE 'sha256:%'";
    let count = |t: Option<String>| t.and_then(|t| t.parse().ok()).unwrap_or_default();
    if !state_in_db {
        let text = std::fs::read_to_string(dir.join("sipform.state.json")).expect("state file");
        let v: serde_json::Value = serde_json::from_str(&text).expect("state JSON");
        return v["restaurants"]
            .as_object()
            .map(|m| {
                m.values()
                    .filter(|r| {
                        r["tokenDigest"]
                            .as_str()
                            .is_some_and(|d| d.starts_with("sha256:"))
                    })
                    .count()
            })
            .unwrap_or_default();
    }
    match db.engine {
        Engine::Postgres => count(db.text(sql).await),
        Engine::Sqlite => {
            let opts =
                sqlx::sqlite::SqliteConnectOptions::new().filename(db.dir.path().join("state.db"));
            let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&opts)
                .await
                .expect("connect to the state database");
            let v: Option<String> = sqlx::query_scalar(sql).fetch_one(&mut c).await.expect(sql);
            count(v)
        }
    }
}

/// A token edited by hand to another non-blank value, with state not keeping tokens
/// (`store_tokens` off): a fresh `apply` (a new process, nothing in memory from the run that
/// wrote it) sees it through the salted digest state recorded, and rewrites it from the
/// server. State holds the digest, never a token.
async fn fresh_apply_restores_an_edited_token(engine: Engine, state_in_db: bool) {
    let emu = emulator().await;
    let db = platform(engine).await;
    insert(&db, 0..2).await;
    let dir = project_on_table(
        &db,
        TableProject {
            timeout_sec: Some(3),
            state_in_db,
            extra: "",
        },
    );
    apply_ok(dir.path(), &emu.base_url()).await;
    let before = written_back(&db, 1).await;
    assert_eq!(before, expected(&emu, 1), "apply wrote all four back");

    db.exec(&format!(
        "UPDATE restaurants SET agent_api_token = 'sk_edited_by_hand' WHERE id = {}",
        db.id_literal(&rid(1))
    ))
    .await;
    assert_eq!(
        column(&db, "agent_api_token", 1).await.as_deref(),
        Some("sk_edited_by_hand")
    );
    let out = apply_ok(dir.path(), &emu.base_url()).await;
    assert_eq!(
        written_back(&db, 1).await,
        before,
        "a fresh apply restores the edited token from the server"
    );
    assert_eq!(
        written_back(&db, 0).await,
        expected(&emu, 0),
        "other rows untouched"
    );
    let stored = state_stored(&db, dir.path(), state_in_db).await;
    assert!(!stored.is_empty(), "state was written");
    for i in 0..2 {
        for token in expected(&emu, i)[2..].iter().flatten() {
            assert!(
                !stored.contains(token.as_str()),
                "a token is stored in clear"
            );
            assert!(!stdout(&out).contains(token.as_str()), "a token is printed");
        }
    }
    assert_eq!(
        digests_recorded(&db, dir.path(), state_in_db).await,
        2,
        "state records the tokens' salted digests"
    );
    // And the run after it has nothing to do.
    expect_no_changes(dir.path(), &emu.base_url()).await;
    assert_eq!(written_back(&db, 1).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_apply_restores_an_edited_token_sqlite() {
    fresh_apply_restores_an_edited_token(Engine::Sqlite, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_apply_restores_an_edited_token_postgres() {
    fresh_apply_restores_an_edited_token(Engine::Postgres, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_apply_restores_an_edited_token_file_state() {
    fresh_apply_restores_an_edited_token(Engine::Sqlite, false).await;
}

/// State from before token digests were recorded (none in it): the rows' tokens are put back
/// after the page's wipe, and their digest recorded then, so a later hand edit is seen by a
/// fresh apply too.
async fn a_repair_records_the_digest_state_lacked(engine: Engine, state_in_db: bool) {
    let emu = emulator().await;
    let db = platform(engine).await;
    insert(&db, 0..1).await;
    let dir = project_on_table(
        &db,
        TableProject {
            timeout_sec: Some(3),
            state_in_db,
            extra: "",
        },
    );
    apply_ok(dir.path(), &emu.base_url()).await;
    let before = written_back(&db, 0).await;
    // Forget the digest, as state written by an earlier sipform holds none.
    if state_in_db {
        db.exec("UPDATE sipform_state_restaurants SET token_digest = NULL")
            .await;
    } else {
        let path = dir.path().join("sipform.state.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        for (_, r) in v["restaurants"]
            .as_object_mut()
            .expect("restaurants")
            .iter_mut()
        {
            r.as_object_mut().expect("restaurant").remove("tokenDigest");
        }
        std::fs::write(&path, v.to_string()).expect("write");
    }
    assert_eq!(digests_recorded(&db, dir.path(), state_in_db).await, 0);

    stale_page_save(&db, 0, "Saved by the page").await;
    apply_ok(dir.path(), &emu.base_url()).await;
    assert_eq!(written_back(&db, 0).await, before, "the wipe is repaired");
    assert_eq!(
        digests_recorded(&db, dir.path(), state_in_db).await,
        1,
        "the repair recorded the digest"
    );

    db.exec(&format!(
        "UPDATE restaurants SET agent_api_token = 'sk_edited_by_hand' WHERE id = {}",
        db.id_literal(&rid(0))
    ))
    .await;
    apply_ok(dir.path(), &emu.base_url()).await;
    assert_eq!(
        written_back(&db, 0).await,
        before,
        "a fresh apply restores the edited token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repair_records_the_digest_state_lacked_postgres() {
    a_repair_records_the_digest_state_lacked(Engine::Postgres, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repair_records_the_digest_state_lacked_file_state() {
    a_repair_records_the_digest_state_lacked(Engine::Sqlite, false).await;
}

/// The controller puts the four columns back after the page's save; the page's stale save
/// arriving right after the write-back still ends with the right values.
async fn controller_restores_the_page_wipe(engine: Engine) {
    let emu = emulator().await;
    let db = platform(engine).await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &emu.base_url());
    let ctl = start(dir.path(), &emu.base_url(), &[], &[]);
    eventually("the controller to lead", 20, || ctl.is_leader()).await;
    insert(&db, 0..2).await;
    for i in 0..2 {
        eventually("provisioned", 20, || provisioned(&db, &emu, i)).await;
    }
    eventually("all four written back", 20, || async {
        written_back(&db, 0).await == expected(&emu, 0)
    })
    .await;

    let saved = std::time::Instant::now();
    stale_page_save(&db, 0, "Saved by the page").await;
    eventually("the controller restores all four", 20, || async {
        written_back(&db, 0).await == expected(&emu, 0)
    })
    .await;
    // A figure for the report (the target is 2 s), never asserted here.
    eprintln!(
        "{engine:?}: row restored {:?} after the page's save",
        saved.elapsed()
    );

    // The race: the page loaded the row before the write-back and saves right after it.
    insert(&db, 2..3).await;
    eventually("restaurant 2 provisioned", 20, || provisioned(&db, &emu, 2)).await;
    stale_page_save(&db, 2, "Saved right after").await;
    stale_page_save(&db, 2, "Saved twice").await;
    eventually("the race ends with the right values", 20, || async {
        written_back(&db, 2).await == expected(&emu, 2)
    })
    .await;
    assert_eq!(
        column(&db, "chat_title", 2).await.as_deref(),
        Some("Saved twice"),
        "the page's own change is kept"
    );

    // Tokens edited (not blank, just wrong) with another setting: the controller, which wrote
    // them, notices and puts the server's back.
    db.exec(&format!(
        "UPDATE restaurants SET agent_api_token = 'edited', agent_public_token = 'pk_edited', chat_title = 'Edited', updated_at = CURRENT_TIMESTAMP WHERE id = {}",
        db.id_literal(&rid(1))
    ))
    .await;
    eventually("the controller restores edited tokens", 20, || async {
        written_back(&db, 1).await == expected(&emu, 1)
    })
    .await;
    assert_no_duplicates(&emu);
    let log = ctl.log_text();
    assert!(
        !log.contains(&expected(&emu, 0)[2].clone().unwrap_or_default()),
        "a token never reaches the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn controller_restores_the_page_wipe_sqlite() {
    controller_restores_the_page_wipe(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn controller_restores_the_page_wipe_postgres() {
    controller_restores_the_page_wipe(Engine::Postgres).await;
}
