//! The HTTP transport to sip-agent-server: timeouts, retries, throttling, answers decoded.
//!
//! Reads and idempotent writes (GET, PUT, DELETE) are retried on 429 (honouring
//! `Retry-After`), 5xx and connection errors, with exponential backoff and full jitter. A POST
//! is never retried here: the server may have stored it before failing, so the caller (apply)
//! re-reads first. Every request waits for a slot of the client's one [`Limiter`], which bounds
//! parallelism across restaurants (found while running with `--parallelism auto`) and, once
//! the server answers 429, paces how fast requests start. A 429's `Retry-After` is waited by
//! the request that got it while the pacer slows the others (a whole-client stop followed by a
//! burst is what overshoots the server's limit again); only a `Retry-After` longer than
//! [`HOLD_ALL_AFTER`] holds every request. 429s have their own, larger retry budget
//! ([`MAX_THROTTLED_ATTEMPTS`]) and a cap on the time one request may spend throttled
//! (`server.max_throttle_secs`). Logs name method, route and status, never a body or header.
//!
//! Nothing from the server is trusted to be small or well-behaved: redirects are never followed
//! (the API has none, and following one would carry `X-API-Key` to wherever it points), answer
//! bodies are read with a running limit (`server.max_answer_bytes`), and an error body is read
//! only when it says it is JSON, and only its `error` field's first 200 characters are kept.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::created::Created;
use super::limiter::{Limiter, Outcome, Settled};
use super::objects::Object;
use super::routes::Route;
use crate::config::Settings;
use crate::LOG_TARGET;
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{method} {route}: HTTP {status}: {message}")]
    Status {
        method: Method,
        route: String,
        status: u16,
        message: String,
    },
    /// No usable answer: timeout, reset, refused.
    #[error("{method} {route}: {message}")]
    Transport {
        method: Method,
        route: String,
        message: String,
        /// Whether the request may have reached the server (a timeout or reset after sending).
        maybe_applied: bool,
    },
    #[error("{method} {route}: the answer is not the expected JSON: {message}")]
    Decode {
        method: Method,
        route: String,
        message: String,
    },
    /// A 3xx. The API has no redirects; one is a misconfigured URL or a hostile server, and
    /// following it would send the key elsewhere. Its `Location` is never read or shown.
    #[error("{method} {route}: the server answered {status}; sipform does not follow redirects (the API has none)")]
    Redirect {
        method: Method,
        route: String,
        status: u16,
    },
    /// An answer body over `server.max_answer_bytes`; reading stopped at the limit.
    #[error("{method} {route}: the answer is larger than {limit} bytes (server.max_answer_bytes); reading stopped there")]
    TooLarge {
        method: Method,
        route: String,
        limit: u64,
    },
    /// The server went on answering 429 for longer than `server.max_throttle_secs`.
    #[error("{method} {route}: the server has been throttling this request (HTTP 429) for {waited_secs}s; gave up at the {cap_secs}s limit (server.max_throttle_secs)")]
    Throttled {
        method: Method,
        route: String,
        waited_secs: u64,
        cap_secs: u64,
    },
    /// A route with a segment no encoding keeps in place (see [`Route::refused`]): not sent.
    #[error("{method} {route}: not sent: {why}")]
    BadRoute {
        method: Method,
        route: String,
        why: String,
    },
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
    /// A write not sent because the run is stopping (see [`Client::halt_writes`]).
    #[error("{method} {route}: not sent: {why}")]
    Halted {
        method: Method,
        route: String,
        why: String,
    },
}

impl ClientError {
    /// Whether a POST that failed this way may nonetheless have created the object.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            ClientError::Status { status, .. } => *status >= 500,
            ClientError::Transport { maybe_applied, .. } => *maybe_applied,
            // The server answered, so it acted on the request; the answer was unusable.
            ClientError::Decode { .. } | ClientError::TooLarge { .. } => true,
            ClientError::Build(_)
            | ClientError::Halted { .. }
            | ClientError::BadRoute { .. }
            | ClientError::Redirect { .. }
            | ClientError::Throttled { .. } => false,
        }
    }

    /// Whether trying again could help at all.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Status { status, .. } => *status == 429 || *status >= 500,
            ClientError::Transport { .. } | ClientError::Throttled { .. } => true,
            _ => false,
        }
    }

    /// What the user can do about it, when the message alone does not say.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            ClientError::Status { status: 401 | 403, .. } => {
                Some("check SIP_ACCOUNT_API_KEY")
            }
            ClientError::Status { status, .. } if *status == 429 || *status >= 500 => {
                Some("the server failed or is overloaded; run again later")
            }
            ClientError::Transport { maybe_applied: false, .. } => Some(
                "check the server URL (SIP_AGENT_SERVER_URL or server.url) and that the server is running",
            ),
            ClientError::Transport { .. } => Some("run again later"),
            ClientError::Decode { .. } => Some(
                "the answer does not follow the API contract: check that the server URL points at sip-agent-server",
            ),
            ClientError::Redirect { .. } => Some(
                "check the server URL (SIP_AGENT_SERVER_URL or server.url): use the address the server answers on directly",
            ),
            ClientError::TooLarge { .. } => {
                Some("if the answer is legitimate, raise server.max_answer_bytes in sipform.yaml")
            }
            ClientError::Throttled { .. } => {
                Some("run again later, or raise server.max_throttle_secs in sipform.yaml")
            }
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The route template of the failed call (never an id).
    pub fn route(&self) -> Option<&str> {
        match self {
            ClientError::Status { route, .. }
            | ClientError::Transport { route, .. }
            | ClientError::Decode { route, .. }
            | ClientError::Halted { route, .. }
            | ClientError::BadRoute { route, .. }
            | ClientError::Redirect { route, .. }
            | ClientError::TooLarge { route, .. }
            | ClientError::Throttled { route, .. } => Some(route),
            ClientError::Build(_) => None,
        }
    }
}

/// Backoff policy for transient failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Full jitter: a random wait up to `min(cap, base × 2^attempt)`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX));
        let ceiling = exp.min(self.cap);
        let ms = ceiling.as_millis().max(1) as u64;
        Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
    }
}

/// How many 429 answers one request may take before giving up. They are counted apart from
/// `max_attempts`: a 429 says the server is fine and only asks us to slow down, and a server
/// that throttles below the client's pace answers many of them in a row.
pub const MAX_THROTTLED_ATTEMPTS: u32 = 40;

/// A `Retry-After` longer than this holds every request of the client, not only the one that
/// got it: the server asks for a real break, not a slower pace.
pub const HOLD_ALL_AFTER: Duration = Duration::from_secs(2);

/// Counters for the closing report.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: std::sync::atomic::AtomicU64,
    pub retries: std::sync::atomic::AtomicU64,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    api_key: Option<crate::model::secret::Secret<String>>,
    /// The one limiter every request of the run goes through.
    limiter: Arc<Limiter>,
    /// After a 429 with a long `Retry-After` ([`HOLD_ALL_AFTER`]), no request of this client
    /// starts before this instant.
    throttled_until: Arc<std::sync::Mutex<Option<Instant>>>,
    pub retry: RetryPolicy,
    pub stats: Arc<Stats>,
    /// The largest answer body read (`server.max_answer_bytes`).
    max_answer_bytes: u64,
    /// The longest one request may spend throttled (`server.max_throttle_secs`).
    max_throttle: Duration,
    /// Whether the user has been told the server throttles: said once per run, at warn level,
    /// so a long wait is never silent.
    throttle_told: Arc<std::sync::atomic::AtomicBool>,
    /// Set once the run must stop writing (state cannot record, or a signal came): writes
    /// that have not yet got a slot are not sent; those in flight finish.
    halted: Arc<std::sync::OnceLock<String>>,
}

/// Failed attempts of one request: 429s apart from the rest (see [`MAX_THROTTLED_ATTEMPTS`]).
#[derive(Default)]
struct Tries {
    failures: u32,
    throttled: u32,
    /// When this request was first throttled: the time since counts against the cap.
    throttled_since: Option<Instant>,
}

impl Tries {
    /// Counts `e`; returns the attempt number its backoff should use.
    fn count(&mut self, e: &ClientError) -> u32 {
        if e.status() == Some(429) {
            self.throttled_since.get_or_insert_with(Instant::now);
            self.throttled += 1;
            self.throttled
        } else {
            self.failures += 1;
            self.failures
        }
    }

    fn exhausted(&self, p: &RetryPolicy) -> bool {
        self.failures >= p.max_attempts || self.throttled >= MAX_THROTTLED_ATTEMPTS
    }
}

/// What a failed attempt tells the limiter about the server.
fn outcome(e: &ClientError) -> Outcome {
    match e {
        ClientError::Status { status: 429, .. } => Outcome::Throttled,
        ClientError::Status { status, .. } if *status >= 500 => Outcome::Dropped,
        ClientError::Transport { .. } => Outcome::Dropped,
        ClientError::Status { .. }
        | ClientError::Decode { .. }
        | ClientError::Redirect { .. }
        | ClientError::TooLarge { .. } => Outcome::Answered,
        ClientError::Throttled { .. }
        | ClientError::BadRoute { .. }
        | ClientError::Build(_)
        | ClientError::Halted { .. } => Outcome::Ignored,
    }
}

/// A failed attempt, with what the server asked us to wait.
struct Attempt {
    error: ClientError,
    retry_after: Option<Duration>,
}

impl Client {
    pub fn new(settings: &Settings) -> Result<Client, ClientError> {
        crate::model::secret::check_url_userinfo(&settings.server_url)
            .map_err(|why| ClientError::Build(format!("the server URL is ambiguous: {why}")))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(settings.parallelism.max() * 2)
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(Client {
            http,
            base: settings.server_url.clone(),
            api_key: settings.api_key.clone(),
            limiter: Limiter::new(settings.parallelism),
            throttled_until: Arc::new(std::sync::Mutex::new(None)),
            retry: RetryPolicy::default(),
            stats: Arc::new(Stats::default()),
            max_answer_bytes: settings.max_answer_bytes,
            max_throttle: settings.max_throttle,
            throttle_told: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            halted: Arc::new(std::sync::OnceLock::new()),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The parallelism (and pace) the run settled on, for the apply summary.
    pub fn settled(&self) -> Settled {
        self.limiter.settled()
    }

    /// From now on, no write (POST, PUT, DELETE) is sent: it fails with
    /// [`ClientError::Halted`] once it gets its slot. Reads go on. The first reason stays.
    pub fn halt_writes(&self, why: impl Into<String>) {
        let _ = self.halted.set(why.into());
    }

    /// Why writes are halted, if they are.
    pub fn writes_halted(&self) -> Option<&str> {
        self.halted.get().map(String::as_str)
    }

    /// One attempt, holding a parallelism slot for its duration.
    async fn once(
        &self,
        method: &Method,
        target: &Route,
        body: Option<&Value>,
    ) -> Result<Option<Vec<u8>>, Attempt> {
        let (path, route) = (target.path(), target.template());
        if let Some(why) = target.refused() {
            return Err(Attempt {
                error: ClientError::BadRoute {
                    method: method.clone(),
                    route: route.to_string(),
                    why: why.to_string(),
                },
                retry_after: None,
            });
        }
        self.wait_throttle().await;
        let slot = self.limiter.acquire().await;
        // Checked with the slot held: a write that waited for one while the run began to stop
        // is not sent.
        if *method != Method::GET {
            if let Some(why) = self.halted.get() {
                return Err(Attempt {
                    error: ClientError::Halted {
                        method: method.clone(),
                        route: route.to_string(),
                        why: why.clone(),
                    },
                    retry_after: None,
                });
            }
        }
        let result = self.send(method, path, route, body).await;
        slot.finish(match &result {
            Ok(_) => Outcome::Answered,
            Err(a) => outcome(&a.error),
        });
        result
    }

    /// Sends one request and reads its answer's body (`None`: none), parsed by the caller
    /// ([`decode`]) once the slot is given back.
    async fn send(
        &self,
        method: &Method,
        path: &str,
        route: &str,
        body: Option<&Value>,
    ) -> Result<Option<Vec<u8>>, Attempt> {
        self.stats
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut req = self
            .http
            .request(method.clone(), format!("{}{}", self.base, path));
        if let Some(key) = &self.api_key {
            req = req.header("X-API-Key", key.expose());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let started = Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                // A connect failure never reached the server; anything later may have.
                let maybe_applied = !e.is_connect();
                tracing::debug!(target: LOG_TARGET, %method, route, "transport error: {}", redact(&e));
                return Err(Attempt {
                    error: ClientError::Transport {
                        method: method.clone(),
                        route: route.to_string(),
                        message: redact(&e),
                        maybe_applied,
                    },
                    retry_after: None,
                });
            }
        };
        let status = resp.status();
        tracing::debug!(
            target: LOG_TARGET,
            %method,
            route,
            status = status.as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "request"
        );
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let transport = |e: reqwest::Error| Attempt {
            error: ClientError::Transport {
                method: method.clone(),
                route: route.to_string(),
                message: redact(&e),
                maybe_applied: true,
            },
            retry_after: None,
        };
        if status.is_redirection() {
            return Err(Attempt {
                error: ClientError::Redirect {
                    method: method.clone(),
                    route: route.to_string(),
                    status: status.as_u16(),
                },
                retry_after: None,
            });
        }
        if !status.is_success() {
            // Error bodies are `{"error": "…"}`; only that message is kept, never the rest, and
            // a body that does not say it is JSON (an HTML page) is not read at all.
            let message = if is_json(&resp) {
                match read_capped(resp, ERROR_BODY_MAX_BYTES).await {
                    Ok(Some(bytes)) => error_message(&bytes),
                    _ => None,
                }
            } else {
                None
            }
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
            return Err(Attempt {
                error: ClientError::Status {
                    method: method.clone(),
                    route: route.to_string(),
                    status: status.as_u16(),
                    message: truncate(&message, 200),
                },
                retry_after,
            });
        }
        let bytes = match read_capped(resp, self.max_answer_bytes).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                return Err(Attempt {
                    error: ClientError::TooLarge {
                        method: method.clone(),
                        route: route.to_string(),
                        limit: self.max_answer_bytes,
                    },
                    retry_after: None,
                })
            }
            Err(e) => return Err(transport(e)),
        };
        if status == StatusCode::NO_CONTENT || bytes.is_empty() {
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// A request that is safe to repeat: retried on transient failures.
    async fn idempotent<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        route: &Route,
        body: Option<&Value>,
    ) -> Result<Option<T>, ClientError> {
        let bytes = self.idempotent_raw(&method, route, body).await?;
        decode(&method, route, bytes.as_deref())
    }

    /// [`Client::idempotent`]'s answer body as it came.
    async fn idempotent_raw(
        &self,
        method: &Method,
        route: &Route,
        body: Option<&Value>,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let mut tries = Tries::default();
        loop {
            match self.once(method, route, body).await {
                Ok(v) => return Ok(v),
                Err(a) => {
                    let attempt = tries.count(&a.error);
                    if !a.error.is_transient() || tries.exhausted(&self.retry) {
                        return Err(a.error);
                    }
                    self.pause(&tries, attempt, a).await?;
                }
            }
        }
    }

    /// Waits before the next attempt: what `Retry-After` asks (at most a minute), else a
    /// backoff. A 429 pauses the whole client, and the time this request has spent throttled
    /// is capped: past `server.max_throttle_secs` it fails instead of waiting again.
    async fn pause(&self, tries: &Tries, attempt: u32, failed: Attempt) -> Result<(), ClientError> {
        let Attempt { error, retry_after } = failed;
        self.stats
            .retries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let wait = retry_after
            .map(|d| d.min(Duration::from_secs(60)))
            .unwrap_or_else(|| self.retry.backoff(attempt));
        if let ClientError::Status {
            status: 429,
            method,
            route,
            ..
        } = &error
        {
            let spent = tries
                .throttled_since
                .map(|t| t.elapsed())
                .unwrap_or_default();
            if spent + wait > self.max_throttle {
                return Err(ClientError::Throttled {
                    method: method.clone(),
                    route: route.clone(),
                    waited_secs: spent.as_secs(),
                    cap_secs: self.max_throttle.as_secs(),
                });
            }
            if !self
                .throttle_told
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                let why = if retry_after.is_some() {
                    "Retry-After"
                } else {
                    "HTTP 429, backing off"
                };
                tracing::warn!(
                    target: LOG_TARGET,
                    "the server is throttling: waiting {} ({why}); giving up after {}s of throttling (server.max_throttle_secs)",
                    seconds(wait),
                    self.max_throttle.as_secs()
                );
            }
            if retry_after.is_some() && wait > HOLD_ALL_AFTER {
                self.throttle_for(wait);
            }
        }
        tracing::info!(target: LOG_TARGET, "retrying in {:?} after: {error}", wait);
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// One POST attempt, retried only when the server certainly did not act on it (429, or a
    /// refused connection). Anything ambiguous goes back to the caller, who must re-read.
    pub async fn create(&self, route: &Route, body: &Value) -> Result<Created, ClientError> {
        let mut tries = Tries::default();
        loop {
            match self.once(&Method::POST, route, Some(body)).await {
                Ok(bytes) => {
                    let parsed = match bytes {
                        Some(b) => Created::parse(b).map_err(|e| format!("the answer: {e}")),
                        None => Err("expected a JSON object".to_string()),
                    };
                    return parsed.map_err(|message| ClientError::Decode {
                        method: Method::POST,
                        route: route.template().to_string(),
                        message,
                    });
                }
                Err(a) => {
                    let attempt = tries.count(&a.error);
                    let certainly_not_applied = !a.error.is_ambiguous() && a.error.is_transient();
                    if !certainly_not_applied || tries.exhausted(&self.retry) {
                        return Err(a.error);
                    }
                    self.pause(&tries, attempt, a).await?;
                }
            }
        }
    }

    /// Holds every request of this client until `wait` from now (extends, never shortens).
    fn throttle_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut t = self
            .throttled_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if t.is_none_or(|u| u < until) {
            *t = Some(until);
        }
    }

    /// Waits out a pause the server asked for (see [`Client::throttle_for`]).
    async fn wait_throttle(&self) {
        loop {
            let until = *self
                .throttled_until
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match until {
                Some(u) if u > Instant::now() => tokio::time::sleep_until(u.into()).await,
                _ => return,
            }
        }
    }

    pub async fn backoff_pause(&self, attempt: u32) {
        self.stats
            .retries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(self.retry.backoff(attempt)).await;
    }

    /// GET of a list. Every entry must be an object: anything else is an error about the
    /// server's answer, never silently skipped (a skipped entry would be created again).
    pub async fn get_list(&self, route: &Route) -> Result<Vec<Object>, ClientError> {
        self.get_list_each(route, |_, o| Ok(o)).await
    }

    /// [`Client::get_list`], each entry handed to `each` as soon as it is parsed: a list of
    /// 100,000 agents is never held whole as trees, only as its text and what `each` keeps.
    pub async fn get_list_each<T>(
        &self,
        route: &Route,
        mut each: impl FnMut(usize, Object) -> Result<T, ClientError>,
    ) -> Result<Vec<T>, ClientError> {
        let Some(bytes) = self.idempotent_raw(&Method::GET, route, None).await? else {
            return Err(bad_list(route.template(), "expected a JSON array".into()));
        };
        parse_entries(&bytes, route.template(), &mut each)
    }

    pub async fn get_one(&self, route: &Route) -> Result<Object, ClientError> {
        match self.idempotent(Method::GET, route, None).await? {
            Some(Value::Object(o)) => Ok(o),
            _ => Err(ClientError::Decode {
                method: Method::GET,
                route: route.template().to_string(),
                message: "expected a JSON object".into(),
            }),
        }
    }

    pub async fn put(&self, route: &Route, body: &Value) -> Result<(), ClientError> {
        self.idempotent::<serde::de::IgnoredAny>(Method::PUT, route, Some(body))
            .await
            .map(|_| ())
    }

    /// DELETE; an object already gone counts as deleted (a retry after a lost answer sees 404).
    pub async fn delete(&self, route: &Route) -> Result<(), ClientError> {
        match self
            .idempotent::<serde::de::IgnoredAny>(Method::DELETE, route, None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    // --- probes (doctor) -----------------------------------------------------------------

    /// One request without retries or body, for `doctor`: the status, whether the answer was
    /// the API's JSON (a route the server implements answers JSON, even for an unknown id), and
    /// the server's `Date` header.
    pub async fn probe(&self, method: Method, path: &str) -> Result<Probe, ClientError> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{}", self.base, path));
        if let Some(key) = &self.api_key {
            req = req.header("X-API-Key", key.expose());
        }
        if method == Method::PUT || method == Method::POST {
            req = req.json(&serde_json::json!({}));
        }
        let resp = req.send().await.map_err(|e| ClientError::Transport {
            method: method.clone(),
            route: path.to_string(),
            message: redact(&e),
            maybe_applied: false,
        })?;
        if resp.status().is_redirection() {
            return Err(ClientError::Redirect {
                method,
                route: path.to_string(),
                status: resp.status().as_u16(),
            });
        }
        let status = resp.status().as_u16();
        let date = resp
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let json = is_json(&resp);
        Ok(Probe { status, json, date })
    }
}

/// What `doctor` learns from one request.
#[derive(Debug, Clone)]
pub struct Probe {
    pub status: u16,
    pub json: bool,
    pub date: Option<String>,
}

/// reqwest errors can embed the URL (with query ids, never keys); keep the kind and the cause.
fn redact(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_request() {
        "request failed (connection reset or closed)"
    } else if e.is_body() || e.is_decode() {
        "reading the answer failed"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    if cause.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {cause}")
    }
}

/// An error body larger than this is not read: its message is at most 200 characters anyway.
const ERROR_BODY_MAX_BYTES: u64 = 64 * 1024;

/// Whether the answer says it is JSON (`application/json`, `…+json`).
fn is_json(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.to_ascii_lowercase().contains("json"))
}

/// The body, read chunk by chunk with a running limit: `None` as soon as it would exceed
/// `limit` bytes (or says it will, in `Content-Length`), so a huge answer is never held.
async fn read_capped(
    mut resp: reqwest::Response,
    limit: u64,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Ok(None);
    }
    // Sized once when the server says the length (within the cap): a list of 100,000 agents
    // grown by doubling would copy itself and hold up to twice its size meanwhile.
    let mut body = Vec::with_capacity(resp.content_length().map_or(0, |n| n as usize));
    while let Some(chunk) = resp.chunk().await? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The `error` field of a JSON error body.
fn error_message(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(bytes)
        .ok()?
        .get("error")?
        .as_str()
        .map(str::to_string)
}

/// `1s`, `2.5s`, `250ms`: a wait as a person reads it.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// At most `max` characters of a message from the server, control characters (a terminal's
/// escape sequences) replaced, so it cannot flood or rewrite the screen.
fn truncate(s: &str, max: usize) -> String {
    let clean = |c: char| if c.is_control() { ' ' } else { c };
    if s.chars().count() <= max {
        s.chars().map(clean).collect()
    } else {
        let t: String = s.chars().take(max).map(clean).collect();
        format!("{t}…")
    }
}

/// Parses the entries of a list answer one at a time and hands each object to `each`;
/// `Ok(None)` when the answer is JSON but no array. A failure of `each`, or an entry that is
/// no object, stops the parse and is left in `failed`.
struct Entries<'a, T, F: FnMut(usize, Object) -> Result<T, ClientError>> {
    each: &'a mut F,
    failed: &'a mut Option<ClientError>,
    /// The list's route template, for the error.
    route: &'a str,
}

impl<'de, T, F: FnMut(usize, Object) -> Result<T, ClientError>> serde::de::Visitor<'de>
    for Entries<'_, T, F>
{
    type Value = Option<Vec<T>>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element::<Value>()? {
            let i = out.len();
            let entry = match v {
                Value::Object(o) => (self.each)(i, o),
                _ => Err(bad_list(
                    self.route,
                    format!("entry {i} of the list is not an object"),
                )),
            };
            match entry {
                Ok(t) => out.push(t),
                Err(e) => {
                    *self.failed = Some(e);
                    return Err(A::Error::custom("entry refused"));
                }
            }
        }
        Ok(Some(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        while m
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A list answer's entries, parsed and handed to `each` one at a time, straight from the
/// answer's bytes. `route` (a template) names the list in errors.
fn parse_entries<T>(
    bytes: &[u8],
    route: &str,
    each: &mut impl FnMut(usize, Object) -> Result<T, ClientError>,
) -> Result<Vec<T>, ClientError> {
    let mut failed = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde::Deserializer::deserialize_any(
        &mut de,
        Entries {
            each,
            failed: &mut failed,
            route,
        },
    )
    .and_then(|list| de.end().map(|()| list));
    match (failed, parsed) {
        (Some(e), _) => Err(e),
        (None, Ok(Some(list))) => Ok(list),
        (None, Ok(None)) => Err(bad_list(route, "expected a JSON array".into())),
        (None, Err(e)) => Err(bad_list(route, e.to_string())),
    }
}

/// A list answer (GET of the list at `route`, a template) that is not what the contract says.
fn bad_list(route: &str, message: String) -> ClientError {
    ClientError::Decode {
        method: Method::GET,
        route: route.to_string(),
        message,
    }
}

/// An answer body parsed as `T`; no body is `None`.
fn decode<T: serde::de::DeserializeOwned>(
    method: &Method,
    route: &Route,
    bytes: Option<&[u8]>,
) -> Result<Option<T>, ClientError> {
    bytes
        .map(|b| {
            serde_json::from_slice(b).map_err(|e| ClientError::Decode {
                method: method.clone(),
                route: route.template().to_string(),
                message: e.to_string(),
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(bytes: &str) -> Result<Vec<String>, String> {
        let mut seen = Vec::new();
        parse_entries(bytes.as_bytes(), "/api/agents", &mut |i, o: Object| {
            seen.push(i);
            match o.get("name").and_then(Value::as_str) {
                Some("refused") => Err(ClientError::Build(format!("entry {i} refused"))),
                n => Ok(n.unwrap_or("").to_string()),
            }
        })
        .map_err(|e| e.to_string())
        .inspect(|list| assert_eq!(seen, (0..list.len()).collect::<Vec<_>>()))
    }

    #[test]
    fn a_list_is_parsed_entry_by_entry_and_anything_else_is_refused_with_the_route() {
        assert_eq!(
            names(r#"[{"name": "a"}, {"name": "b"}, {}]"#),
            Ok(vec!["a".into(), "b".into(), String::new()])
        );
        assert_eq!(names("[]"), Ok(vec![]));
        for not_a_list in [r#"{"name": "a"}"#, "3", "\"x\"", "null", "true"] {
            let e = names(not_a_list).expect_err(not_a_list);
            assert!(
                e.contains("/api/agents") && e.contains("expected a JSON array"),
                "{e}"
            );
        }
        let e = names(r#"[{"name": "a"}, 7]"#).expect_err("7");
        assert!(e.contains("entry 1 of the list is not an object"), "{e}");
        let e = names(r#"[{"name": "a"}, {"name": "refused"}, {"name": "c"}]"#).expect_err("x");
        assert!(e.contains("entry 1 refused"), "{e}");
        for broken in [r#"[{"name": "a"}"#, r#"[{"name": "a"}] trailing"#, "[{,}]"] {
            let e = names(broken).expect_err(broken);
            assert!(e.contains("/api/agents"), "{e}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(800),
        };
        for _ in 0..50 {
            let d1 = p.backoff(1);
            assert!(d1 >= Duration::from_millis(100) && d1 <= Duration::from_millis(200));
            let d10 = p.backoff(10);
            assert!(d10 <= Duration::from_millis(800) && d10 >= Duration::from_millis(400));
        }
    }

    #[test]
    fn ambiguity_of_failures() {
        let s = |status| ClientError::Status {
            method: Method::POST,
            route: "/api/agents".into(),
            status,
            message: String::new(),
        };
        assert!(s(500).is_ambiguous());
        assert!(!s(429).is_ambiguous() && s(429).is_transient());
        assert!(!s(400).is_ambiguous() && !s(400).is_transient());
    }

    #[test]
    fn throttling_does_not_spend_the_failure_budget() {
        let p = RetryPolicy::default();
        let s = |status| ClientError::Status {
            method: Method::GET,
            route: "/api/agents".into(),
            status,
            message: String::new(),
        };
        let mut t = Tries::default();
        for i in 1..MAX_THROTTLED_ATTEMPTS {
            assert_eq!(t.count(&s(429)), i);
            assert!(!t.exhausted(&p), "{i} × 429 must not give up");
        }
        assert_eq!(t.count(&s(500)), 1, "a 5xx starts its own count");
        t.count(&s(429));
        assert!(t.exhausted(&p));
        let mut t = Tries::default();
        for _ in 0..p.max_attempts {
            t.count(&s(503));
        }
        assert!(t.exhausted(&p));
    }
}
