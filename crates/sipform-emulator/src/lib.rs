//! The sip-agent-server emulator: the contract (`docs/sip-agent-server.openapi.yaml`) served
//! from memory, with fault injection and introspection for tests and benchmarks.
//!
//! Start it in-process with [`Emulator::start`] (tests) or through `sipform emulator`.
//! Admin routes live under `/__emulator/`: they are never faulted or counted, and need the
//! `X-API-Key` when one is set (they serve every token and SIP password, and reset the store).
//! Listening beyond loopback is warned about.

mod bridges;
mod calls;
mod faults;
pub mod listener;
mod persist;
mod routes;
mod server;
mod store;

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use faults::{
    CommitFailMode, CommitThenFail, DropField, ErrorRule, Faults, Latency, RateLimit, ResetRule,
};

use faults::FaultState;
use persist::Persister;
use store::Store;

/// Every management route the emulator serves, as `(METHOD, template)` with `:name` path
/// parameters (`("GET", "/api/agents/:id/tools")`). It is the table requests are dispatched
/// on, published so the OpenAPI document (`docs/sip-agent-server.openapi.yaml`) can be checked
/// against what is really served. The admin routes (`/__emulator/*`) are not in it.
pub fn routes() -> impl Iterator<Item = (&'static str, &'static str)> {
    routes::TEMPLATES
        .iter()
        .flat_map(|(methods, template)| methods.iter().map(move |m| (*m, *template)))
}

/// The `tracing` target of the emulator's log lines (the same word as sipform's).
pub const LOG_TARGET: &str = "sip-provisioning";

/// The account key the emulator enforces. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key, for comparing with a request's `X-API-Key`.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(sensitive)")
    }
}

/// How many request log entries are kept (the oldest go first); counts are never capped.
pub const REQUEST_LOG_CAP: usize = 100_000;

/// How to start an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub bind: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    /// When set, management calls without this `X-API-Key` get 401.
    pub api_key: Option<ApiKey>,
    /// Snapshot file: loaded at start if present, rewritten after every write.
    pub data: Option<PathBuf>,
    /// Seed of the RNG behind every random fault.
    pub seed: u64,
    pub faults: Faults,
    /// Appended to every id the emulator makes. Empty by default (ids are 36-character UUIDs);
    /// a suffix makes a server whose ids do not fit the platform's `varchar(36)` columns, to
    /// prove a client refuses them instead of truncating.
    pub id_suffix: String,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            api_key: None,
            data: None,
            seed: 0,
            faults: Faults::default(),
            id_suffix: String::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {source} (is the port taken? try --port 0)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read the emulator data file {path}: {source}")]
    ReadData {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the emulator data file {path} is not a snapshot: {message} (move it away to start empty)"
    )]
    BadData { path: PathBuf, message: String },
    #[error("cannot write the emulator data file {path}: {source}")]
    WriteData {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid fault set: {0}")]
    Faults(String),
}

/// One served request, as `GET /__emulator/requests` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct LogEntry {
    seq: u64,
    method: String,
    route: String,
    path: String,
    /// 0 when no HTTP answer was sent (reset, hang).
    status: u16,
}

#[derive(Default)]
pub(crate) struct Intro {
    counts: std::collections::HashMap<String, u64>,
    /// Answers by HTTP status (0: none sent), so a benchmark can tell the share of 429s.
    statuses: BTreeMap<u16, u64>,
    log: VecDeque<LogEntry>,
    seq: u64,
}

impl Intro {
    fn record(&mut self, method: &str, route: &str, path: &str, status: u16) {
        *self.counts.entry(format!("{method} {route}")).or_insert(0) += 1;
        *self.statuses.entry(status).or_insert(0) += 1;
        self.seq += 1;
        if self.log.len() >= REQUEST_LOG_CAP {
            self.log.pop_front();
        }
        self.log.push_back(LogEntry {
            seq: self.seq,
            method: method.to_string(),
            route: route.to_string(),
            path: path.to_string(),
            status,
        });
    }
}

/// What every connection shares.
pub(crate) struct App {
    pub(crate) store: RwLock<Store>,
    pub(crate) faults: Mutex<FaultState>,
    pub(crate) intro: Mutex<Intro>,
    pub(crate) api_key: Option<ApiKey>,
    pub(crate) persist: Option<Persister>,
    pub(crate) in_flight: AtomicUsize,
    /// Calls in progress per agent, as `GET /api/bridges` reports them.
    pub(crate) calls: bridges::Calls,
    /// Call records by agent (`GET /api/calls`, `POST /__emulator/calls`).
    pub(crate) call_log: Mutex<calls::CallLog>,
}

impl App {
    fn counts(&self) -> BTreeMap<String, u64> {
        let intro = self.intro.lock().unwrap_or_else(|e| e.into_inner());
        intro.counts.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    pub(crate) fn requests_json(&self) -> serde_json::Value {
        let intro = self.intro.lock().unwrap_or_else(|e| e.into_inner());
        let counts: BTreeMap<&String, &u64> = intro.counts.iter().collect();
        serde_json::json!({"counts": counts, "statuses": intro.statuses, "log": intro.log})
    }

    pub(crate) fn state_text(&self) -> String {
        self.store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .state_text()
    }

    pub(crate) fn current_faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .faults
            .clone()
    }

    pub(crate) fn set_faults(&self, f: Faults) {
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).set(f);
    }

    /// Objects and counters go; the fault set stays; the RNG is reseeded.
    pub(crate) fn reset(&self) {
        self.store
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        *self.intro.lock().unwrap_or_else(|e| e.into_inner()) = Intro::default();
        self.calls.clear();
        self.call_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reseed();
        if let Some(p) = &self.persist {
            p.nudge();
        }
    }
}

/// The emulator type; see [`Emulator::start`].
pub struct Emulator;

impl Emulator {
    /// Loads `--data` if present, binds, and serves in the background until
    /// [`EmulatorHandle::shutdown`] (or the handle is dropped).
    pub async fn start(config: EmulatorConfig) -> Result<EmulatorHandle, EmulatorError> {
        config.faults.validate().map_err(EmulatorError::Faults)?;
        let mut store = initial_store(config.data.as_deref())?;
        store.id_suffix = config.id_suffix.clone();
        let version = store.version;
        let app = Arc::new(App {
            store: RwLock::new(store),
            faults: Mutex::new(FaultState::new(config.faults.clone(), config.seed)),
            intro: Mutex::new(Intro::default()),
            api_key: config.api_key.clone(),
            persist: config.data.clone().map(|p| Persister::new(p, version)),
            in_flight: AtomicUsize::new(0),
            calls: bridges::Calls::default(),
            call_log: Mutex::new(calls::CallLog::default()),
        });
        let wanted = SocketAddr::new(config.bind, config.port);
        let listener = tokio::net::TcpListener::bind(wanted)
            .await
            .map_err(|source| EmulatorError::Bind {
                addr: wanted,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: wanted,
                source,
            })?;
        if !addr.ip().is_loopback() {
            warn_beyond_loopback(addr, app.api_key.is_some());
        }
        let writer = app
            .persist
            .as_ref()
            .map(|_| tokio::spawn(persist::writer(app.clone())));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server::serve(listener, app.clone(), stopped));
        Ok(EmulatorHandle {
            addr,
            app,
            stop: Some(stop),
            task: Some(task),
            writer,
        })
    }
}

/// A running emulator. Dropping it stops the server too.
pub struct EmulatorHandle {
    addr: SocketAddr,
    app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
}

impl EmulatorHandle {
    /// `http://IP:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the fault set (like `POST /__emulator/faults`, without validation).
    pub fn set_faults(&self, f: Faults) {
        self.app.set_faults(f);
    }

    /// The current fault set.
    pub fn faults(&self) -> Faults {
        self.app.current_faults()
    }

    /// Requests served, by `"METHOD /route/template"`.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.app.counts()
    }

    /// Everything stored, tokens included: the body of `GET /__emulator/state`.
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::from_str(&self.app.state_text()).unwrap_or(serde_json::Value::Null)
    }

    /// Like `POST /__emulator/reset`: objects and counters cleared, faults kept, RNG reseeded.
    pub fn reset(&self) {
        self.app.reset();
    }

    /// Stops accepting, drops open connections, and makes sure the last snapshot is written.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(p) = &self.app.persist {
            let version = self
                .app
                .store
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .version;
            p.flushed(version).await;
        }
        if let Some(w) = self.writer.take() {
            w.abort();
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(w) = self.writer.take() {
            w.abort();
        }
    }
}

/// The store `--data` holds, or an empty one (written at once, so an unwritable path fails the
/// start, not a write an hour later).
fn initial_store(data: Option<&std::path::Path>) -> Result<Store, EmulatorError> {
    let Some(path) = data else {
        return Ok(Store::default());
    };
    let path = path.to_path_buf();
    if !path.exists() {
        let store = Store::default();
        persist::write_atomic(&path, store.state_text().as_bytes())
            .map_err(|source| EmulatorError::WriteData { path, source })?;
        return Ok(store);
    }
    let text = std::fs::read(&path).map_err(|source| EmulatorError::ReadData {
        path: path.clone(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| EmulatorError::BadData {
            path: path.clone(),
            message: e.to_string(),
        })?;
    Store::load(value).map_err(|message| EmulatorError::BadData { path, message })
}

/// Listening beyond loopback exposes the admin routes' tokens and SIP passwords.
fn warn_beyond_loopback(addr: SocketAddr, has_key: bool) {
    tracing::warn!(
        target: LOG_TARGET,
        %addr,
        "the emulator listens beyond loopback: anyone who reaches it can {} (its admin routes under /__emulator/ serve every token and SIP password)",
        if has_key {
            "try keys"
        } else {
            "read and reset everything, since no --api-key is set"
        }
    );
}
