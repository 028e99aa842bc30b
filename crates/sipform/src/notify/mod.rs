//! Notifications: a webhook (sipform's JSON, or Slack's `{"text": …}`) told about what an
//! operator must hear without watching logs, as Flux's alerts are: a rollout halted or
//! finished, a restaurant parked, a guardrail refusal, the change feed down, leadership lost.
//!
//! Never in the way: [`Notifier::notify`] puts the event in a bounded queue and returns; a
//! background task POSTs it, with a bounded number of retries and backoff; a full queue drops
//! the event and counts it. Never a secret: the webhook URL is one (a Slack webhook is a
//! credential) and is never logged; no redirect is followed; every text is scrubbed of URL
//! credentials ([`body::scrub`]).

pub mod body;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use body::Event;

use crate::model::secret::Secret;
use crate::model::spec::{NotifyConfig, NotifyFormat};
use crate::LOG_TARGET;

/// Events waiting to be sent; more are dropped (and counted).
pub const QUEUE: usize = 64;

/// How hard one event is tried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per event, the first included (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubles after each failure.
    pub first_backoff: Duration,
    /// Per request.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts over about 7 seconds, 10 seconds each at most.
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What the notifier did, for the controller's metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events the webhook accepted (a 2xx).
    pub sent: AtomicU64,
    /// Events given up on after their attempts (or at once: a 4xx, a redirect).
    pub failed: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Attempts after the first.
    pub retries: AtomicU64,
}

/// Why a notifier could not start.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Building the HTTP client failed (no TLS roots): fatal, nothing will be sent.
    #[error("notifications: building the HTTP client: {0}")]
    Client(String),
}

/// The sending side; cheap to clone. A notifier without a webhook does nothing.
#[derive(Clone)]
pub struct Notifier {
    tx: Option<mpsc::Sender<Event>>,
    stats: Arc<Stats>,
}

/// The background task, to be awaited at shutdown ([`Worker::finish`]).
pub struct Worker(Option<JoinHandle<()>>);

impl Notifier {
    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier {
            tx: None,
            stats: Arc::default(),
        }
    }

    /// Starts the background task for `config`'s webhook (none: [`Notifier::disabled`]).
    /// `project` names the sender in every body. Needs a tokio runtime.
    pub fn start(
        config: &NotifyConfig,
        project: &str,
        policy: RetryPolicy,
    ) -> Result<(Notifier, Worker), NotifyError> {
        let Some(url) = config.webhook.clone() else {
            return Ok((Notifier::disabled(), Worker(None)));
        };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(policy.timeout)
            .build()
            .map_err(|e| NotifyError::Client(e.without_url().to_string()))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(Stats::default());
        let sender = Sender {
            client,
            url,
            format: config.format,
            project: project.to_string(),
            policy,
            stats: stats.clone(),
        };
        let task = tokio::spawn(sender.run(rx));
        Ok((
            Notifier {
                tx: Some(tx),
                stats,
            },
            Worker(Some(task)),
        ))
    }

    /// Queues `event` and returns at once; when the queue is full the event is dropped and
    /// counted ([`Stats::dropped`]).
    pub fn notify(&self, event: Event) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(event).is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(target: LOG_TARGET, "notifications: queue full, an event was dropped");
        }
    }

    /// Its counters (shared: the controller's `/metrics` reads them).
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }
}

impl Worker {
    /// No task (a disabled notifier).
    pub fn none() -> Worker {
        Worker(None)
    }

    /// Waits up to `grace` for the events queued before every [`Notifier`] was dropped to be
    /// sent (at shutdown: a `--once` run's last events are not lost).
    pub async fn finish(self, grace: Duration) {
        if let Some(task) = self.0 {
            let abort = task.abort_handle();
            if tokio::time::timeout(grace, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// The background task's side.
struct Sender {
    client: reqwest::Client,
    url: Secret<String>,
    format: NotifyFormat,
    project: String,
    policy: RetryPolicy,
    stats: Arc<Stats>,
}

/// How one attempt ended.
enum Attempt {
    Sent,
    /// Worth another try: no answer, a 5xx, a 429.
    Retry(String),
    /// Never worth another: a 4xx, a redirect (not followed).
    GiveUp(String),
}

impl Sender {
    async fn run(self, mut rx: mpsc::Receiver<Event>) {
        while let Some(event) = rx.recv().await {
            self.deliver(&event).await;
        }
    }

    async fn deliver(&self, event: &Event) {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let body = body::body(event, self.format, &self.project, &at);
        let mut wait = self.policy.first_backoff;
        let attempts = self.policy.attempts.max(1);
        for n in 1..=attempts {
            let why = match self.attempt(&body).await {
                Attempt::Sent => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Attempt::GiveUp(why) => {
                    self.give_up(event, &why, n);
                    return;
                }
                Attempt::Retry(why) => why,
            };
            if n == attempts {
                self.give_up(event, &why, n);
                return;
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
        }
    }

    async fn attempt(&self, body: &serde_json::Value) -> Attempt {
        let sent = self.client.post(self.url.expose()).json(body).send().await;
        match sent {
            // The error names the URL unless told not to: the URL is a credential.
            Err(e) => Attempt::Retry(e.without_url().to_string()),
            Ok(r) if r.status().is_success() => Attempt::Sent,
            Ok(r) if r.status().is_redirection() => Attempt::GiveUp(format!(
                "answered {} (redirects are not followed)",
                r.status()
            )),
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                Attempt::Retry(format!("answered {}", r.status()))
            }
            Ok(r) => Attempt::GiveUp(format!("answered {}", r.status())),
        }
    }

    fn give_up(&self, event: &Event, why: &str, attempts: u32) {
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            target: LOG_TARGET,
            "notifications: the webhook did not take a {} event after {attempts} attempt(s): {why}",
            event.kind()
        );
    }
}
