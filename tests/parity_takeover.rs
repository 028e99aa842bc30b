//! Taking over restaurants the platform provisioned (issue 11), in database mode: the row's
//! `agent_id` and `final_customer_id` win over a match by `restaurantId` or by name, even when
//! the platform's catch-up provisioned a restaurant twice and the row points at the newer
//! copy. Rows stay exactly as the platform left them; the extra copies are listed on every
//! plan, never adopted, never touched.

mod common;

use std::path::Path;

use common::db::{Engine, TestDb};
use common::*;
use serde_json::{json, Map, Value};

/// The row's links and tokens, as the platform reads them.
const LINKS: &str = "agent_id, final_customer_id, agent_api_token, agent_public_token";

async fn platform_table(engine: Engine, n: usize) -> TestDb {
    let db = TestDb::new(engine).await;
    db.create_restaurants("restaurants").await;
    let mut sql = String::new();
    for i in 0..n {
        sql.push_str(&format!(
            "INSERT INTO restaurants (id, name, contact_email, sip_enabled, phone) VALUES ({}, 'Restaurant {i}', 'r{i}@example.com', true, '+3314200{i:04}');\n",
            db.id_literal(&rid(i)),
        ));
    }
    db.exec(&sql).await;
    db
}

/// A project reading `db`, its state a file in its own folder (a fresh folder: no state).
const ON_TABLE: TableProject = TableProject {
    timeout_sec: Some(5),
    state_in_db: false,
    extra: "phone_lines:\n  source: restaurant_phone\n",
};

async fn links(db: &TestDb, i: usize) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for col in LINKS.split(", ") {
        out.push(
            db.text(&format!(
                "SELECT {col} FROM restaurants WHERE id = {}",
                db.id_literal(&rid(i))
            ))
            .await,
        );
    }
    out
}

/// What the platform's catch-up does for a restaurant whose `agentId` was not saved: it
/// provisions it again (a second final customer with its subscription, a second agent with
/// its tools and its phone line, copies of the first), then saves the NEW ids in the row.
async fn provision_again(db: &TestDb, base: &str, snap: &Value, i: usize) {
    let http = reqwest::Client::new();
    let agent = snap["agents"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|a| a["config"]["restaurantId"] == rid(i).as_str())
        })
        .expect("first agent")
        .clone();
    let fc = snap["finalCustomers"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["id"] == agent["finalCustomerId"]))
        .expect("first final customer")
        .clone();
    let strip = |v: &Value, drop: &[&str]| -> Value {
        let mut m: Map<String, Value> = v.as_object().cloned().unwrap_or_default();
        for k in drop {
            m.remove(*k);
        }
        Value::Object(m)
    };
    let post = |path: String, body: Value| {
        let http = http.clone();
        async move {
            let r = http
                .post(format!("{base}{path}"))
                .json(&body)
                .send()
                .await
                .expect("POST");
            assert!(r.status().is_success(), "{path}: {}", r.status());
            r.json::<Value>().await.expect("json")
        }
    };
    let server_owned = [
        "id",
        "createdAt",
        "updatedAt",
        "apiToken",
        "publicToken",
        "phoneLines",
        "tools",
        "pauseReason",
        "sipRegistered",
    ];
    let new_fc = post("/api/final-customers".into(), strip(&fc, &server_owned)).await;
    let fc_id = new_fc["id"].as_str().expect("fc id").to_string();
    let plans: Value = http
        .get(format!(
            "{base}/api/plans?accountId={}",
            fc["accountId"].as_str().unwrap_or("")
        ))
        .send()
        .await
        .expect("plans")
        .json()
        .await
        .expect("json");
    let default_plan = plans
        .as_array()
        .and_then(|p| {
            p.iter()
                .filter(|p| p["isActive"] == true && p["isOption"] != true)
                .min_by_key(|p| p["sortOrder"].as_i64())
        })
        .expect("a default plan")["id"]
        .clone();
    post(
        format!("/api/final-customers/{fc_id}/subscriptions"),
        json!({ "planId": default_plan }),
    )
    .await;
    let mut body = strip(&agent, &server_owned);
    body["finalCustomerId"] = json!(fc_id);
    let new_agent = post("/api/agents".into(), body).await;
    let agent_id = new_agent["id"].as_str().expect("agent id").to_string();
    for t in agent["tools"].as_array().cloned().unwrap_or_default() {
        post(
            format!("/api/agents/{agent_id}/tools"),
            strip(&t, &["id", "agentId", "createdAt", "updatedAt"]),
        )
        .await;
    }
    for l in agent["phoneLines"].as_array().cloned().unwrap_or_default() {
        post(
            format!("/api/agents/{agent_id}/phone-lines"),
            strip(
                &l,
                &["id", "agentId", "createdAt", "updatedAt", "sipRegistered"],
            ),
        )
        .await;
    }
    db.exec(&format!(
        "UPDATE restaurants SET agent_id = '{agent_id}', final_customer_id = '{fc_id}', agent_api_token = '{}', agent_public_token = '{}' WHERE id = {}",
        new_agent["apiToken"].as_str().unwrap_or(""),
        new_agent["publicToken"].as_str().unwrap_or(""),
        db.id_literal(&rid(i))
    ))
    .await;
}

async fn plan_text(dir: &Path, url: &str) -> String {
    let out = run(dir, url, &["plan", "--detailed-exitcode"]).await;
    assert!(
        matches!(out.status.code(), Some(0 | 2)),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

async fn takeover_keeps_the_platforms_links_and_dedupe_removes_only_the_extras(engine: Engine) {
    let emu = emulator().await;
    let url = emu.base_url();
    let (n, twice) = (20, [1usize, 4, 9, 13, 18]);
    let db = platform_table(engine, n).await;

    // The platform provisions all 20 (its rows get the ids), then its catch-up provisions 5
    // of them a second time and saves the newer ids.
    let platform = project_on_table(&db, ON_TABLE);
    apply_ok(platform.path(), &url).await;
    let snap = emu.snapshot();
    for &i in &twice {
        provision_again(&db, &url, &snap, i).await;
    }
    assert_eq!(agents(&emu).len(), n + twice.len());
    let mut rows = Vec::new();
    for i in 0..n {
        rows.push(links(&db, i).await);
    }

    // sipform takes over with no state of its own.
    let dir = project_on_table(&db, ON_TABLE);
    let js = run(dir.path(), &url, &["plan", "--json"]).await;
    let plan: Value = serde_json::from_str(&stdout(&js)).expect("plan --json");
    for (i, row) in rows.iter().enumerate() {
        let actions = plan["restaurants"][i]["actions"]
            .as_array()
            .expect("actions");
        let adopted = |resource: &str| {
            actions
                .iter()
                .find(|a| a["resource"] == resource)
                .map(|a| (a["remoteId"].clone(), a["reason"].clone()))
        };
        assert_eq!(
            adopted("agent"),
            Some((json!(row[0]), json!("the platform row's agent_id"))),
            "restaurant {i}"
        );
        assert_eq!(
            adopted("finalCustomer"),
            Some((json!(row[1]), json!("the platform row's final_customer_id"))),
            "restaurant {i}"
        );
    }
    let mark = writes(&emu);
    apply_ok(dir.path(), &url).await;
    assert!(
        writes_since(&emu, &mark).is_empty(),
        "adopting what the rows name writes nothing: {:?}",
        writes_since(&emu, &mark)
    );
    for (i, before) in rows.iter().enumerate() {
        assert_eq!(&links(&db, i).await, before, "row {i} unchanged");
    }
    // State names the row's agents, the newer copies for the 5.
    let state = read_state(dir.path());
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(
            state["restaurants"][rid(i)]["agentId"].as_str(),
            row[0].as_deref(),
            "restaurant {i}: {}",
            state["restaurants"][rid(i)]
        );
    }
    assert_eq!(agents(&emu).len(), n + twice.len(), "nothing deleted");
    // Still converged, and every plan still lists the extra copies, in every form.
    for _ in 0..2 {
        let text = plan_text(dir.path(), &url).await;
        assert!(text.contains("No changes"), "{text}");
        assert!(text.contains("5 restaurants have duplicates"), "{text}");
    }
    let js = run(dir.path(), &url, &["plan", "--json"]).await;
    let plan: Value = serde_json::from_str(&stdout(&js)).expect("plan --json");
    let dups = plan["duplicates"].as_array().cloned().unwrap_or_default();
    assert_eq!(dups.len(), 5, "{}", plan["duplicates"]);
    let snap = emu.snapshot();
    let extra_agents: Vec<Value> = snap["agents"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| !rows.iter().any(|r| a["id"] == json!(r[0])))
        .collect();
    assert_eq!(extra_agents.len(), 5);
    for d in &dups {
        assert_eq!(d["agents"].as_array().map(Vec::len), Some(1), "{d}");
        assert_eq!(d["finalCustomers"].as_array().map(Vec::len), Some(1), "{d}");
        assert_eq!(d["phoneLines"].as_array().map(Vec::len), Some(1), "{d}");
        assert_eq!(d["subscriptions"].as_array().map(Vec::len), Some(1), "{d}");
        assert!(
            extra_agents.iter().any(|a| a["id"] == d["agents"][0]),
            "{d}"
        );
    }
    let out = run(dir.path(), &url, &["plan", "--markdown"]).await;
    assert!(stdout(&out).contains("5 restaurants have duplicates"));

    // dedupe: the extras deactivated, nothing else written.
    let mark = writes(&emu);
    let out = run(dir.path(), &url, &["dedupe"]).await;
    expect_code(&out, 0);
    let w = writes_since(&emu, &mark);
    assert_eq!(w.get("PUT /api/agents/:id").copied(), Some(5), "{w:?}");
    assert_eq!(
        w.get("PUT /api/final-customers/:id").copied(),
        Some(5),
        "{w:?}"
    );
    assert_eq!(
        w.get("PUT /api/agents/:id/phone-lines/:lineId").copied(),
        Some(5),
        "{w:?}"
    );
    assert_eq!(w.len(), 3, "{w:?}");
    for a in agents(&emu) {
        let extra = extra_agents.iter().any(|e| e["id"] == a["id"]);
        assert_eq!(a["isActive"], json!(!extra), "{}", a["id"]);
    }
    // With --allow-destroy: deleted, phone lines first; the rows' objects all stay.
    let mark = writes(&emu);
    let out = run(dir.path(), &url, &["dedupe", "--allow-destroy"]).await;
    expect_code(&out, 0);
    let w = writes_since(&emu, &mark);
    for route in [
        "DELETE /api/agents/:id/phone-lines/:lineId",
        "DELETE /api/subscriptions/:id",
        "DELETE /api/agents/:id",
        "DELETE /api/final-customers/:id",
    ] {
        assert_eq!(w.get(route).copied(), Some(5), "{route}: {w:?}");
    }
    let left = agents(&emu);
    assert_eq!(left.len(), n);
    assert!(left
        .iter()
        .all(|a| rows.iter().any(|r| a["id"] == json!(r[0]))));
    assert_eq!(final_customers(&emu).len(), n);
    for (i, before) in rows.iter().enumerate() {
        assert_eq!(&links(&db, i).await, before, "row {i} unchanged");
    }
    let text = plan_text(dir.path(), &url).await;
    assert!(
        text.contains("No changes") && !text.contains("duplicates"),
        "{text}"
    );
    let out = run(dir.path(), &url, &["dedupe"]).await;
    expect_code(&out, 0);
    assert!(stdout(&out).contains("No duplicates"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_takeover_keeps_the_platforms_links_and_dedupe_removes_only_the_extras() {
    takeover_keeps_the_platforms_links_and_dedupe_removes_only_the_extras(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_takeover_keeps_the_platforms_links_and_dedupe_removes_only_the_extras() {
    takeover_keeps_the_platforms_links_and_dedupe_removes_only_the_extras(Engine::Postgres).await;
}
