//! Contract tests: the emulator against its contract (`docs/sip-agent-server.openapi.yaml`),
//! in-process on a random port.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use sipform_emulator::{
    CommitFailMode, CommitThenFail, Emulator, EmulatorConfig, EmulatorHandle, ErrorRule, Faults,
    Latency, RateLimit, ResetRule,
};

struct Api {
    client: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Api {
    fn new(emu: &EmulatorHandle) -> Self {
        Api {
            client: reqwest::Client::new(),
            base: emu.base_url(),
            key: None,
        }
    }

    async fn try_call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Result<(u16, Value)> {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(k) = &self.key {
            req = req.header("X-API-Key", k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.try_call(method, path, body)
            .await
            .expect("request failed")
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, None).await
    }

    async fn raw(&self, method: Method, path: &str, body: &'static str) -> (u16, Value) {
        let resp = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request failed");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

async fn start() -> EmulatorHandle {
    Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts")
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_string()
}

fn agent_body(account: &str, fc: &str) -> Value {
    json!({
        "accountId": account, "finalCustomerId": fc, "name": "Chez Paul",
        "basePrompt": "={{data.systemPrompt}}", "aiModel": "gpt-realtime", "aiVoice": "sage",
        "vadThreshold": 0.5, "vadSilenceMs": 500, "vadPrefixPaddingMs": 300, "temperature": 0.7,
        "maxCallDurationSec": 600,
        "config": {"restaurantId": "r1", "deliveryEnabled": true, "reservationEnabled": false,
                   "orderStatusEnabled": true, "transferEnabled": false},
        "isActive": true
    })
}

/// Account, final customer and agent: `(account, finalCustomer, agent)`.
async fn seed(api: &Api) -> (String, String, Value) {
    let (s, acc) = api
        .post(
            "/api/accounts",
            json!({"name": "AlloResto", "email": "a@b.c", "isActive": true}),
        )
        .await;
    assert_eq!(s, 201);
    let acc = id(&acc);
    let (s, fc) = api
        .post(
            "/api/final-customers",
            json!({"accountId": acc, "name": "Chez Paul"}),
        )
        .await;
    assert_eq!(s, 201);
    let fc = id(&fc);
    let (s, agent) = api.post("/api/agents", agent_body(&acc, &fc)).await;
    assert_eq!(s, 201, "{agent}");
    (acc, fc, agent)
}

fn tool(name: &str, sort: i64) -> Value {
    json!({"name": name, "description": "d", "sortOrder": sort,
           "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
           "http": {"method": "POST", "url": "={{BASE_URL}}/api/x"}})
}

#[tokio::test]
async fn accounts_and_plans() {
    let emu = start().await;
    let api = Api::new(&emu);
    assert_eq!(api.get("/api/accounts").await, (200, json!([])));
    let (s, acc) = api
        .post("/api/accounts", json!({"name": "AlloResto"}))
        .await;
    assert_eq!(s, 201);
    assert_eq!(id(&acc).len(), 36);
    assert_eq!(acc["isActive"], true);
    assert_eq!(acc["email"], Value::Null);
    let (_, list) = api.get("/api/accounts").await;
    assert_eq!(list, json!([acc]));
    let (s, plans) = api.get(&format!("/api/plans?accountId={}", id(&acc))).await;
    assert_eq!(s, 200);
    let default = plans
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["isActive"] == true && p["isOption"] == false)
        .expect("a default plan");
    assert_eq!(default["accountId"], acc["id"]);
    assert_eq!(
        api.get("/api/plans?accountId=other").await,
        (200, json!([]))
    );
}

#[tokio::test]
async fn final_customers_and_subscriptions() {
    let emu = start().await;
    let api = Api::new(&emu);
    let (acc, fc, _) = seed(&api).await;
    let (s, got) = api.get(&format!("/api/final-customers/{fc}")).await;
    assert_eq!(s, 200);
    assert_eq!(got["currency"], "EUR");
    assert_eq!(got["costMarginPct"], 30);
    assert_eq!(got["email"], Value::Null);
    assert_eq!(got["phone"], Value::Null);
    assert_eq!(got["isActive"], true);
    // PUT merges top-level keys; id in the body is ignored.
    let (s, put) = api
        .put(
            &format!("/api/final-customers/{fc}"),
            json!({"email": "p@x.fr", "id": "nope"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(put["email"], "p@x.fr");
    assert_eq!(put["name"], "Chez Paul");
    assert_eq!(put["id"], fc.as_str());
    let (_, list) = api
        .get(&format!("/api/final-customers?accountId={acc}"))
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        api.get("/api/final-customers?accountId=zzz").await.1,
        json!([])
    );
    // Unknown account → 400.
    let (s, err) = api
        .post(
            "/api/final-customers",
            json!({"accountId": "nope", "name": "x"}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(err["error"].is_string());
    // Subscriptions.
    let (_, plans) = api.get(&format!("/api/plans?accountId={acc}")).await;
    let plan = id(&plans[0]);
    let subs = format!("/api/final-customers/{fc}/subscriptions");
    let (s, sub) = api.post(&subs, json!({"planId": plan})).await;
    assert_eq!(s, 201);
    assert_eq!(sub["planId"], plan.as_str());
    assert_eq!(api.get(&subs).await.1.as_array().unwrap().len(), 1);
    assert_eq!(api.post(&subs, json!({"planId": "nope"})).await.0, 400);
    assert_eq!(
        api.delete(&format!("/api/subscriptions/{}", id(&sub)))
            .await
            .0,
        204
    );
    assert_eq!(
        api.delete(&format!("/api/subscriptions/{}", id(&sub)))
            .await
            .0,
        404
    );
    assert_eq!(api.get(&subs).await.1, json!([]));
    assert_eq!(
        api.get("/api/final-customers/nope/subscriptions").await.0,
        404
    );
    // Delete.
    assert_eq!(
        api.delete(&format!("/api/final-customers/{fc}")).await.0,
        204
    );
    assert_eq!(api.get(&format!("/api/final-customers/{fc}")).await.0, 404);
    assert_eq!(
        api.put(&format!("/api/final-customers/{fc}"), json!({}))
            .await
            .0,
        404
    );
    assert_eq!(
        api.delete(&format!("/api/final-customers/{fc}")).await.0,
        404
    );
}

#[tokio::test]
async fn agent_create_read_and_list() {
    let emu = start().await;
    let api = Api::new(&emu);
    let (acc, _fc, agent) = seed(&api).await;
    let aid = id(&agent);
    assert_eq!(aid.len(), 36);
    let token = agent["apiToken"].as_str().unwrap();
    assert_eq!(token.len(), 48);
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(agent["publicToken"].as_str().unwrap().starts_with("pk_"));
    assert_eq!(agent["pauseReason"], Value::Null);
    assert_eq!(agent["phoneLines"], json!([]));
    assert!(agent["createdAt"].is_string() && agent["updatedAt"].is_string());
    // Numbers as sent; fields not sent are null; isActive defaults to true.
    assert_eq!(agent["vadThreshold"], json!(0.5));
    assert_eq!(agent["maxCallDurationSec"], json!(600));
    assert_eq!(agent["timezone"], Value::Null);
    assert_eq!(agent["chatMode"], Value::Null);
    let (s, got) = api.get(&format!("/api/agents/{aid}")).await;
    assert_eq!(s, 200);
    assert_eq!(got, agent);
    let (_, list) = api.get("/api/agents").await;
    assert_eq!(list, json!([agent]));
    assert_eq!(list[0]["apiToken"], agent["apiToken"]);
    assert_eq!(
        api.get(&format!("/api/agents?accountId={acc}")).await.1,
        json!([agent])
    );
    assert_eq!(api.get("/api/agents?accountId=other").await.1, json!([]));
    // Unknown account or final customer → 400.
    let (s, e) = api.post("/api/agents", agent_body("nope", "nope")).await;
    assert_eq!(s, 400);
    assert!(e["error"].as_str().unwrap().contains("account"));
    let (s, _) = api.post("/api/agents", agent_body(&acc, "nope")).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn agent_put_merges_and_replaces_config_whole() {
    let emu = start().await;
    let api = Api::new(&emu);
    let (_, _, agent) = seed(&api).await;
    let aid = id(&agent);
    let (s, put) = api
        .put(
            &format!("/api/agents/{aid}"),
            json!({"aiVoice": "alloy", "config": {"restaurantId": "r1"}, "id": "x", "apiToken": "stolen"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(put["aiVoice"], "alloy");
    assert_eq!(
        put["config"],
        json!({"restaurantId": "r1"}),
        "config is replaced whole"
    );
    assert_eq!(put["name"], "Chez Paul", "keys not sent stay");
    assert_eq!(put["temperature"], json!(0.7));
    assert_eq!(put["id"], aid.as_str());
    assert_eq!(put["apiToken"], agent["apiToken"]);
    assert_eq!(api.get(&format!("/api/agents/{aid}")).await.1, put);
    assert_eq!(api.put("/api/agents/nope", json!({})).await.0, 404);
}

#[tokio::test]
async fn tools_crud_order_and_duplicates() {
    let emu = start().await;
    let api = Api::new(&emu);
    let (_, _, agent) = seed(&api).await;
    let aid = id(&agent);
    let tools = format!("/api/agents/{aid}/tools");
    let (s, t2) = api.post(&tools, tool("b", 2)).await;
    assert_eq!(s, 201);
    assert_eq!(t2["http"]["method"], "POST");
    assert_eq!(t2["contextUpdates"], Value::Null);
    assert_eq!(t2["condition"], Value::Null);
    assert_eq!(t2["extraCostResponseField"], Value::Null);
    for flag in [
        "triggersHangup",
        "triggersTransfer",
        "mutesClientAudio",
        "skipResponseCreate",
    ] {
        assert_eq!(t2[flag], false, "{flag}");
    }
    assert_eq!(t2["isEnabled"], true);
    let (_, t1) = api.post(&tools, tool("a", 1)).await;
    let (s, dup) = api.post(&tools, tool("a", 1)).await;
    assert_eq!(s, 201, "duplicate names are accepted");
    let (_, bare) = api.post(&tools, json!({"name": "bare"})).await;
    assert_eq!(bare["description"], "");
    assert_eq!(bare["http"], Value::Null);
    let (_, list) = api.get(&tools).await;
    let names: Vec<String> = list.as_array().unwrap().iter().map(id).collect();
    assert_eq!(
        names,
        vec![id(&bare), id(&t1), id(&dup), id(&t2)],
        "by sortOrder, then creation"
    );
    // PUT replaces the tool's fields: http not sent → null.
    let one = format!("{tools}/{}", id(&t2));
    let (s, put) = api.put(&one, json!({"name": "b2", "sortOrder": 0})).await;
    assert_eq!(s, 200);
    assert_eq!(put["id"], t2["id"]);
    assert_eq!(put["name"], "b2");
    assert_eq!(put["http"], Value::Null);
    assert_eq!(put["description"], "");
    assert_eq!(api.delete(&one).await.0, 204);
    assert_eq!(api.delete(&one).await.0, 404);
    assert_eq!(api.put(&one, tool("x", 1)).await.0, 404);
    assert_eq!(api.get(&tools).await.1.as_array().unwrap().len(), 3);
    assert_eq!(api.get("/api/agents/nope/tools").await.0, 404);
    assert_eq!(
        api.post("/api/agents/nope/tools", tool("x", 1)).await.0,
        404
    );
}

#[tokio::test]
async fn brain_replaces_prompt_and_tool_set() {
    let emu = start().await;
    let api = Api::new(&emu);
    let (_, _, agent) = seed(&api).await;
    let aid = id(&agent);
    let tools = format!("/api/agents/{aid}/tools");
    let (_, old) = api.post(&tools, tool("old", 1)).await;
    let (_, kept) = api.post(&tools, tool("kept", 2)).await;
    let brain = json!({"prompt": "new prompt", "version": 3,
                       "tools": [tool("kept", 2), tool("fresh", 1)]});
    let (s, _) = api.put(&format!("/api/agents/{aid}/brain"), brain).await;
    assert_eq!(s, 200);
    let (_, list) = api.get(&tools).await;
    let list = list.as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["fresh", "kept"]);
    for t in list {
        assert_ne!(t["id"], old["id"]);
        assert_ne!(t["id"], kept["id"], "new tools get new ids");
        assert_eq!(t["isEnabled"], true);
    }
    assert_eq!(
        api.get(&format!("/api/agents/{aid}")).await.1["basePrompt"],
        "new prompt"
    );
    assert_eq!(
        api.put(&format!("{tools}/{}", id(&old)), tool("x", 1))
            .await
            .0,
        404
    );
    assert_eq!(
        api.put(
            &format!("/api/agents/{aid}/brain"),
            json!({"prompt": 1, "tools": []})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        api.put(
            "/api/agents/nope/brain",
            json!({"prompt": "p", "tools": []})
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn phone_lines_hide_the_sip_password() {
    let emu = start().await;
    let api = Api::new(&emu);
    let (_, _, agent) = seed(&api).await;
    let aid = id(&agent);
    let lines = format!("/api/agents/{aid}/phone-lines");
    let (s, line) = api
        .post(
            &lines,
            json!({"phoneNumber": "+33100000000", "provider": "sip", "sipTransport": "udp",
                              "sipUsername": "u", "sipPassword": "hunter2"}),
        )
        .await;
    assert_eq!(s, 201);
    assert!(line.get("sipPassword").is_none());
    assert_eq!(line["sipRegistered"], false);
    assert_eq!(line["twilioTrunkSid"], Value::Null);
    assert_eq!(line["isActive"], true);
    let (_, list) = api.get(&lines).await;
    assert_eq!(list, json!([line]));
    let (_, got) = api.get(&format!("/api/agents/{aid}")).await;
    assert_eq!(got["phoneLines"], json!([line]));
    let state = emu.snapshot();
    assert_eq!(
        state["agents"][0]["phoneLines"][0]["sipPassword"],
        "hunter2"
    );
    let one = format!("{lines}/{}", id(&line));
    let (s, put) = api
        .put(
            &one,
            json!({"sipDomain": "sip.example", "sipPassword": "new"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(put["sipDomain"], "sip.example");
    assert_eq!(put["sipUsername"], "u", "PUT merges");
    assert!(put.get("sipPassword").is_none());
    assert_eq!(
        emu.snapshot()["agents"][0]["phoneLines"][0]["sipPassword"],
        "new"
    );
    assert_eq!(api.delete(&one).await.0, 204);
    assert_eq!(api.delete(&one).await.0, 404);
    assert_eq!(api.get(&lines).await.1, json!([]));
}

#[tokio::test]
async fn deleting_an_agent_cascades() {
    let emu = start().await;
    let api = Api::new(&emu);
    let (_, _, agent) = seed(&api).await;
    let aid = id(&agent);
    api.post(&format!("/api/agents/{aid}/tools"), tool("a", 1))
        .await;
    api.post(
        &format!("/api/agents/{aid}/phone-lines"),
        json!({"phoneNumber": "+331"}),
    )
    .await;
    assert_eq!(api.delete(&format!("/api/agents/{aid}")).await.0, 204);
    assert_eq!(api.get(&format!("/api/agents/{aid}")).await.0, 404);
    assert_eq!(api.get(&format!("/api/agents/{aid}/tools")).await.0, 404);
    assert_eq!(
        api.get(&format!("/api/agents/{aid}/phone-lines")).await.0,
        404
    );
    assert_eq!(api.delete(&format!("/api/agents/{aid}")).await.0, 404);
    assert_eq!(emu.snapshot()["agents"], json!([]));
}

#[tokio::test]
async fn bad_requests_answer_400_with_an_error() {
    let emu = start().await;
    let api = Api::new(&emu);
    let (_, _, agent) = seed(&api).await;
    let aid = id(&agent);
    let (s, e) = api.raw(Method::POST, "/api/accounts", "{not json").await;
    assert_eq!(s, 400);
    assert!(e["error"].as_str().unwrap().contains("JSON"));
    let (s, _) = api.raw(Method::POST, "/api/accounts", "[1]").await;
    assert_eq!(s, 400);
    let (s, e) = api
        .post(&format!("/api/agents/{aid}/tools"), json!({"name": 5}))
        .await;
    assert_eq!(s, 400);
    assert!(e["error"].as_str().unwrap().contains("name"));
    assert_eq!(
        api.post(
            &format!("/api/agents/{aid}/tools"),
            json!({"name": "x", "sortOrder": "x"})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        api.put(&format!("/api/agents/{aid}"), json!({"config": []}))
            .await
            .0,
        400
    );
    assert_eq!(
        api.put(&format!("/api/agents/{aid}"), json!({"isActive": "yes"}))
            .await
            .0,
        400
    );
    assert_eq!(
        api.post("/api/accounts", json!({"email": "x"})).await.0,
        400,
        "name is required"
    );
    // Nothing was changed by the refused calls.
    assert_eq!(api.get(&format!("/api/agents/{aid}")).await.1, agent);
    assert_eq!(api.get("/api/nowhere").await.0, 404);
    assert_eq!(api.delete("/api/accounts").await.0, 405);
}

#[tokio::test]
async fn api_key_is_enforced_on_management_and_admin_calls() {
    let emu = Emulator::start(EmulatorConfig {
        api_key: Some(sipform_emulator::ApiKey::new("acc_test")),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let mut api = Api::new(&emu);
    let (s, e) = api.get("/api/accounts").await;
    assert_eq!(s, 401);
    assert!(e["error"].is_string());
    api.key = Some("wrong".into());
    assert_eq!(api.get("/api/accounts").await.0, 401);
    assert_eq!(api.post("/api/accounts", json!({"name": "x"})).await.0, 401);
    assert_eq!(emu.snapshot()["accounts"], json!([]));
    api.key = Some("acc_test".into());
    assert_eq!(api.get("/api/accounts").await, (200, json!([])));
    // The admin routes serve every token and SIP password and reset the store: with a key
    // set, they need it too (issue 25 #9).
    for key in [None, Some("wrong")] {
        api.key = key.map(str::to_string);
        for route in ["state", "requests", "faults"] {
            assert_eq!(
                api.get(&format!("/__emulator/{route}")).await.0,
                401,
                "GET /__emulator/{route} with key {key:?}"
            );
        }
        assert_eq!(api.post("/__emulator/reset", json!({})).await.0, 401);
        assert_eq!(api.post("/__emulator/faults", json!({})).await.0, 401);
    }
    api.key = Some("acc_test".into());
    assert_eq!(api.get("/__emulator/state").await.0, 200);
    assert_eq!(api.post("/__emulator/reset", json!({})).await.0, 204);
}

#[tokio::test]
async fn introspection_counts_logs_and_resets() {
    let emu = start().await;
    let api = Api::new(&emu);
    let (_, _, agent) = seed(&api).await;
    api.get(&format!("/api/agents/{}", id(&agent))).await;
    api.get("/api/agents/nope").await;
    api.get("/__emulator/state").await;
    let counts = emu.request_counts();
    assert_eq!(counts["POST /api/agents"], 1);
    assert_eq!(counts["POST /api/accounts"], 1);
    assert_eq!(counts["POST /api/final-customers"], 1);
    assert_eq!(counts["GET /api/agents/:id"], 2);
    assert_eq!(counts.len(), 4, "admin routes are not counted: {counts:?}");
    let (s, req) = api.get("/__emulator/requests").await;
    assert_eq!(s, 200);
    assert_eq!(req["counts"]["GET /api/agents/:id"], 2);
    let log = req["log"].as_array().unwrap();
    assert_eq!(log.len(), 5);
    assert_eq!(
        log[0],
        json!({"seq": 1, "method": "POST", "route": "/api/accounts", "path": "/api/accounts", "status": 201})
    );
    assert_eq!(log[4]["status"], 404);
    assert_eq!(log[4]["path"], "/api/agents/nope");
    let (_, state) = api.get("/__emulator/state").await;
    assert_eq!(state, emu.snapshot());
    assert_eq!(state["agents"][0]["apiToken"], agent["apiToken"]);
    assert_eq!(state["agents"][0]["tools"], json!([]));
    for key in [
        "accounts",
        "finalCustomers",
        "agents",
        "plans",
        "subscriptions",
    ] {
        assert!(state[key].is_array(), "{key}");
    }
    // Reset clears objects and counters but keeps the fault set.
    emu.set_faults(Faults {
        max_in_flight: Some(100),
        ..Faults::default()
    });
    assert_eq!(api.post("/__emulator/reset", json!({})).await.0, 204);
    assert!(emu.request_counts().is_empty());
    assert_eq!(api.get("/api/accounts").await.1, json!([]));
    assert_eq!(emu.faults().max_in_flight, Some(100));
}

#[tokio::test]
async fn faults_admin_route_round_trips_and_validates() {
    let emu = start().await;
    let api = Api::new(&emu);
    let body = json!({"latency": {"fixedMs": 1, "jitterMs": 2},
        "errors": [{"method": "*", "route": "/api/agents/:id/tools", "rate": 0.1, "statuses": [500, 502, 503]}],
        "commitThenFail": [{"method": "POST", "route": "*", "rate": 0.05, "mode": "error"}],
        "resets": [{"method": "*", "route": "*", "rate": 0.02}, {"method": "GET", "route": "/api/plans", "rate": 1}],
        "rateLimit": {"burst": 50, "perSecond": 200, "retryAfterSec": 1},
        "maxInFlight": 64});
    let (s, _) = api.post("/__emulator/faults", body.clone()).await;
    assert_eq!(s, 200);
    let (_, got) = api.get("/__emulator/faults").await;
    assert_eq!(got, body);
    assert_eq!(emu.faults().max_in_flight, Some(64));
    assert_eq!(
        api.post("/__emulator/faults", json!({"errors": [{"rate": 2.0}]}))
            .await
            .0,
        400
    );
    assert_eq!(
        api.post("/__emulator/faults", json!({"errros": []}))
            .await
            .0,
        400
    );
    assert_eq!(
        api.post(
            "/__emulator/faults",
            json!({"resets": [{"route": "/api/nope", "rate": 1}]})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        api.get("/__emulator/faults").await.1,
        body,
        "a refused set changes nothing"
    );
    assert_eq!(api.post("/__emulator/faults", json!({})).await.0, 200);
    assert_eq!(emu.faults(), Faults::default());
}

#[tokio::test]
async fn error_faults_hit_only_their_route() {
    let emu = start().await;
    let api = Api::new(&emu);
    let (_, _, agent) = seed(&api).await;
    let aid = id(&agent);
    emu.set_faults(Faults {
        errors: vec![ErrorRule {
            method: "*".into(),
            route: "/api/agents/:id/tools".into(),
            rate: 1.0,
            statuses: vec![502, 503],
        }],
        ..Faults::default()
    });
    for _ in 0..5 {
        let (s, e) = api.get(&format!("/api/agents/{aid}/tools")).await;
        assert!(s == 502 || s == 503, "{s}");
        assert!(e["error"].is_string());
    }
    assert_eq!(api.get(&format!("/api/agents/{aid}")).await.0, 200);
    let (s, _) = api
        .post(&format!("/api/agents/{aid}/tools"), tool("x", 1))
        .await;
    assert!(s >= 500);
    assert_eq!(
        emu.snapshot()["agents"][0]["tools"],
        json!([]),
        "an injected error stores nothing"
    );
    assert_eq!(emu.request_counts()["GET /api/agents/:id/tools"], 5);
}

#[tokio::test]
async fn commit_then_fail_error_stores_the_object() {
    let emu = start().await;
    let api = Api::new(&emu);
    let (acc, fc, _) = seed(&api).await;
    emu.set_faults(Faults {
        commit_then_fail: vec![CommitThenFail {
            method: "POST".into(),
            route: "/api/agents".into(),
            rate: 1.0,
            mode: CommitFailMode::Error,
        }],
        ..Faults::default()
    });
    let (s, _) = api.post("/api/agents", agent_body(&acc, &fc)).await;
    assert_eq!(s, 500);
    assert_eq!(
        api.get("/api/agents").await.1.as_array().unwrap().len(),
        2,
        "the write was stored"
    );
    let (_, req) = api.get("/__emulator/requests").await;
    assert_eq!(
        req["log"].as_array().unwrap().last().unwrap()["status"],
        200
    );
    let statuses: Vec<&Value> = req["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["status"])
        .collect();
    assert!(statuses.contains(&&json!(500)));
}

#[tokio::test]
async fn commit_then_fail_hang_times_the_client_out() {
    let emu = start().await;
    let mut api = Api::new(&emu);
    let (acc, _, _) = seed(&api).await;
    emu.set_faults(Faults {
        commit_then_fail: vec![CommitThenFail {
            method: "*".into(),
            route: "/api/final-customers".into(),
            rate: 1.0,
            mode: CommitFailMode::Hang,
        }],
        ..Faults::default()
    });
    api.client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let r = api
        .try_call(
            Method::POST,
            "/api/final-customers",
            Some(json!({"accountId": acc, "name": "Two"})),
        )
        .await;
    assert!(r.unwrap_err().is_timeout());
    assert_eq!(
        emu.snapshot()["finalCustomers"].as_array().unwrap().len(),
        2,
        "stored anyway"
    );
    // GET on the same route is not a write: it answers.
    assert_eq!(api.get("/api/final-customers").await.0, 200);
    // A held connection does not keep shutdown waiting.
    tokio::time::timeout(Duration::from_secs(5), emu.shutdown())
        .await
        .expect("shutdown despite a hung request");
}

#[tokio::test]
async fn reset_fault_closes_the_connection_without_an_answer() {
    let emu = start().await;
    let api = Api::new(&emu);
    emu.set_faults(Faults {
        resets: vec![ResetRule {
            method: "POST".into(),
            route: "/api/accounts".into(),
            rate: 1.0,
        }],
        ..Faults::default()
    });
    let r = api
        .try_call(Method::POST, "/api/accounts", Some(json!({"name": "x"})))
        .await;
    let e = r.unwrap_err();
    assert!(!e.is_timeout() && e.status().is_none(), "{e:?}");
    assert_eq!(
        emu.snapshot()["accounts"],
        json!([]),
        "reset happens before handling"
    );
    assert_eq!(api.get("/api/accounts").await.0, 200);
    let (_, req) = api.get("/__emulator/requests").await;
    assert_eq!(req["log"][0]["status"], 0);
    assert_eq!(req["counts"]["POST /api/accounts"], 1);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let emu = start().await;
    let api = Api::new(&emu);
    emu.set_faults(Faults {
        rate_limit: Some(RateLimit {
            burst: 3,
            per_second: 0.01,
            retry_after_sec: 7,
        }),
        ..Faults::default()
    });
    for _ in 0..3 {
        assert_eq!(api.get("/api/accounts").await.0, 200);
    }
    let resp = reqwest::get(format!("{}/api/accounts", emu.base_url()))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(
        api.get("/__emulator/state").await.0,
        200,
        "admin routes are never limited"
    );
}

#[tokio::test]
async fn max_in_flight_answers_503_beyond_it() {
    let emu = start().await;
    emu.set_faults(Faults {
        max_in_flight: Some(1),
        latency: Some(Latency {
            fixed_ms: 400,
            jitter_ms: 0,
        }),
        ..Faults::default()
    });
    let url = format!("{}/api/accounts", emu.base_url());
    let (a, b) = tokio::join!(reqwest::get(&url), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        reqwest::get(&url).await
    });
    assert_eq!(a.unwrap().status().as_u16(), 200);
    assert_eq!(b.unwrap().status().as_u16(), 503);
}

#[tokio::test]
async fn latency_is_added() {
    let emu = start().await;
    let api = Api::new(&emu);
    api.get("/api/accounts").await; // warm the connection
    emu.set_faults(Faults {
        latency: Some(Latency {
            fixed_ms: 150,
            jitter_ms: 50,
        }),
        ..Faults::default()
    });
    let t = Instant::now();
    assert_eq!(api.get("/api/accounts").await.0, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    api.get("/__emulator/state").await;
    assert!(
        t.elapsed() < Duration::from_millis(150),
        "admin routes have no latency"
    );
}

async fn fault_sequence(seed: u64) -> Vec<u16> {
    let emu = Emulator::start(EmulatorConfig {
        seed,
        faults: Faults {
            errors: vec![ErrorRule {
                method: "*".into(),
                route: "*".into(),
                rate: 0.5,
                statuses: vec![500, 502, 503],
            }],
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let api = Api::new(&emu);
    let mut out = Vec::new();
    for _ in 0..40 {
        out.push(api.get("/api/accounts").await.0);
    }
    // A reset reseeds: the same sequence again.
    emu.reset();
    for (i, expected) in out.clone().into_iter().enumerate() {
        assert_eq!(
            api.get("/api/accounts").await.0,
            expected,
            "request {i} after reset"
        );
    }
    emu.shutdown().await;
    out
}

#[tokio::test]
async fn same_seed_same_faults() {
    let a = fault_sequence(42).await;
    let b = fault_sequence(42).await;
    let c = fault_sequence(7).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.contains(&200) && a.iter().any(|s| *s >= 500));
}

#[tokio::test]
async fn data_file_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("emu.json");
    let config = EmulatorConfig {
        data: Some(data.clone()),
        ..EmulatorConfig::default()
    };
    let emu = Emulator::start(config.clone()).await.unwrap();
    let api = Api::new(&emu);
    let (_, fc, agent) = seed(&api).await;
    let aid = id(&agent);
    api.post(&format!("/api/agents/{aid}/tools"), tool("b", 2))
        .await;
    api.post(&format!("/api/agents/{aid}/tools"), tool("a", 1))
        .await;
    api.post(
        &format!("/api/agents/{aid}/phone-lines"),
        json!({"phoneNumber": "+331", "sipPassword": "pw"}),
    )
    .await;
    let before = emu.snapshot();
    assert!(data.exists(), "written after each write, before the answer");
    let on_disk: Value = serde_json::from_slice(&std::fs::read(&data).unwrap()).unwrap();
    assert_eq!(on_disk, before);
    emu.shutdown().await;

    let emu = Emulator::start(config).await.unwrap();
    assert_eq!(emu.snapshot(), before);
    let api = Api::new(&emu);
    assert_eq!(
        api.get(&format!("/api/agents/{aid}")).await.1["apiToken"],
        agent["apiToken"]
    );
    assert_eq!(api.get(&format!("/api/final-customers/{fc}")).await.0, 200);
    let (_, tools) = api.get(&format!("/api/agents/{aid}/tools")).await;
    assert_eq!(tools[0]["name"], "a");
    assert_eq!(tools.as_array().unwrap().len(), 2);
    // And writes after the restart keep going to the file.
    assert_eq!(api.delete(&format!("/api/agents/{aid}")).await.0, 204);
    let on_disk: Value = serde_json::from_slice(&std::fs::read(&data).unwrap()).unwrap();
    assert_eq!(on_disk["agents"], json!([]));
    emu.shutdown().await;
}

#[tokio::test]
async fn an_unwritable_data_path_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let r = Emulator::start(EmulatorConfig {
        data: Some(dir.path().join("missing-folder").join("emu.json")),
        ..EmulatorConfig::default()
    })
    .await;
    assert!(r.is_err());
}

#[tokio::test]
async fn a_corrupt_data_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("emu.json");
    std::fs::write(&data, "not json").unwrap();
    let r = Emulator::start(EmulatorConfig {
        data: Some(data),
        ..EmulatorConfig::default()
    })
    .await;
    assert!(r.is_err());
}
