//! A hostile sip-agent-server for tests: a proxy in front of the emulator whose answers a rule
//! rewrites. A rule sees each request ([`Seen`]) and says what to do with it ([`Reply`]): pass it
//! on, pass it on and edit the JSON answer, or answer itself without asking the emulator (a
//! redirect, a 429 forever, a body of any size generated lazily, any headers). Every request is
//! recorded with the credentials it carried, so a test can also use a proxy with no upstream as
//! a listener that only records who called it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use serde_json::Value;

/// One request as the proxy received it (the raw path, before any normalisation).
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, exactly as sent.
    pub path: String,
    pub api_key: Option<String>,
    pub authorization: Option<String>,
}

impl Seen {
    pub fn is(&self, method: &str) -> bool {
        self.method == method
    }

    /// The path without its query.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }
}

/// An edit of an answer's JSON body.
pub type Edit = Box<dyn FnOnce(&mut Value) + Send>;

/// What the proxy does with one request.
pub enum Reply {
    /// Forward it to the emulator and return its answer unchanged.
    Pass,
    /// Forward it, then edit the answer's JSON body (left alone if it is not JSON).
    Edit(Edit),
    /// Answer without forwarding: the emulator never sees the request.
    Answer(Answer),
}

impl Reply {
    pub fn edit(f: impl FnOnce(&mut Value) + Send + 'static) -> Reply {
        Reply::Edit(Box::new(f))
    }
}

/// An answer the proxy makes up.
pub struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Made,
}

enum Made {
    Bytes(Vec<u8>),
    /// `head`, then `unit` repeated until `total` bytes, then `tail`; produced chunk by chunk
    /// as the client reads, never held whole.
    Inflated {
        head: Vec<u8>,
        unit: Vec<u8>,
        total: u64,
        tail: Vec<u8>,
    },
}

impl Answer {
    pub fn json(status: u16, body: &Value) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Made::Bytes(body.to_string().into_bytes()),
        }
    }

    pub fn text(status: u16, content_type: &str, body: &str) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: Made::Bytes(body.as_bytes().to_vec()),
        }
    }

    /// A redirect to `location` (a 3xx with a small JSON body).
    pub fn redirect(status: u16, location: &str) -> Answer {
        Answer::json(status, &serde_json::json!({"moved": true})).header("location", location)
    }

    /// About `total` bytes: `head`, `unit` repeated, `tail`, generated lazily.
    pub fn inflated(
        status: u16,
        content_type: &str,
        head: &str,
        unit: &str,
        total: u64,
        tail: &str,
    ) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: Made::Inflated {
                head: head.as_bytes().to_vec(),
                unit: unit.as_bytes().to_vec(),
                total,
                tail: tail.as_bytes().to_vec(),
            },
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    fn into_response(self, sent: Arc<AtomicU64>) -> Response {
        let body = match self.body {
            Made::Bytes(b) => {
                sent.fetch_add(b.len() as u64, Ordering::Relaxed);
                Body::from(b)
            }
            Made::Inflated {
                head,
                unit,
                total,
                tail,
            } => {
                // About 64 KiB per chunk; cheap clones of one buffer, made as they are read.
                let per_chunk = (65_536 / unit.len().max(1)).max(1);
                let chunk = Bytes::from(unit.repeat(per_chunk));
                let n = (total / chunk.len() as u64) as usize;
                let parts = std::iter::once(Bytes::from(head))
                    .chain(std::iter::repeat_n(chunk, n))
                    .chain(std::iter::once(Bytes::from(tail)))
                    .map(move |b| Ok::<_, std::io::Error>(count(&sent, b)));
                let stream = futures::stream::iter(parts);
                Body::from_stream(stream)
            }
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        for (k, v) in self.headers {
            if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
                resp.headers_mut().append(k, v);
            }
        }
        resp
    }
}

fn count(sent: &AtomicU64, b: Bytes) -> Bytes {
    sent.fetch_add(b.len() as u64, Ordering::Relaxed);
    b
}

type Rule = dyn Fn(&Seen) -> Reply + Send + Sync;

struct Shared {
    upstream: Option<String>,
    rule: Box<Rule>,
    seen: Mutex<Vec<Seen>>,
    sent: Arc<AtomicU64>,
    http: reqwest::Client,
}

/// A running hostile server; stops when dropped.
pub struct Hostile {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Hostile {
    /// A proxy to `upstream` (the emulator's base URL) whose answers `rule` decides.
    pub async fn proxy(
        upstream: &str,
        rule: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> Hostile {
        Self::start(Some(upstream.to_string()), Box::new(rule)).await
    }

    /// A proxy that answers 500 to every call naming the id set in the returned slot (none
    /// at first): one tenant's agent failing forever, the rest passed on.
    pub async fn failing_for(upstream: &str) -> (Hostile, Arc<Mutex<Option<String>>>) {
        let bad: Arc<Mutex<Option<String>>> = Arc::default();
        let rule_bad = bad.clone();
        let proxy = Self::proxy(upstream, move |seen| {
            let bad = rule_bad.lock().unwrap_or_else(|e| e.into_inner()).clone();
            match bad {
                Some(id) if seen.route().contains(&id) => Reply::Answer(Answer::json(
                    500,
                    &serde_json::json!({"error": "this agent is broken"}),
                )),
                _ => Reply::Pass,
            }
        })
        .await;
        (proxy, bad)
    }

    /// A listener with no upstream: records every request and answers `200 []`.
    pub async fn recorder() -> Hostile {
        Self::start(
            None,
            Box::new(|_| Reply::Answer(Answer::json(200, &serde_json::json!([])))),
        )
        .await
    }

    async fn start(upstream: Option<String>, rule: Box<Rule>) -> Hostile {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the hostile server");
        let addr = listener.local_addr().expect("its address");
        let shared = Arc::new(Shared {
            upstream,
            rule,
            seen: Mutex::new(Vec::new()),
            sent: Arc::new(AtomicU64::new(0)),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Hostile { addr, shared, task }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Body bytes of made-up answers handed to the connection so far (a client that stops
    /// reading stops this count soon after).
    pub fn bytes_sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let headers = req.headers().clone();
    let header = move |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let seen = Seen {
        method: req.method().as_str().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        api_key: header("x-api-key"),
        authorization: header("authorization"),
    };
    drop(header);
    shared
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(seen.clone());
    match (shared.rule)(&seen) {
        Reply::Answer(a) => a.into_response(shared.sent.clone()),
        Reply::Pass => forward(&shared, &seen, req, None).await,
        Reply::Edit(f) => forward(&shared, &seen, req, Some(f)).await,
    }
}

async fn forward(shared: &Shared, seen: &Seen, req: Request, edit: Option<Edit>) -> Response {
    let Some(upstream) = &shared.upstream else {
        return Answer::json(502, &serde_json::json!({"error": "no upstream"}))
            .into_response(shared.sent.clone());
    };
    let method =
        reqwest::Method::from_bytes(seen.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut out = shared
        .http
        .request(method, format!("{upstream}{}", seen.path));
    for (k, v) in req.headers() {
        if !matches!(k.as_str(), "host" | "content-length" | "connection") {
            out = out.header(k.as_str(), v.as_bytes());
        }
    }
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let answer = match out.body(body.to_vec()).send().await {
        Ok(a) => a,
        Err(e) => {
            return Answer::json(502, &serde_json::json!({"error": e.to_string()}))
                .into_response(shared.sent.clone())
        }
    };
    let status = answer.status().as_u16();
    let headers: Vec<(String, String)> = answer
        .headers()
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "content-length" | "transfer-encoding" | "connection"
            )
        })
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let mut bytes = answer.bytes().await.unwrap_or_default().to_vec();
    if let Some(edit) = edit {
        if let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) {
            edit(&mut v);
            bytes = v.to_string().into_bytes();
        }
    }
    Answer {
        status,
        headers,
        body: Made::Bytes(bytes),
    }
    .into_response(shared.sent.clone())
}
