//! A stub of the platform for the contract tests: its routes and methods are those of the
//! facts fixture (tests/fixtures/contract/platform-api-facts.json), like Next.js it answers
//! `OPTIONS` with `Allow:` and an unknown path with 404, and it records every other request
//! exactly (method, path and query as received, headers, body).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};

/// One request as the stub received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent on the wire (still percent-encoded).
    pub path_and_query: String,
    pub content_type: Option<String>,
    pub body: Option<Value>,
}

#[derive(Clone)]
struct Stub {
    routes: Arc<BTreeMap<String, Vec<String>>>,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

pub struct StubPlatform {
    pub url: String,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

impl StubPlatform {
    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }
}

/// The routes of the facts: path → methods.
fn fact_routes() -> BTreeMap<String, Vec<String>> {
    let facts: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/contract/platform-api-facts.json"
        ))
        .unwrap(),
    )
    .unwrap();
    facts["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["exists"] == json!(true))
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                r["methods"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

/// Starts the stub on a free port, on its own thread and runtime (the tests drive the binary
/// synchronously).
pub fn start() -> StubPlatform {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stub = Stub {
        routes: Arc::new(fact_routes()),
        seen: seen.clone(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = Router::new().fallback(handle).with_state(stub);
            let _ = axum::serve(listener, app).await;
        });
    });
    let addr = rx.recv().unwrap();
    StubPlatform {
        url: format!("http://{addr}"),
        seen,
    }
}

async fn handle(State(stub): State<Stub>, req: Request) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let Some(methods) = stub.routes.get(&path) else {
        return reply(StatusCode::NOT_FOUND, json!({"error": "not found"}));
    };
    if method == "OPTIONS" {
        let mut allow = methods.clone();
        allow.push("OPTIONS".into());
        return Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header("allow", allow.join(", "))
            .body(Body::empty())
            .unwrap();
    }
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body = (!bytes.is_empty()).then(|| serde_json::from_slice(&bytes).unwrap_or(Value::Null));
    stub.seen.lock().unwrap().push(Recorded {
        method: method.clone(),
        path_and_query,
        content_type,
        body,
    });
    if !methods.contains(&method) {
        return reply(StatusCode::METHOD_NOT_ALLOWED, json!({}));
    }
    match path.as_str() {
        "/api/availability/check" => reply(
            StatusCode::OK,
            json!({"available": true, "mode": "delivery", "estimatedTime": "19:30",
                "estimatedTimeISO": "2026-12-07T18:30:00.000Z", "customerLat": 48.869,
                "customerLng": 2.331, "googleApiCalls": 1, "deliveryFee": 3}),
        ),
        "/api/orders/status" | "/api/reservations/lookup" => {
            reply(StatusCode::OK, json!({"found": false, "orders": []}))
        }
        _ => reply(StatusCode::OK, json!({"ok": true})),
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}
