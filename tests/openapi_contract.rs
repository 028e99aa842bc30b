//! The contract document (`docs/sip-agent-server.openapi.yaml`) against the emulator: every
//! route the emulator serves is documented and nothing else is, and the emulator's answers to a
//! realistic session (with an API key) validate against the document's schema for that path,
//! method and status.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{json, Map, Value};
use sipform_emulator::{
    ApiKey, Emulator, EmulatorConfig, EmulatorHandle, ErrorRule, Faults, RateLimit,
};

const DOC: &str = "docs/sip-agent-server.openapi.yaml";

/// The operation keys of an OpenAPI path item.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

const KEY: &str = "acc_openapi_contract_key";

fn document() -> Value {
    let path = common::repo().join(DOC);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{DOC}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{DOC} is not YAML: {e}"))
}

/// `/api/agents/:id/tools/:toolId` → `/api/agents/{id}/tools/{toolId}`.
fn openapi_path(template: &str) -> String {
    template
        .split('/')
        .map(|seg| match seg.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => seg.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The `{name}` parameters of a path template.
fn path_params(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_string)
        .collect()
}

/// Every `$ref` string anywhere in `v`, with where it sits.
fn refs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    if let Value::String(r) = x {
                        out.push((at.to_string(), r.clone()));
                    }
                } else {
                    refs(x, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                refs(x, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The document, and what a test needs of it.
struct Contract {
    doc: Value,
}

impl Contract {
    fn new() -> Self {
        Contract { doc: document() }
    }

    /// `v`, or what its local `$ref` points at (followed until it is not a reference).
    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        for _ in 0..16 {
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) if v.as_object().is_some_and(|m| m.len() == 1) => {
                    let pointer = r
                        .strip_prefix('#')
                        .unwrap_or_else(|| panic!("{DOC}: non-local $ref {r}"));
                    v = self
                        .doc
                        .pointer(pointer)
                        .unwrap_or_else(|| panic!("{DOC}: dangling $ref {r}"));
                }
                _ => return v,
            }
        }
        panic!("{DOC}: $ref loop")
    }

    fn paths(&self) -> &Map<String, Value> {
        self.doc["paths"]
            .as_object()
            .unwrap_or_else(|| panic!("{DOC}: no paths"))
    }

    /// The documented `(METHOD, path)` pairs.
    fn operations(&self) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in self.paths() {
            for m in METHODS {
                if item.get(*m).is_some() {
                    out.insert((m.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    /// The documented path a concrete request path falls under.
    fn template_of(&self, path: &str) -> Option<&str> {
        let path = path.split('?').next().unwrap_or(path);
        let segs: Vec<&str> = path.split('/').collect();
        self.paths().keys().map(String::as_str).find(|t| {
            let tsegs: Vec<&str> = t.split('/').collect();
            tsegs.len() == segs.len()
                && tsegs
                    .iter()
                    .zip(&segs)
                    .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
        })
    }

    /// The documented answer of an operation for `status`: exact, then `4XX`-style, then
    /// `default`.
    fn response<'a>(&'a self, op: &'a Value, status: u16) -> Option<&'a Value> {
        let responses = op.get("responses")?;
        let range = format!("{}XX", status / 100);
        [status.to_string(), range, "default".to_string()]
            .iter()
            .find_map(|k| responses.get(k))
            .map(|r| self.resolve(r))
    }

    /// A validator for a schema of the document, its `#/components/...` references intact.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let wrapper = json!({"allOf": [schema], "components": self.doc["components"]});
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&wrapper)
            .unwrap_or_else(|e| panic!("{DOC}: schema {schema} does not compile: {e}"))
    }

    /// Every way `value` breaks `schema`.
    fn errors(&self, schema: &Value, value: &Value) -> Vec<String> {
        self.validator(schema)
            .iter_errors(value)
            .map(|e| format!("{} at `{}`", e, e.instance_path()))
            .collect()
    }

    /// The properties `schema` declares, through `$ref`, `allOf` and the object branches of
    /// `oneOf`/`anyOf`; `None` for a free-form object.
    fn properties<'a>(&'a self, schema: &'a Value) -> Option<BTreeMap<&'a str, &'a Value>> {
        let s = self.resolve(schema);
        let mut out = BTreeMap::new();
        let mut found = false;
        if let Some(p) = s.get("properties").and_then(Value::as_object) {
            found = true;
            for (k, v) in p {
                out.entry(k.as_str()).or_insert(v);
            }
        }
        let branches = ["allOf", "oneOf", "anyOf"]
            .iter()
            .filter_map(|k| s.get(*k).and_then(Value::as_array))
            .flatten();
        for b in branches {
            if let Some(p) = self.properties(b) {
                found = true;
                for (k, v) in p {
                    out.entry(k).or_insert(v);
                }
            }
        }
        found.then_some(out)
    }

    /// Keys of `value` its schema does not declare (where the schema declares any): the
    /// session sends only documented fields, so every key of an answer must be documented.
    fn undocumented(&self, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
        let s = self.resolve(schema);
        match value {
            Value::Object(m) => {
                let Some(props) = self.properties(s) else {
                    return;
                };
                for (k, v) in m {
                    match props.get(k.as_str()) {
                        Some(p) => self.undocumented(p, v, &format!("{at}/{k}"), out),
                        None => out.push(format!("{at}/{k}")),
                    }
                }
            }
            Value::Array(items) => {
                let item_schema = s.get("items").or_else(|| {
                    s.get("allOf")
                        .and_then(Value::as_array)
                        .and_then(|a| a.iter().find_map(|b| self.resolve(b).get("items")))
                });
                if let Some(is) = item_schema {
                    for (i, v) in items.iter().enumerate() {
                        self.undocumented(is, v, &format!("{at}/{i}"), out);
                    }
                }
            }
            _ => {}
        }
    }
}

#[test]
fn every_emulator_route_is_documented_and_nothing_else() {
    let c = Contract::new();
    assert!(
        c.doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{DOC}: not OpenAPI 3.1"
    );
    let served: BTreeSet<(String, String)> = sipform_emulator::routes()
        .map(|(m, t)| (m.to_string(), openapi_path(t)))
        .collect();
    assert!(served.len() >= 25, "the emulator serves {served:?}");
    let documented = c.operations();
    let missing: Vec<_> = served.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty() && phantom.is_empty(),
        "served but not documented: {missing:?}\ndocumented but not served: {phantom:?}"
    );

    let mut problems = Vec::new();
    for (path, item) in c.paths() {
        if !path.starts_with("/api/") {
            problems.push(format!("{path}: the contract is the /api routes only"));
        }
        for m in METHODS {
            let Some(op) = item.get(*m) else { continue };
            // Every `{param}` of the path is declared, and nothing else.
            let declared: BTreeSet<String> = item
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .chain(op.get("parameters").and_then(Value::as_array))
                .flatten()
                .map(|p| c.resolve(p))
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect();
            if declared != path_params(path) {
                problems.push(format!("{m} {path}: path parameters {declared:?}"));
            }
            // Every operation says what a missing key and throttling answer.
            for status in [401, 429] {
                if c.response(op, status).is_none() {
                    problems.push(format!("{m} {path}: no {status} answer"));
                }
            }
            if matches!(*m, "post" | "put") && c.response(op, 400).is_none() {
                problems.push(format!("{m} {path}: no 400 answer for a bad body"));
            }
            if path.contains('{') && c.response(op, 404).is_none() {
                problems.push(format!("{m} {path}: no 404 answer for an unknown id"));
            }
        }
    }
    // Every reference resolves, and every schema compiles.
    let mut all = Vec::new();
    refs(&c.doc, "", &mut all);
    for (at, r) in &all {
        let target = r.strip_prefix('#').and_then(|p| c.doc.pointer(p));
        if target.is_none() {
            problems.push(format!("{at}: dangling $ref {r}"));
        }
    }
    for (name, schema) in c.doc["components"]["schemas"]
        .as_object()
        .expect("component schemas")
    {
        if jsonschema::meta::validate(schema).is_err() {
            problems.push(format!("components.schemas.{name}: not a JSON Schema"));
        }
        let _ = c.validator(schema);
    }
    for name in [
        "Error",
        "Account",
        "FinalCustomer",
        "Plan",
        "Subscription",
        "Agent",
        "Tool",
        "PhoneLine",
    ] {
        if c.doc["components"]["schemas"].get(name).is_none() {
            problems.push(format!("components.schemas.{name} is missing"));
        }
    }
    let scheme = &c.doc["components"]["securitySchemes"]["accountKey"];
    if scheme["type"] != "apiKey" || scheme["in"] != "header" || scheme["name"] != "X-API-Key" {
        problems.push(format!("the X-API-Key security scheme: {scheme}"));
    }
    if !c.doc["info"]["description"]
        .as_str()
        .is_some_and(|d| d.contains("/__emulator/"))
    {
        problems.push("the description must say the admin routes are left out".into());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A client of the emulator that checks every answer against the document.
struct Session {
    c: Contract,
    http: reqwest::Client,
    base: String,
    failures: Vec<String>,
    /// `(METHOD, documented path)` that gave a validated 2xx answer.
    covered: BTreeSet<(String, String)>,
    /// Statuses that were validated.
    statuses: BTreeSet<u16>,
}

/// How a request is sent.
enum Body<'a> {
    None,
    Json(&'a Value),
    Raw(&'a str),
}

impl Session {
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Body<'_>,
        key: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(k) = key {
            req = req.header("X-API-Key", k);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(v),
            Body::Raw(t) => req
                .header("content-type", "application/json")
                .body(t.to_string()),
        };
        let resp = req.send().await.expect("the emulator answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("a body");
        (status, headers, text)
    }

    /// Validates one answer against the documented `response`.
    fn check_answer(
        &mut self,
        what: &str,
        response: &Value,
        headers: &reqwest::header::HeaderMap,
        text: &str,
    ) -> Value {
        let response = self.c.resolve(response).clone();
        if let Some(hs) = response.get("headers").and_then(Value::as_object) {
            for (name, h) in hs {
                let Some(raw) = headers.get(name.as_str()) else {
                    continue;
                };
                let raw = raw.to_str().unwrap_or_default();
                let value = serde_json::from_str(raw).unwrap_or(Value::String(raw.to_string()));
                let h = self.c.resolve(h);
                for e in self.c.errors(&h["schema"], &value) {
                    self.failures.push(format!("{what}: header {name}: {e}"));
                }
            }
        }
        let Some(schema) = response.pointer("/content/application~1json/schema") else {
            if !text.is_empty() {
                self.failures
                    .push(format!("{what}: documented without a body, got {text}"));
            }
            return Value::Null;
        };
        let body: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.failures
                    .push(format!("{what}: the body is not JSON ({e}): {text}"));
                return Value::Null;
            }
        };
        for e in self.c.errors(schema, &body) {
            self.failures.push(format!("{what}: {e}"));
        }
        let mut extra = Vec::new();
        self.c.undocumented(schema, &body, "", &mut extra);
        if !extra.is_empty() {
            self.failures
                .push(format!("{what}: undocumented keys {extra:?}"));
        }
        body
    }

    /// Sends a request with the key, checks the answer against the operation's documented
    /// answer for its status, and returns `(status, body)`.
    async fn call_with(
        &mut self,
        method: Method,
        path: &str,
        body: Body<'_>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let sent = match &body {
            Body::Json(v) => Some((*v).clone()),
            _ => None,
        };
        let m = method.as_str().to_string();
        let (status, headers, text) = self.send(method, path, body, key).await;
        let what = format!("{m} {path} → {status}");
        let Some(template) = self.c.template_of(path).map(str::to_string) else {
            self.failures
                .push(format!("{what}: path not in the document"));
            return (status, Value::Null);
        };
        let Some(op) = self.c.paths()[&template].get(m.to_lowercase()).cloned() else {
            self.failures
                .push(format!("{what}: method not in the document"));
            return (status, Value::Null);
        };
        // What the session sends as a valid request must be valid for the document too.
        if let (Some(sent), true) = (&sent, status < 300) {
            match op.pointer("/requestBody/content/application~1json/schema") {
                Some(schema) => {
                    for e in self.c.errors(schema, sent) {
                        self.failures
                            .push(format!("{what}: the request the emulator took: {e}"));
                    }
                }
                None => self.failures.push(format!(
                    "{what}: a body was sent to an operation without one"
                )),
            }
        }
        let Some(response) = self.c.response(&op, status).cloned() else {
            self.failures
                .push(format!("{what}: status not documented; body {text}"));
            return (status, Value::Null);
        };
        let value = self.check_answer(&what, &response, &headers, &text);
        self.statuses.insert(status);
        if (200..300).contains(&status) {
            self.covered.insert((m, template));
        }
        (status, value)
    }

    async fn call(&mut self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map_or(Body::None, Body::Json);
        self.call_with(method, path, body, Some(KEY)).await
    }

    /// As [`Session::call`], and the status must be `expected`.
    async fn expect(
        &mut self,
        expected: u16,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Value {
        let (status, v) = self.call(method.clone(), path, body).await;
        if status != expected {
            self.failures.push(format!(
                "{method} {path}: {status}, expected {expected}: {v}"
            ));
        }
        v
    }

    /// A body the emulator refuses with 400 must be refused by the document's request
    /// schema too (when the fault is one of shape, not of reference).
    fn request_refused(&mut self, method: &str, template: &str, body: &Value) {
        let schema = self.c.paths()[template][method]
            .pointer("/requestBody/content/application~1json/schema")
            .cloned()
            .unwrap_or(Value::Null);
        if self.c.errors(&schema, body).is_empty() {
            self.failures.push(format!(
                "{method} {template}: the document accepts {body}, which the emulator refuses"
            ));
        }
    }

    /// An answer that no operation documents (unknown path, unlisted method): it must match
    /// the shared response `name`.
    async fn general(&mut self, method: Method, path: &str, expected: u16, name: &str) {
        let what = format!("{method} {path}");
        let (status, headers, text) = self.send(method, path, Body::None, Some(KEY)).await;
        if status != expected {
            self.failures
                .push(format!("{what}: {status}, expected {expected}: {text}"));
        }
        let response = self.c.doc["components"]["responses"][name].clone();
        if response.is_null() {
            self.failures
                .push(format!("components.responses.{name} is missing"));
            return;
        }
        self.check_answer(&what, &response, &headers, &text);
        self.statuses.insert(status);
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

/// The twelve bundled tools, as the server's JSON.
fn bundled_tools() -> Vec<Value> {
    let files = sipform::front::load::yaml_files(&common::repo().join("tools")).expect("tools");
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("tool file");
            serde_saphyr::from_str(&text).expect("tool YAML")
        })
        .collect()
}

async fn start() -> EmulatorHandle {
    Emulator::start(EmulatorConfig {
        api_key: Some(ApiKey::new(KEY)),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulators_answers_validate_against_the_document() {
    use Method as M;
    let emu = start().await;
    let mut s = Session {
        c: Contract::new(),
        http: reqwest::Client::new(),
        base: emu.base_url(),
        failures: Vec::new(),
        covered: BTreeSet::new(),
        statuses: BTreeSet::new(),
    };

    // Without the key, or with another one: 401.
    let (st, _) = s.call_with(M::GET, "/api/accounts", Body::None, None).await;
    assert_eq!(st, 401);
    let (st, _) = s
        .call_with(
            M::POST,
            "/api/agents",
            Body::Json(&json!({})),
            Some("acc_wrong"),
        )
        .await;
    assert_eq!(st, 401);

    // The account, its plans, a final customer and its subscription.
    s.expect(200, M::GET, "/api/accounts", None).await;
    let account = s
        .expect(
            201,
            M::POST,
            "/api/accounts",
            Some(&json!({"name": "AlloResto", "email": "ops@alloresto.example", "isActive": true})),
        )
        .await;
    let acc = id(&account);
    s.expect(200, M::GET, "/api/accounts", None).await;
    let plans = s
        .expect(200, M::GET, &format!("/api/plans?accountId={acc}"), None)
        .await;
    s.expect(200, M::GET, "/api/plans", None).await;
    s.expect(200, M::GET, "/api/bridges", None).await;
    let plan = plans
        .as_array()
        .and_then(|p| {
            p.iter()
                .find(|p| p["isActive"] == true && p["isOption"] == false)
        })
        .map(id)
        .expect("a default plan");
    let fc = s
        .expect(
            201,
            M::POST,
            "/api/final-customers",
            Some(&json!({"accountId": acc, "name": "Pizzeria Napoli",
                         "email": "contact@napoli.example", "phone": null,
                         "currency": "EUR", "costMarginPct": 30, "isActive": true})),
        )
        .await;
    let fc = id(&fc);
    s.expect(
        200,
        M::GET,
        &format!("/api/final-customers?accountId={acc}"),
        None,
    )
    .await;
    s.expect(200, M::GET, "/api/final-customers", None).await;
    s.expect(200, M::GET, &format!("/api/final-customers/{fc}"), None)
        .await;
    s.expect(
        200,
        M::PUT,
        &format!("/api/final-customers/{fc}"),
        Some(&json!({"phone": "+33140000001"})),
    )
    .await;
    let sub = s
        .expect(
            201,
            M::POST,
            &format!("/api/final-customers/{fc}/subscriptions"),
            Some(&json!({"planId": plan})),
        )
        .await;
    let sub = id(&sub);
    s.expect(
        200,
        M::GET,
        &format!("/api/final-customers/{fc}/subscriptions"),
        None,
    )
    .await;

    // The agent, as the platform creates it.
    let config = json!({"restaurantId": "8c6f1f2e-3b4a-4d5e-9f60-718293a4b5c6",
        "deliveryEnabled": true, "reservationEnabled": true, "orderStatusEnabled": false,
        "transferEnabled": false});
    let agent = s
        .expect(
            201,
            M::POST,
            "/api/agents",
            Some(&json!({
                "accountId": acc, "finalCustomerId": fc, "name": "Pizzeria Napoli",
                "basePrompt": "={{data.systemPrompt}}", "aiModel": "gpt-realtime",
                "aiVoice": "sage", "vadThreshold": 0.5, "vadSilenceMs": 500,
                "vadPrefixPaddingMs": 300, "temperature": 0.7, "transportType": "sip_bridge",
                "timezone": "Europe/Paris", "apiBaseUrl": "https://app.example",
                "maxCallDurationSec": 600, "onCallEndWebhook": "={{BASE_URL}}/api/calls",
                "externalSessionUrl": "=https://app.example/api/ai?restaurantId={{config.restaurantId}}&callerPhone={{callerPhone}}",
                "chatEnabled": false, "chatMode": "text", "chatTitle": null,
                "chatOpenOnLoad": false, "config": config, "isActive": true,
            })),
        )
        .await;
    let ag = id(&agent);
    s.expect(200, M::GET, &format!("/api/agents?accountId={acc}"), None)
        .await;
    s.expect(200, M::GET, &format!("/api/agents/{ag}"), None)
        .await;
    let mut config2 = config.clone();
    config2["transferEnabled"] = json!(true);
    s.expect(
        200,
        M::PUT,
        &format!("/api/agents/{ag}"),
        Some(&json!({"temperature": 0.6, "config": config2})),
    )
    .await;

    // Its tools, then one replaced and one removed.
    let tools = bundled_tools();
    assert_eq!(tools.len(), common::bundled_tool_count());
    let mut tool_ids = Vec::new();
    for t in &tools {
        let made = s
            .expect(201, M::POST, &format!("/api/agents/{ag}/tools"), Some(t))
            .await;
        tool_ids.push(id(&made));
    }
    s.expect(200, M::GET, &format!("/api/agents/{ag}/tools"), None)
        .await;
    let mut changed = tools[0].clone();
    changed["description"] = json!("Vérifie la disponibilité.");
    s.expect(
        200,
        M::PUT,
        &format!("/api/agents/{ag}/tools/{}", tool_ids[0]),
        Some(&changed),
    )
    .await;
    s.expect(
        204,
        M::DELETE,
        &format!("/api/agents/{ag}/tools/{}", tool_ids[11]),
        None,
    )
    .await;

    // A phone line: the password goes in and never comes back.
    let line = s
        .expect(
            201,
            M::POST,
            &format!("/api/agents/{ag}/phone-lines"),
            Some(&json!({"phoneNumber": "+33140000001", "provider": "sip",
                         "sipTransport": "udp", "stunServer": null,
                         "sipDomain": "sip.example", "sipUsername": "napoli",
                         "sipPassword": "s3cret-line", "twilioTrunkSid": null,
                         "isActive": true})),
        )
        .await;
    let ln = id(&line);
    s.expect(200, M::GET, &format!("/api/agents/{ag}/phone-lines"), None)
        .await;
    s.expect(
        200,
        M::PUT,
        &format!("/api/agents/{ag}/phone-lines/{ln}"),
        Some(&json!({"sipPassword": "n3w-s3cret", "isActive": false})),
    )
    .await;
    let read = s
        .expect(200, M::GET, &format!("/api/agents/{ag}"), None)
        .await;
    assert_eq!(read["phoneLines"].as_array().map(Vec::len), Some(1));
    s.expect(200, M::GET, "/api/agents", None).await;

    // The brain: the prompt and the whole tool set at once.
    s.expect(
        200,
        M::PUT,
        &format!("/api/agents/{ag}/brain"),
        Some(&json!({"prompt": "Tu es l'assistant de Pizzeria Napoli.",
                     "tools": [tools[0], tools[tools.len() - 1]], "version": 2})),
    )
    .await;

    // Bad requests: 400, and the document's request schema refuses the same bodies.
    let no_ids = json!({"name": "Sans compte"});
    s.expect(400, M::POST, "/api/agents", Some(&no_ids)).await;
    s.request_refused("post", "/api/agents", &no_ids);
    let bad_type = json!({"name": 5, "sortOrder": "first"});
    s.expect(
        400,
        M::POST,
        &format!("/api/agents/{ag}/tools"),
        Some(&bad_type),
    )
    .await;
    s.request_refused("post", "/api/agents/{id}/tools", &bad_type);
    let no_prompt = json!({"tools": []});
    s.expect(
        400,
        M::PUT,
        &format!("/api/agents/{ag}/brain"),
        Some(&no_prompt),
    )
    .await;
    s.request_refused("put", "/api/agents/{id}/brain", &no_prompt);
    let line_without_number = json!({"provider": "sip"});
    s.expect(
        400,
        M::POST,
        &format!("/api/agents/{ag}/phone-lines"),
        Some(&line_without_number),
    )
    .await;
    s.request_refused("post", "/api/agents/{id}/phone-lines", &line_without_number);
    let (st, _) = s
        .call_with(
            M::POST,
            "/api/final-customers",
            Body::Raw("{\"name\": "),
            Some(KEY),
        )
        .await;
    assert_eq!(st, 400);
    let unknown_plan = json!({"planId": "00000000-0000-4000-8000-000000000000"});
    s.expect(
        400,
        M::POST,
        &format!("/api/final-customers/{fc}/subscriptions"),
        Some(&unknown_plan),
    )
    .await;

    // Unknown ids: 404; an unknown path and an unlisted method: the shared answers.
    let nobody = "11111111-2222-4333-8444-555555555555";
    s.expect(404, M::GET, &format!("/api/agents/{nobody}"), None)
        .await;
    s.expect(
        404,
        M::PUT,
        &format!("/api/agents/{ag}/tools/{nobody}"),
        Some(&tools[1]),
    )
    .await;
    s.general(M::GET, "/api/restaurants", 404, "NotFound").await;
    s.general(
        M::PATCH,
        &format!("/api/agents/{ag}"),
        405,
        "MethodNotAllowed",
    )
    .await;

    // Throttling and a failing server.
    emu.set_faults(Faults {
        rate_limit: Some(RateLimit {
            burst: 1,
            per_second: 0.001,
            retry_after_sec: 7,
        }),
        ..Faults::default()
    });
    s.call(M::GET, "/api/accounts", None).await;
    s.expect(429, M::GET, "/api/accounts", None).await;
    emu.set_faults(Faults {
        errors: vec![ErrorRule {
            method: "*".into(),
            route: "/api/agents/:id".into(),
            rate: 1.0,
            statuses: vec![503],
        }],
        ..Faults::default()
    });
    s.expect(503, M::GET, &format!("/api/agents/{ag}"), None)
        .await;
    emu.set_faults(Faults::default());

    // Deletes, and what is gone answers 404.
    s.expect(
        204,
        M::DELETE,
        &format!("/api/agents/{ag}/phone-lines/{ln}"),
        None,
    )
    .await;
    s.expect(204, M::DELETE, &format!("/api/subscriptions/{sub}"), None)
        .await;
    s.expect(404, M::DELETE, &format!("/api/subscriptions/{sub}"), None)
        .await;
    s.expect(204, M::DELETE, &format!("/api/agents/{ag}"), None)
        .await;
    s.expect(404, M::GET, &format!("/api/agents/{ag}/tools"), None)
        .await;
    s.expect(404, M::GET, &format!("/api/agents/{ag}/phone-lines"), None)
        .await;
    s.expect(204, M::DELETE, &format!("/api/final-customers/{fc}"), None)
        .await;
    s.expect(404, M::GET, &format!("/api/final-customers/{fc}"), None)
        .await;
    s.expect(
        404,
        M::GET,
        &format!("/api/final-customers/{fc}/subscriptions"),
        None,
    )
    .await;

    emu.shutdown().await;

    // Every route gave a validated success, and every kind of error was seen.
    let served: BTreeSet<(String, String)> = sipform_emulator::routes()
        .map(|(m, t)| (m.to_string(), openapi_path(t)))
        .collect();
    let untested: Vec<_> = served.difference(&s.covered).collect();
    if !untested.is_empty() {
        s.failures
            .push(format!("routes without a validated success: {untested:?}"));
    }
    for status in [200, 201, 204, 400, 401, 404, 405, 429, 503] {
        if !s.statuses.contains(&status) {
            s.failures.push(format!("no {status} answer was validated"));
        }
    }
    assert!(s.failures.is_empty(), "{}", s.failures.join("\n"));
}

/// The checker is not blind: an answer the document does not allow is reported.
#[test]
fn the_checks_catch_an_answer_that_breaks_the_document() {
    let c = Contract::new();
    let op = &c.paths()["/api/agents/{id}/phone-lines"]["get"];
    let schema = c
        .response(op, 200)
        .and_then(|r| r.pointer("/content/application~1json/schema"))
        .expect("a 200 schema");
    let good = json!([{"id": "11111111-2222-4333-8444-555555555555", "phoneNumber": "+33100000000",
        "provider": "sip", "sipTransport": null, "stunServer": null, "sipDomain": null,
        "sipUsername": null, "twilioTrunkSid": null, "isActive": true, "sipRegistered": false}]);
    assert!(
        c.errors(schema, &good).is_empty(),
        "{:?}",
        c.errors(schema, &good)
    );
    let mut leaked = good.clone();
    leaked[0]["sipPassword"] = json!("s3cret");
    assert!(!c.errors(schema, &leaked).is_empty());
    let mut long_id = good.clone();
    long_id[0]["id"] = json!("11111111-2222-4333-8444-555555555555-x");
    assert!(!c.errors(schema, &long_id).is_empty());
    let mut extra = good.clone();
    extra[0]["registeredAt"] = json!("now");
    let mut found = Vec::new();
    c.undocumented(schema, &extra, "", &mut found);
    assert_eq!(found, ["/0/registeredAt"]);
    let error = &c.doc["components"]["schemas"]["Error"];
    assert!(!c.errors(error, &json!({"message": "x"})).is_empty());
    assert!(c.errors(error, &json!({"error": "x"})).is_empty());
}
