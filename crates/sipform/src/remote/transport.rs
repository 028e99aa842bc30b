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

use super::body::{decode, error_text, is_json, read_capped, retry_after, Answer, AnswerBudget};
use super::created::Created;
use super::error::redact;
use super::limiter::{Limiter, Outcome, Settled};
use super::list::{bad_list, parse_entries};
use super::objects::Object;
use super::retry::{seconds, Tries};
use super::routes::Route;
use crate::config::Settings;
use crate::LOG_TARGET;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub use super::error::ClientError;
pub(crate) use super::retry::{RetryPolicy, HOLD_ALL_AFTER};

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
    pub(super) retry: RetryPolicy,
    pub(super) stats: Arc<Stats>,
    /// The largest answer body read (`server.max_answer_bytes`).
    max_answer_bytes: u64,
    /// The answer bodies the run holds at once: `max_answer_bytes` in all.
    budget: AnswerBudget,
    /// The longest one request may spend throttled (`server.max_throttle_secs`).
    max_throttle: Duration,
    /// Whether the user has been told the server throttles: said once per run, at warn level,
    /// so a long wait is never silent.
    throttle_told: Arc<std::sync::atomic::AtomicBool>,
    /// Set once the run must stop writing (state cannot record, or a signal came): writes
    /// that have not yet got a slot are not sent; those in flight finish.
    halted: Arc<std::sync::OnceLock<String>>,
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

impl Attempt {
    /// A failure the server asked no wait for.
    fn failed(error: ClientError) -> Attempt {
        Attempt {
            error,
            retry_after: None,
        }
    }
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
            budget: AnswerBudget::new(settings.max_answer_bytes),
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
    pub(crate) fn halt_writes(&self, why: impl Into<String>) {
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
    ) -> Result<Option<Answer>, Attempt> {
        let (path, route) = (target.path(), target.template());
        if let Some(why) = target.refused() {
            return Err(Attempt::failed(ClientError::BadRoute {
                method: method.clone(),
                route: route.to_string(),
                why: why.to_string(),
            }));
        }
        self.wait_throttle().await;
        let slot = self.limiter.acquire().await;
        // Checked with the slot held: a write that waited for one while the run began to stop
        // is not sent.
        if *method != Method::GET {
            if let Some(why) = self.halted.get() {
                return Err(Attempt::failed(ClientError::Halted {
                    method: method.clone(),
                    route: route.to_string(),
                    why: why.clone(),
                }));
            }
        }
        let result = self.send(method, path, route, body).await;
        slot.finish(match &result {
            Ok(_) => Outcome::Answered,
            Err(a) => outcome(&a.error),
        });
        result
    }

    /// A request to `path` with the API key, nothing sent yet.
    fn request(&self, method: &Method, path: &str) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(method.clone(), format!("{}{}", self.base, path));
        match &self.api_key {
            Some(key) => req.header("X-API-Key", key.expose()),
            None => req,
        }
    }

    /// Sends one request and reads its answer's body (`None`: none), parsed by the caller
    /// ([`decode`]) once the slot is given back.
    async fn send(
        &self,
        method: &Method,
        path: &str,
        route: &str,
        body: Option<&Value>,
    ) -> Result<Option<Answer>, Attempt> {
        self.stats
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(b);
        }
        let started = Instant::now();
        let resp = req.send().await.map_err(|e| {
            // A connect failure never reached the server; anything later may have.
            let maybe_applied = !e.is_connect();
            tracing::debug!(target: LOG_TARGET, %method, route, "transport error: {}", redact(&e));
            Attempt::failed(ClientError::transport(method, route, &e, maybe_applied))
        })?;
        let status = resp.status();
        tracing::debug!(
            target: LOG_TARGET,
            %method,
            route,
            status = status.as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "request"
        );
        if status.is_redirection() {
            return Err(Attempt::failed(ClientError::Redirect {
                method: method.clone(),
                route: route.to_string(),
                status: status.as_u16(),
            }));
        }
        if !status.is_success() {
            let retry_after = retry_after(&resp);
            return Err(Attempt {
                error: ClientError::Status {
                    method: method.clone(),
                    route: route.to_string(),
                    status: status.as_u16(),
                    message: error_text(resp).await,
                },
                retry_after,
            });
        }
        self.read_answer(method, route, resp).await
    }

    /// A successful answer's body, read up to `server.max_answer_bytes`; `None` when it has
    /// none.
    async fn read_answer(
        &self,
        method: &Method,
        route: &str,
        resp: reqwest::Response,
    ) -> Result<Option<Answer>, Attempt> {
        let status = resp.status();
        let bytes = match read_capped(resp, self.max_answer_bytes, Some(&self.budget)).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                return Err(Attempt::failed(ClientError::TooLarge {
                    method: method.clone(),
                    route: route.to_string(),
                    limit: self.max_answer_bytes,
                }))
            }
            Err(e) => {
                return Err(Attempt::failed(ClientError::transport(
                    method, route, &e, true,
                )))
            }
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
    ) -> Result<Option<Answer>, ClientError> {
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
                        Some(b) => {
                            Created::parse(b.into_bytes()).map_err(|e| format!("the answer: {e}"))
                        }
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

    pub(crate) async fn backoff_pause(&self, attempt: u32) {
        self.stats
            .retries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(self.retry.backoff(attempt)).await;
    }

    /// GET of a list. Every entry must be an object: anything else is an error about the
    /// server's answer, never silently skipped (a skipped entry would be created again).
    pub(crate) async fn get_list(&self, route: &Route) -> Result<Vec<Object>, ClientError> {
        self.get_list_each(route, |_, o| Ok(o)).await
    }

    /// [`Client::get_list`], each entry handed to `each` as soon as it is parsed: a list of
    /// 100,000 agents is never held whole as trees, only as its text and what `each` keeps.
    pub(crate) async fn get_list_each<T>(
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
        let mut req = self.request(&method, path);
        if method == Method::PUT || method == Method::POST {
            req = req.json(&serde_json::json!({}));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::transport(&method, path, &e, false))?;
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

    /// One GET with an agent's Bearer token instead of the account key (`GET /api/calls`:
    /// the answer holds that agent's calls only). Not retried: a rollout's health check reads
    /// a failure as "unknown" and asks again on its next pass. The token is never logged.
    pub async fn get_as_agent(
        &self,
        route: &Route,
        token: &crate::model::secret::Secret<String>,
    ) -> Result<Value, ClientError> {
        let method = Method::GET;
        if let Some(why) = route.refused() {
            return Err(ClientError::BadRoute {
                method,
                route: route.template().to_string(),
                why: why.to_string(),
            });
        }
        let slot = self.limiter.acquire().await;
        let resp = self
            .http
            .get(format!("{}{}", self.base, route.path()))
            .bearer_auth(token.expose())
            .send()
            .await;
        slot.finish(Outcome::Ignored);
        let resp =
            resp.map_err(|e| ClientError::transport(&method, route.template(), &e, false))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ClientError::Status {
                method,
                route: route.template().to_string(),
                status: status.as_u16(),
                message: error_text(resp).await,
            });
        }
        let bytes = self
            .read_answer(&method, route.template(), resp)
            .await
            .map_err(|a| a.error)?;
        decode::<Value>(&method, route, bytes.as_deref())?.ok_or_else(|| ClientError::Decode {
            method: Method::GET,
            route: route.template().to_string(),
            message: "expected a JSON answer".into(),
        })
    }
}

/// What `doctor` learns from one request.
#[derive(Debug, Clone)]
pub struct Probe {
    pub status: u16,
    pub json: bool,
    pub date: Option<String>,
}
