//! A local webhook receiver (axum) standing for Slack or an alerting service: it records every
//! POST it gets, and answers with the status the test sets.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

#[derive(Default)]
struct Inner {
    bodies: Mutex<Vec<(String, Value)>>,
    status: AtomicU16,
}

/// The receiver's address and what it received; it serves until the test ends.
#[derive(Clone)]
pub struct Receiver {
    pub base: String,
    inner: Arc<Inner>,
}

impl Receiver {
    /// Started on a random port, answering 200.
    pub async fn start() -> Receiver {
        let inner = Arc::new(Inner::default());
        inner.status.store(200, Ordering::Relaxed);
        let app = axum::Router::new()
            .fallback(record)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { base, inner }
    }

    /// Every later request is answered with `status`.
    pub fn answer(&self, status: u16) {
        self.inner.status.store(status, Ordering::Relaxed);
    }

    /// (path, body) of every request so far, in order.
    pub fn received(&self) -> Vec<(String, Value)> {
        self.inner.bodies.lock().expect("lock").clone()
    }

    /// The JSON bodies whose `kind` is `kind`.
    pub fn of_kind(&self, kind: &str) -> Vec<Value> {
        self.received()
            .into_iter()
            .map(|(_, b)| b)
            .filter(|b| b["kind"] == kind)
            .collect()
    }
}

async fn record(
    State(inner): State<Arc<Inner>>,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inner
        .bodies
        .lock()
        .expect("lock")
        .push((uri.path().to_string(), value));
    StatusCode::from_u16(inner.status.load(Ordering::Relaxed)).unwrap_or(StatusCode::OK)
}
