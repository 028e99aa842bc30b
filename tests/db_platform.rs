//! The platform's `restaurants` table, in SQLite and PostgreSQL: reading the inventory, writing
//! ids back, refusing values that do not fit.

mod common;

use std::sync::Arc;

use common::db::{Engine, TestDb};
use indexmap::IndexMap;
use sipform::db::DbError;
use sipform::front::diagnostics::Origin;
use sipform::inventory::PlatformTable;
use sipform::model::ids::{AgentId, FinalCustomerId, RestaurantId};
use sipform::model::secret::Secret;
use sipform::model::spec::ChatMode;
use sipform::state::file::FileState;
use sipform::state::{
    AgentTokens, Change, CommitHook, RestaurantState, State, StateBackend, StateWriter,
};

const A: &str = "0a000000-0000-4000-8000-00000000000a";
const B: &str = "0b000000-0000-4000-8000-00000000000b";
const C: &str = "0c000000-0000-4000-8000-00000000000c";
const D: &str = "0d000000-0000-4000-8000-00000000000d";
const E: &str = "0e000000-0000-4000-8000-00000000000e";

async fn open(db: &TestDb, tokens: bool) -> Result<PlatformTable, DbError> {
    PlatformTable::open(
        &db.url,
        db.dir.path(),
        "restaurants",
        &IndexMap::new(),
        tokens,
    )
    .await
}

/// A: everything set; B: NULL in every column the platform's table lets be NULL, the rest
/// its defaults; C: nothing enabled, no agent; D: nothing
/// enabled but has an agent; E: chat only.
async fn fill(db: &TestDb) {
    let id = |s| db.id_literal(s);
    db.exec(&format!(
        "INSERT INTO restaurants (id, name, address, phone, contact_email, ai_voice, timezone,
            delivery_enabled, reservation_enabled, order_status_enabled, transfer_enabled,
            transfer_automatic, chat_enabled, chat_open_on_load, sip_enabled, is_active,
            transfer_phone_number, chat_mode, chat_title, max_call_duration_sec)
         VALUES ({}, 'Chez A', '1 rue A', '+33100000001', 'a@example.com', 'alloy', 'Europe/Berlin',
            true, true, true, true, true, true, true, true, true,
            '+33100000009', 'stt_tts', 'Bonjour', 900);
         INSERT INTO restaurants (id, name, sip_enabled, address, phone, contact_email,
            transfer_phone_number, chat_title, agent_id)
         VALUES ({}, 'Chez B', true, NULL, NULL, NULL, NULL, NULL, NULL);
         INSERT INTO restaurants (id, name, sip_enabled, chat_enabled) VALUES ({}, 'Chez C', false, false);
         INSERT INTO restaurants (id, name, sip_enabled, chat_enabled, agent_id)
            VALUES ({}, 'Chez D', false, false, 'agent-d');
         INSERT INTO restaurants (id, name, sip_enabled, chat_enabled) VALUES ({}, 'Chez E', false, true);",
        id(A),
        id(B),
        id(C),
        id(D),
        id(E)
    ))
    .await;
}

async fn reads_rows_mapping_nulls(engine: Engine) {
    let db = TestDb::new(engine).await;
    db.create_restaurants("restaurants").await;
    fill(&db).await;
    let t = open(&db, true).await.expect("open");
    let got = t.read_restaurants().await.expect("read");
    let ids: Vec<&str> = got.iter().map(|r| r.value.id.as_str()).collect();
    // C needs no agent and has none: left out. D has an agent: kept (planned inactive).
    assert_eq!(ids, vec![A, B, D, E]);
    assert_eq!(
        got[0].origin,
        Origin::Row {
            table: "restaurants".into(),
            key: A.into()
        }
    );
    let a = &got[0].value;
    assert_eq!(a.name, "Chez A");
    assert_eq!(a.phone.as_deref(), Some("+33100000001"));
    assert_eq!(a.contact_email.as_deref(), Some("a@example.com"));
    assert_eq!(a.ai_voice.as_deref(), Some("alloy"));
    assert_eq!(a.timezone.as_deref(), Some("Europe/Berlin"));
    assert!(a.delivery_enabled && a.reservation_enabled && a.order_status_enabled);
    assert!(a.transfer_enabled && a.transfer_automatic && a.chat_open_on_load);
    assert_eq!(a.transfer_phone_number.as_deref(), Some("+33100000009"));
    assert_eq!(a.chat_mode, Some(ChatMode::SttTts));
    assert_eq!(a.chat_title.as_deref(), Some("Bonjour"));
    assert_eq!(a.max_call_duration_sec, Some(900));
    // B: NULL is an absent key; the columns the platform's table declares NOT NULL carry its
    // defaults.
    let b = &got[1].value;
    assert_eq!(b.phone, None);
    assert_eq!(b.contact_email, None);
    assert_eq!(b.transfer_phone_number, None);
    assert_eq!(b.chat_title, None);
    assert_eq!(b.ai_voice.as_deref(), Some("sage"));
    assert_eq!(b.timezone.as_deref(), Some("Europe/Paris"));
    assert_eq!(b.chat_mode, Some(ChatMode::Text));
    assert_eq!(b.max_call_duration_sec, Some(600));
    assert!(!b.delivery_enabled && !b.chat_enabled);
    assert!(b.sip_enabled && b.is_active);
    // D: kept, but it needs no agent.
    let d = &got[2].value;
    assert!(!d.sip_enabled && !d.needs_agent());
    // Column defaults apply to rows inserted without them.
    assert_eq!(d.ai_voice.as_deref(), Some("sage"));
    assert_eq!(d.max_call_duration_sec, Some(600));
    assert!(got[3].value.chat_enabled && !got[3].value.sip_enabled);

    // A restaurant that state knows is kept even without agent_id in its row.
    let mut state = State::new();
    state.restaurants.insert(
        RestaurantId::new(C),
        RestaurantState {
            agent_id: Some(AgentId::new("agent-c")),
            ..Default::default()
        },
    );
    let with_state = t.read(&state.restaurant_ids()).await.expect("read");
    assert!(with_state.iter().any(|r| r.value.id.as_str() == C));
}

#[tokio::test]
async fn sqlite_reads_rows_mapping_nulls() {
    reads_rows_mapping_nulls(Engine::Sqlite).await;
}

#[tokio::test]
async fn postgres_reads_rows_mapping_nulls() {
    reads_rows_mapping_nulls(Engine::Postgres).await;
}

async fn missing_table_and_columns_are_named(engine: Engine) {
    let db = TestDb::new(engine).await;
    let e = open(&db, true).await.err().expect("no table");
    assert!(matches!(e, DbError::MissingTable { .. }), "{e}");
    assert!(
        e.to_string().contains("table restaurants does not exist"),
        "{e}"
    );

    db.create_restaurants("restaurants").await;
    db.exec("ALTER TABLE restaurants DROP COLUMN chat_title")
        .await;
    let e = open(&db, true).await.err().expect("no column");
    assert!(e.to_string().contains("has no column chat_title"), "{e}");

    // Renamed by inventory.columns: the override is looked up, and named when missing.
    let mut cols = IndexMap::new();
    cols.insert("chat_title".to_string(), "chat_heading".to_string());
    let e = PlatformTable::open(&db.url, db.dir.path(), "restaurants", &cols, true)
        .await
        .err()
        .expect("renamed column missing");
    assert!(e.to_string().contains("chat_heading"), "{e}");
    assert!(
        e.to_string().contains("renamed by inventory.columns"),
        "{e}"
    );
    db.exec("ALTER TABLE restaurants ADD COLUMN chat_heading varchar(100)")
        .await;
    db.exec(&format!(
        "INSERT INTO restaurants (id, name, sip_enabled, chat_heading) VALUES ({}, 'X', true, 'Hi')",
        db.id_literal(A)
    ))
    .await;
    let t = PlatformTable::open(&db.url, db.dir.path(), "restaurants", &cols, true)
        .await
        .expect("renamed column found");
    let got = t.read_restaurants().await.expect("read");
    assert_eq!(got[0].value.chat_title.as_deref(), Some("Hi"));

    // The token columns are needed only when tokens are written back.
    db.exec("ALTER TABLE restaurants DROP COLUMN agent_public_token")
        .await;
    let e = PlatformTable::open(&db.url, db.dir.path(), "restaurants", &cols, true)
        .await
        .err()
        .expect("token column missing");
    assert!(e.to_string().contains("agent_public_token"), "{e}");
    assert!(e.to_string().contains("write_back_tokens: false"), "{e}");
    PlatformTable::open(&db.url, db.dir.path(), "restaurants", &cols, false)
        .await
        .expect("tokens not written back");
}

#[tokio::test]
async fn sqlite_missing_table_and_columns_are_named() {
    missing_table_and_columns_are_named(Engine::Sqlite).await;
}

#[tokio::test]
async fn postgres_missing_table_and_columns_are_named() {
    missing_table_and_columns_are_named(Engine::Postgres).await;
}

fn tokens(api: &str, public: &str) -> AgentTokens {
    AgentTokens {
        api_token: Secret::new(api.to_string()),
        public_token: Secret::new(public.to_string()),
    }
}

async fn row(db: &TestDb, col: &str, id: &str) -> Option<String> {
    db.text(&format!(
        "SELECT CAST({col} AS TEXT) FROM restaurants WHERE CAST(id AS TEXT) = '{id}'"
    ))
    .await
}

async fn write_back_sets_clears_and_skips_deleted_rows(engine: Engine) {
    let db = TestDb::new(engine).await;
    db.create_restaurants("restaurants").await;
    fill(&db).await;
    let t = open(&db, true).await.expect("open");
    let wb = t.write_back();
    let ra = RestaurantId::new(A);
    let n = wb
        .write(&[
            Change::Account("acc-1".into()),
            Change::FinalCustomer {
                restaurant: ra.clone(),
                id: Some(FinalCustomerId::new("fc-a")),
            },
            Change::Agent {
                restaurant: ra.clone(),
                id: Some(AgentId::new("agent-a")),
                tokens: Some(tokens("tok_api_a", "pk_a")),
            },
            Change::Tool {
                restaurant: ra.clone(),
                name: "end_call".into(),
                id: Some("tool-1".into()),
            },
        ])
        .await
        .expect("write");
    assert_eq!(n, 2);
    assert_eq!(row(&db, "agent_id", A).await.as_deref(), Some("agent-a"));
    assert_eq!(
        row(&db, "final_customer_id", A).await.as_deref(),
        Some("fc-a")
    );
    assert_eq!(
        row(&db, "agent_api_token", A).await.as_deref(),
        Some("tok_api_a")
    );
    assert_eq!(
        row(&db, "agent_public_token", A).await.as_deref(),
        Some("pk_a")
    );
    // Other rows untouched.
    assert_eq!(row(&db, "agent_id", B).await, None);

    // A delete sets NULL.
    wb.after_commit(&[Change::Agent {
        restaurant: ra.clone(),
        id: None,
        tokens: None,
    }])
    .await
    .expect("delete");
    assert_eq!(row(&db, "agent_id", A).await, None);
    assert_eq!(row(&db, "agent_api_token", A).await, None);
    assert_eq!(row(&db, "agent_public_token", A).await, None);
    assert_eq!(
        row(&db, "final_customer_id", A).await.as_deref(),
        Some("fc-a")
    );

    // A deleted row is not updated, and never inserted back.
    db.exec(&format!(
        "DELETE FROM restaurants WHERE id = {}",
        db.id_literal(B)
    ))
    .await;
    let n = wb
        .write(&[Change::Agent {
            restaurant: RestaurantId::new(B),
            id: Some(AgentId::new("agent-b")),
            tokens: None,
        }])
        .await
        .expect("write to a deleted row");
    assert_eq!(n, 0);
    assert_eq!(
        db.text("SELECT CAST(count(*) AS TEXT) FROM restaurants")
            .await
            .as_deref(),
        Some("4")
    );
    // An id that is not even of the key's type matches nothing (no error either).
    let n = wb
        .write(&[Change::FinalCustomer {
            restaurant: RestaurantId::new("not-a-uuid"),
            id: None,
        }])
        .await
        .expect("unknown restaurant");
    assert_eq!(n, 0);

    // Without token write-back, tokens stay as they are.
    db.exec(&format!(
        "UPDATE restaurants SET agent_api_token = 'old' WHERE id = {}",
        db.id_literal(E)
    ))
    .await;
    let t2 = open(&db, false).await.expect("open");
    t2.write_back()
        .write(&[Change::Agent {
            restaurant: RestaurantId::new(E),
            id: Some(AgentId::new("agent-e")),
            tokens: Some(tokens("new", "pk_new")),
        }])
        .await
        .expect("write");
    assert_eq!(row(&db, "agent_id", E).await.as_deref(), Some("agent-e"));
    assert_eq!(row(&db, "agent_api_token", E).await.as_deref(), Some("old"));
}

#[tokio::test]
async fn sqlite_write_back_sets_clears_and_skips_deleted_rows() {
    write_back_sets_clears_and_skips_deleted_rows(Engine::Sqlite).await;
}

#[tokio::test]
async fn postgres_write_back_sets_clears_and_skips_deleted_rows() {
    write_back_sets_clears_and_skips_deleted_rows(Engine::Postgres).await;
}

async fn too_long_values_are_refused_before_writing(engine: Engine) {
    let db = TestDb::new(engine).await;
    db.create_restaurants("restaurants").await;
    fill(&db).await;
    let t = open(&db, true).await.expect("open");
    let hook: Arc<dyn CommitHook> = Arc::new(t.write_back());
    let dir = tempfile::tempdir().expect("tempdir");
    let backend: Arc<dyn StateBackend> = Arc::new(FileState::new(dir.path().join("s.json")));
    let writer = StateWriter::new(backend.clone(), State::new(), true, Some(hook.clone()));

    let long_id = "x".repeat(37);
    let e = writer
        .record(vec![Change::Agent {
            restaurant: RestaurantId::new(A),
            id: Some(AgentId::new(long_id.clone())),
            tokens: None,
        }])
        .await
        .expect_err("37 characters must be refused");
    let msg = e.to_string();
    assert!(msg.contains("37 characters"), "{msg}");
    assert!(msg.contains("agent_id"), "{msg}");
    // Nothing written: not state, not the row.
    assert!(backend.load().await.expect("load").is_none());
    assert_eq!(row(&db, "agent_id", A).await, None);

    let e = hook
        .check(&Change::FinalCustomer {
            restaurant: RestaurantId::new(A),
            id: Some(FinalCustomerId::new(long_id)),
        })
        .expect_err("final customer id too long")
        .to_string();
    assert!(e.contains("final_customer_id"), "{e}");
    // 36 characters fit.
    hook.check(&Change::FinalCustomer {
        restaurant: RestaurantId::new(A),
        id: Some(FinalCustomerId::new("y".repeat(36))),
    })
    .expect("36 fits");

    // A token over 128 characters is refused, and never shown.
    let secret = format!("sk_{}", "s".repeat(130));
    let e = hook
        .check(&Change::Agent {
            restaurant: RestaurantId::new(A),
            id: Some(AgentId::new("agent-a")),
            tokens: Some(tokens(&secret, "pk")),
        })
        .expect_err("token too long")
        .to_string();
    assert!(e.contains("agent_api_token"), "{e}");
    assert!(!e.contains("sss"), "the token leaked: {e}");

    // The writer goes on with a good change.
    writer
        .record(vec![Change::Agent {
            restaurant: RestaurantId::new(A),
            id: Some(AgentId::new("agent-a")),
            tokens: Some(tokens("tok", "pk")),
        }])
        .await
        .expect("good change");
    assert_eq!(row(&db, "agent_id", A).await.as_deref(), Some("agent-a"));
    assert_eq!(
        backend
            .load()
            .await
            .expect("load")
            .expect("state")
            .restaurants[&RestaurantId::new(A)]
            .agent_id,
        Some(AgentId::new("agent-a"))
    );
}

#[tokio::test]
async fn sqlite_too_long_values_are_refused_before_writing() {
    too_long_values_are_refused_before_writing(Engine::Sqlite).await;
}

#[tokio::test]
async fn postgres_too_long_values_are_refused_before_writing() {
    too_long_values_are_refused_before_writing(Engine::Postgres).await;
}

async fn reconcile_heals_rows_from_state(engine: Engine) {
    let db = TestDb::new(engine).await;
    db.create_restaurants("restaurants").await;
    fill(&db).await;
    let t = open(&db, false).await.expect("open");
    let mut state = State::new();
    state.restaurants.insert(
        RestaurantId::new(A),
        RestaurantState {
            final_customer_id: Some(FinalCustomerId::new("fc-a")),
            agent_id: Some(AgentId::new("agent-a")),
            tools: Default::default(),
            api_token: None,
            objects: Default::default(),
            suspended: false,
            revision: None,
            token_digest: None,
        },
    );
    // D's row says agent-d; state says it has none but a final customer.
    state.restaurants.insert(
        RestaurantId::new(D),
        RestaurantState {
            final_customer_id: Some(FinalCustomerId::new("fc-d")),
            ..Default::default()
        },
    );
    // A restaurant whose row is gone.
    state.restaurants.insert(
        RestaurantId::new("0f000000-0000-4000-8000-00000000000f"),
        RestaurantState {
            agent_id: Some(AgentId::new("agent-f")),
            ..Default::default()
        },
    );
    let wb = t.write_back();
    let drifts = wb.drifted(&state, None).await.expect("drifted");
    let ids: Vec<&str> = drifts.iter().map(|d| d.restaurant.as_str()).collect();
    assert_eq!(ids.len(), 2, "{drifts:?}");
    assert!(ids.contains(&A) && ids.contains(&D), "{drifts:?}");
    let d = drifts
        .iter()
        .find(|d| d.restaurant.as_str() == D)
        .expect("D");
    assert_eq!(
        d.row_agent.as_deref(),
        Some("agent-d"),
        "the row's other agent is named"
    );
    let changes: Vec<Change> = drifts
        .iter()
        .flat_map(|d| {
            let s = &state.restaurants[&d.restaurant];
            [
                Change::FinalCustomer {
                    restaurant: d.restaurant.clone(),
                    id: s.final_customer_id.clone(),
                },
                Change::Agent {
                    restaurant: d.restaurant.clone(),
                    id: s.agent_id.clone(),
                    tokens: None,
                },
            ]
        })
        .collect();
    // One UPDATE per change: the final customer's and the agent's of both rows.
    assert_eq!(wb.write(&changes).await.expect("write"), 4);
    assert_eq!(row(&db, "agent_id", A).await.as_deref(), Some("agent-a"));
    assert_eq!(
        row(&db, "final_customer_id", A).await.as_deref(),
        Some("fc-a")
    );
    assert_eq!(row(&db, "agent_id", D).await, None);
    assert_eq!(
        row(&db, "final_customer_id", D).await.as_deref(),
        Some("fc-d")
    );
    // Nothing left to heal.
    assert!(wb.drifted(&state, None).await.expect("drifted").is_empty());
}

#[tokio::test]
async fn sqlite_reconcile_heals_rows_from_state() {
    reconcile_heals_rows_from_state(Engine::Sqlite).await;
}

#[tokio::test]
async fn postgres_reconcile_heals_rows_from_state() {
    reconcile_heals_rows_from_state(Engine::Postgres).await;
}

/// A write-back opened afresh (another process: nothing in memory of what was written) finds
/// a row whose tokens were edited to other non-blank values through the salted digest state
/// recorded, and only that: the tokens state's digest names are not drift.
async fn edited_tokens_drift_through_the_recorded_digest(engine: Engine) {
    let db = TestDb::new(engine).await;
    db.create_restaurants("restaurants").await;
    fill(&db).await;
    let mut state = State::new();
    for (rid, api) in [(A, "tok_api_a"), (E, "tok_api_e")] {
        state.apply(
            &Change::Agent {
                restaurant: RestaurantId::new(rid),
                id: Some(AgentId::new(format!("agent-{}", &rid[..2]))),
                tokens: Some(tokens(api, &format!("pk_{api}"))),
            },
            false,
        );
    }
    let changes: Vec<Change> = [(A, "tok_api_a"), (E, "tok_api_e")]
        .into_iter()
        .map(|(rid, api)| Change::Agent {
            restaurant: RestaurantId::new(rid),
            id: Some(AgentId::new(format!("agent-{}", &rid[..2]))),
            tokens: Some(tokens(api, &format!("pk_{api}"))),
        })
        .collect();
    let writer = open(&db, true).await.expect("open").write_back();
    writer.write(&changes).await.expect("write");
    db.exec(&format!(
        "UPDATE restaurants SET agent_api_token = 'tok_edited' WHERE id = {}",
        db.id_literal(E)
    ))
    .await;
    // A fresh write-back, as a new `sipform apply` opens it.
    let fresh = open(&db, true).await.expect("open").write_back();
    let drifts = fresh.drifted(&state, None).await.expect("drifted");
    let ids: Vec<&str> = drifts.iter().map(|d| d.restaurant.as_str()).collect();
    assert_eq!(ids, vec![E], "{drifts:?}");
    assert!(
        drifts[0].tokens,
        "the tokens are to be read from the server"
    );
    // Without a digest in state (written before it was recorded), only blank tokens are seen.
    let mut older = state.clone();
    for r in older.restaurants.values_mut() {
        r.token_digest = None;
    }
    assert!(fresh
        .drifted(&older, None)
        .await
        .expect("drifted")
        .is_empty());
}

#[tokio::test]
async fn sqlite_edited_tokens_drift_through_the_recorded_digest() {
    edited_tokens_drift_through_the_recorded_digest(Engine::Sqlite).await;
}

#[tokio::test]
async fn postgres_edited_tokens_drift_through_the_recorded_digest() {
    edited_tokens_drift_through_the_recorded_digest(Engine::Postgres).await;
}

#[tokio::test]
async fn bad_values_name_the_row_and_column() {
    let db = TestDb::new(Engine::Sqlite).await;
    db.create_restaurants("restaurants").await;
    db.exec(&format!(
        "INSERT INTO restaurants (id, name, sip_enabled, chat_mode) VALUES ({}, 'X', true, 'voice')",
        db.id_literal(A)
    ))
    .await;
    let t = open(&db, true).await.expect("open");
    let e = t.read_restaurants().await.expect_err("bad chat_mode");
    let msg = e.to_string();
    assert!(msg.contains(&format!("row id={A}")), "{msg}");
    assert!(msg.contains("column chat_mode"), "{msg}");
    assert!(msg.contains("\"voice\""), "{msg}");
}

#[tokio::test]
async fn unreachable_database_is_named_without_its_password() {
    let start = std::time::Instant::now();
    let e = PlatformTable::open(
        "postgres://app:hunter2@127.0.0.1:1/platform",
        std::path::Path::new("."),
        "restaurants",
        &IndexMap::new(),
        true,
    )
    .await
    .err()
    .expect("nothing listens on port 1");
    let msg = e.to_string();
    assert!(msg.contains("postgres://***@127.0.0.1:1/platform"), "{msg}");
    assert!(msg.contains("cannot connect"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(start.elapsed() < std::time::Duration::from_secs(5));

    let e = PlatformTable::open(
        "sqlite://does/not/exist.db",
        std::path::Path::new("/nonexistent-root"),
        "restaurants",
        &IndexMap::new(),
        true,
    )
    .await
    .err()
    .expect("no such file");
    assert!(
        e.to_string()
            .contains("/nonexistent-root/does/not/exist.db"),
        "{e}"
    );
}
