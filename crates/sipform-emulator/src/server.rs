//! The HTTP side: accept loop, one hyper connection per task, and the request pipeline
//! (count → faults → auth → store → snapshot → commit-then-fail).
//!
//! The accept loop is ours rather than `axum::serve` because a "reset" fault must drop the
//! TCP connection without an answer, which needs a handle on the connection task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinSet;

use super::bridges;
use super::faults::{CommitFailMode, Decision, Faults};
use super::listener::{self, Limits};
use super::routes;
use super::App;
use crate::LOG_TARGET;

/// How long a "hang" fault holds a connection: far past any client timeout.
const HANG_FOR: Duration = Duration::from_secs(600);

/// Per-connection context: the shared app and the switch that drops this connection.
#[derive(Clone)]
struct Ctx {
    app: Arc<App>,
    kill: Arc<Notify>,
}

pub(crate) async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    mut stopped: oneshot::Receiver<()>,
) {
    let router: Router<Ctx> = Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(64 << 20));
    let mut conns = JoinSet::new();
    // Slow or numerous clients cannot exhaust the emulator's file descriptors (issue 25, #10).
    let limits = Limits::from_env("SIPFORM_EMULATOR");
    let gate = limits.gate();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            (stream, permit) = listener::accept(&listener, &gate, "emulator") => {
                let kill = Arc::new(Notify::new());
                let svc = router.clone().with_state(Ctx { app: app.clone(), kill: kill.clone() });
                conns.spawn(connection(stream, svc, kill, limits, permit));
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

async fn connection(
    stream: TcpStream,
    svc: Router,
    kill: Arc<Notify>,
    limits: Limits,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let conn = limits
        .http1()
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
    tokio::select! {
        _ = conn => {}
        // Dropping the connection closes the socket with no answer written.
        _ = kill.notified() => {}
    }
}

fn json(status: u16, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status != 204 {
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    r
}

fn error(status: u16, message: &str) -> Response {
    json(status, serde_json::json!({ "error": message }).to_string())
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle(
    State(ctx): State<Ctx>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(admin) = uri.path().strip_prefix("/__emulator/") {
        // The admin routes dump every token and SIP password and reset the store: with a key
        // set, they need it too.
        if !key_matches(&ctx.app, &headers) {
            return error(401, "missing or wrong X-API-Key");
        }
        return admin_route(&ctx.app, &method, admin, &body);
    }
    api(ctx, method, uri, headers, body).await
}

/// Whether the request carries the emulator's key (always, when none is set).
fn key_matches(app: &App, headers: &HeaderMap) -> bool {
    match &app.api_key {
        Some(key) => {
            headers.get("x-api-key").map(HeaderValue::as_bytes) == Some(key.expose().as_bytes())
        }
        None => true,
    }
}

/// One API request, as its log line names it.
struct Call<'a> {
    app: &'a App,
    method: &'a str,
    route: &'a str,
    path: &'a str,
}

impl Call<'_> {
    /// Counts the request and writes its debug line (method, route, path, status: no
    /// headers, no body, so no key, token or password can leak).
    fn finish(&self, status: u16) {
        self.app
            .intro
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(self.method, self.route, self.path, status);
        tracing::debug!(
            target: LOG_TARGET,
            method = self.method,
            route = self.route,
            path = self.path,
            status,
            "emulator request"
        );
    }
}

async fn api(ctx: Ctx, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let app = &ctx.app;
    let method = method.as_str();
    let path = uri.path();
    let matched = routes::match_path(path);
    let route = matched.as_ref().map_or(path, |m| m.template);
    let n = app.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    let _guard = InFlight(&app.in_flight);
    let d = app
        .faults
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .decide(method, route, n);
    let call = Call {
        app,
        method,
        route,
        path,
    };

    if let Some(r) = injected(&ctx, &d, &call).await {
        return r;
    }
    if path == "/api/calls" && method == "GET" {
        // The agent's own Bearer token, not the account key (the contract's one such route).
        return agent_calls(&call, &uri, &headers);
    }
    if !key_matches(app, &headers) {
        call.finish(401);
        return error(401, "missing or wrong X-API-Key");
    }
    let Some(m) = matched else {
        call.finish(404);
        return error(404, &format!("no route for {method} {path}"));
    };
    if d.ignore_delete {
        call.finish(200);
        return json(200, serde_json::json!({ "success": true }).to_string());
    }
    let query = Query::<HashMap<String, String>>::try_from_uri(&uri).ok();
    let account = query
        .as_ref()
        .and_then(|q| q.get("accountId"))
        .map(String::as_str);
    let body = drop_fields(app, method, m.template, body);
    let answer = if m.template == bridges::ROUTE && method == "GET" {
        let store = app.store.read().unwrap_or_else(|e| e.into_inner());
        Ok((200, app.calls.answer(&store)))
    } else {
        routes::dispatch(&app.store, method, &m, account, &body)
    };
    let (status, text) = match answer {
        Ok(ok) => ok,
        Err(e) => (
            e.status,
            serde_json::json!({ "error": e.message }).to_string(),
        ),
    };
    if status < 300 && routes::is_write(method) {
        if let Some(r) = after_commit(&ctx, &d, &call).await {
            return r;
        }
    }
    call.finish(status);
    json(status, text)
}

/// The faults decided before the request reaches the store: a rejection (429, 503), a reset
/// (the connection dropped, no answer), a delay, an injected error. `None`: go on.
async fn injected(ctx: &Ctx, d: &Decision, call: &Call<'_>) -> Option<Response> {
    if let Some((status, retry_after)) = d.reject {
        call.finish(status);
        let mut r = error(
            status,
            if status == 429 {
                "rate limited"
            } else {
                "too many requests in flight"
            },
        );
        if let Some(secs) = retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return Some(r);
    }
    if d.reset {
        call.finish(0);
        ctx.kill.notify_one();
        return std::future::pending().await;
    }
    if !d.delay.is_zero() {
        tokio::time::sleep(d.delay).await;
    }
    if let Some(status) = d.error {
        call.finish(status);
        return Some(error(status, "injected fault"));
    }
    None
}

/// After a stored write: waits for the snapshot to hold it, then the commit-then-fail fault
/// (an error, or a hang and a dropped connection) if one was decided. `None`: answer as usual.
async fn after_commit(ctx: &Ctx, d: &Decision, call: &Call<'_>) -> Option<Response> {
    let app = call.app;
    if let Some(p) = &app.persist {
        let version = app.store.read().unwrap_or_else(|e| e.into_inner()).version;
        p.flushed(version).await;
    }
    match d.commit_then_fail {
        Some(CommitFailMode::Error) => {
            call.finish(500);
            Some(error(500, "injected fault after commit"))
        }
        Some(CommitFailMode::Hang) => {
            call.finish(0);
            tokio::time::sleep(HANG_FOR).await;
            ctx.kill.notify_one();
            std::future::pending().await
        }
        None => None,
    }
}

/// The body without the fields a `droppedFields` fault takes out of `method route`'s writes.
fn drop_fields(app: &App, method: &str, route: &str, body: Bytes) -> Bytes {
    let faults = app.faults.lock().unwrap_or_else(|e| e.into_inner());
    let drops: Vec<&str> = faults
        .faults
        .dropped_fields
        .iter()
        .filter(|d| d.matches(method, route))
        .map(|d| d.field.as_str())
        .collect();
    if drops.is_empty() {
        return body;
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(mut o)) => {
            for f in drops {
                o.remove(f);
            }
            Bytes::from(serde_json::Value::Object(o).to_string())
        }
        _ => body,
    }
}

/// `GET /api/calls`, answered to the agent whose token the request bears.
fn agent_calls(call: &Call<'_>, uri: &Uri, headers: &HeaderMap) -> Response {
    let query = Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let store = call.app.store.read().unwrap_or_else(|e| e.into_inner());
    let answer = call
        .app
        .call_log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .list(
            &store,
            token,
            query.get("from").map(String::as_str),
            query.get("limit").map(String::as_str),
        );
    match answer {
        Ok(text) => {
            call.finish(200);
            json(200, text)
        }
        Err((status, message)) => {
            call.finish(status);
            error(status, &message)
        }
    }
}

/// `/__emulator/*`: faults, requests, state, reset, active calls, call records.
fn admin_route(app: &App, method: &Method, route: &str, body: &[u8]) -> Response {
    match (method.as_str(), route) {
        ("GET", "faults") => json(
            200,
            serde_json::to_string(&app.current_faults()).unwrap_or_default(),
        ),
        ("POST", "faults") => {
            let faults: Faults = match serde_json::from_slice(body) {
                Ok(f) => f,
                Err(e) => return error(400, &format!("invalid fault set: {e}")),
            };
            if let Err(e) = faults.validate() {
                return error(400, &format!("invalid fault set: {e}"));
            }
            app.set_faults(faults.clone());
            json(200, serde_json::to_string(&faults).unwrap_or_default())
        }
        ("GET", "requests") => json(200, app.requests_json().to_string()),
        ("POST", "active-calls") => match app.calls.set(body) {
            Ok(calls) => json(200, calls.to_string()),
            Err(e) => error(400, &format!("invalid active calls: {e}")),
        },
        ("GET", "state") => json(200, app.state_text()),
        ("POST", "calls") => {
            let store = app.store.read().unwrap_or_else(|e| e.into_inner());
            let recorded = app
                .call_log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(&store, body);
            match recorded {
                Ok(n) => json(200, serde_json::json!({ "recorded": n }).to_string()),
                Err(e) => error(400, &format!("invalid call records: {e}")),
            }
        }
        ("POST", "reset") => {
            app.reset();
            json(204, String::new())
        }
        _ => error(404, &format!("no admin route {method} /__emulator/{route}")),
    }
}
