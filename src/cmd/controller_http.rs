//! The controller's HTTP listener (axum, in the binary so the library compiles no web server):
//! `/healthz`, `/readyz`, `/metrics`, the status page and `/v1/status` (`controller_status`),
//! and the webhook under `/v1/`, which needs the bearer
//! token from `SIPFORM_CONTROLLER_TOKEN` (none configured: the webhook is off, 404).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use sipform::controller::Handle;
use sipform::model::ids::RestaurantId;
use sipform::model::spec::restaurant_id_problem;
use subtle::ConstantTimeEq;

struct App {
    handle: Handle,
    token: Option<String>,
}

/// Serves until the returned task is aborted.
pub fn serve(
    listener: tokio::net::TcpListener,
    handle: Handle,
    token: Option<String>,
) -> tokio::task::JoinHandle<()> {
    let app = Arc::new(App { handle, token });
    let router = Router::new()
        .merge(super::controller_status::routes(app.handle.clone()))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/restaurants/{id}/reconcile", post(reconcile_one))
        .route("/v1/reconcile", post(reconcile_all))
        .route("/v1/reload", post(reload))
        .with_state(app);
    tokio::spawn(async move {
        super::listener::serve(listener, router).await;
    })
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let s = &app.handle.status;
    let r = |a: &std::sync::atomic::AtomicBool| a.load(Ordering::Relaxed);
    let body = json!({
        "ready": s.ready(),
        "leader": r(&s.leader),
        "standby": r(&s.standby),
        "feed": s.feed_up(),
        "server": r(&s.server_ok),
        "revision": s.revision(),
        "reason": s.reason(),
    });
    let code = if s.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    // `feed_connected` says what `/readyz`'s `feed` says (the library keeps it in the status).
    let feed = app.handle.status.feed_up();
    app.handle.metrics.feed_connected.set(i64::from(feed));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.handle.metrics.render(),
    )
        .into_response()
}

/// `None` when the request carries the configured token; else the answer to send.
fn refuse(app: &App, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &app.token else {
        return Some(
            (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "the webhook is off: SIPFORM_CONTROLLER_TOKEN is not set"})),
            )
                .into_response(),
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Constant time in the contents: the comparison leaks no prefix of the token.
    if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        None
    } else {
        Some(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({"error": "a valid bearer token is required"})),
            )
                .into_response(),
        )
    }
}

async fn reconcile_one(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = refuse(&app, &headers) {
        return r;
    }
    // The id is tenant input: checked before it reaches the queue (and any SQL or log).
    if let Some(problem) = restaurant_id_problem(&id) {
        let problem = problem.replace("; the restaurant is skipped", "");
        return (StatusCode::BAD_REQUEST, Json(json!({"error": problem}))).into_response();
    }
    app.handle.reconcile(RestaurantId::new(id.as_str()));
    (StatusCode::ACCEPTED, Json(json!({"queued": id}))).into_response()
}

async fn reconcile_all(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse(&app, &headers) {
        return r;
    }
    app.handle.reconcile_all();
    (StatusCode::ACCEPTED, Json(json!({"queued": "all"}))).into_response()
}

async fn reload(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse(&app, &headers) {
        return r;
    }
    match app.handle.reload().await {
        Ok(o) => (
            StatusCode::OK,
            Json(json!({"reloaded": true, "requeuedAll": o.requeued_all, "revision": o.revision})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"reloaded": false, "error": e})),
        )
            .into_response(),
    }
}
