//! `sipform controller`: reconciles continuously, as a Kubernetes controller does.
//!
//! The pieces, one job each: [`queue`] (which restaurants, when: dedup, backoff, parking),
//! [`feed`] (the change log a trigger fills, and PostgreSQL's LISTEN), [`leader`] (one active
//! controller per database), [`reload`] (the configuration in use, replaced only by a valid
//! one), [`reconcile`] (a targeted plan + apply of a few restaurants under the state lock),
//! [`metrics`] (Prometheus text). This file strings them together in one loop; the HTTP
//! listener and the signals live in the binary, which talks to the loop through a [`Handle`].

pub mod cache;
pub mod feed;
pub mod leader;
pub mod metrics;
pub mod queue;
pub mod reconcile;
pub mod reload;
pub mod source;
pub mod status;

mod fresh;
mod run;
mod slo;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::config::Overrides;
use crate::model::ids::RestaurantId;
use crate::remote::Client;

pub(crate) use metrics::Metrics;
pub use run::{run, run_with};

/// How the controller runs (the binary's flags).
#[derive(Debug, Clone)]
pub struct Options {
    pub root: PathBuf,
    /// Flags that override `sipform.yaml` (re-applied at every reload).
    pub overrides: Overrides,
    /// One full reconcile, then exit.
    pub once: bool,
    /// Every restaurant is queued this often (drift, missed notifications).
    pub resync_every: Duration,
    /// How often the change log is read (at once on a NOTIFY).
    pub poll_interval: Duration,
    /// Delete the objects of restaurants whose row is gone.
    pub allow_destroy: bool,
    /// `--allow-changes N`: a batch over the `guardrails:` limits is applied when none of
    /// its counts (with the last hour's) is above N; `None`: such a batch is held.
    pub allow_changes: Option<u64>,
    /// `--ignore-windows`: update agents inside their change windows and during calls.
    pub ignore_windows: bool,
    /// Most restaurants per reconcile (one state-lock hold).
    pub batch_size: usize,
    /// First backoff after a transient failure; doubles up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How often a standby tries to become the leader.
    pub leader_retry: Duration,
    /// Where the configuration copy (and a source's mirror and snapshots) are kept; `None`:
    /// [`reload::work_dir`].
    pub work_dir: Option<PathBuf>,
    /// The git repository followed for tools, template and settings (`controller.source` or
    /// the flags); `None`: the project folder, reloaded on request.
    pub source: Option<crate::config::SourceSettings>,
    /// Reinstall the change feed's log and triggers when the self-check finds them missing
    /// (`--manage-trigger`). Off by default: DDL on the platform's tables is the platform's
    /// call (its migrations, its privileges, its locks); a missing trigger is reported anyway.
    pub manage_trigger: bool,
}

impl Options {
    pub fn new(root: PathBuf) -> Options {
        Options {
            root,
            overrides: Overrides::default(),
            once: false,
            resync_every: Duration::from_secs(600),
            poll_interval: Duration::from_secs(2),
            allow_destroy: false,
            allow_changes: None,
            ignore_windows: false,
            batch_size: 100,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            leader_retry: Duration::from_secs(3),
            work_dir: None,
            source: None,
            manage_trigger: false,
        }
    }
}

/// What `/readyz` reports.
#[derive(Debug, Default)]
pub struct Status {
    pub leader: AtomicBool,
    pub standby: AtomicBool,
    /// The change feed works (LISTEN connected, or the log is polled without error).
    pub feed_ok: Arc<AtomicBool>,
    /// Why the change feed is not installed (a trigger missing), `None` when it is (or when
    /// the inventory has no feed): set by the self-check, `controller::feed::Guard`.
    pub feed_problem: Mutex<Option<String>>,
    /// The last reconcile reached the server.
    pub server_ok: AtomicBool,
    pub stopping: AtomicBool,
    /// The followed repository's commit the configuration in use comes from.
    pub revision: Mutex<Option<String>>,
}

impl Status {
    /// Leader with its feed and server up, or a standby.
    pub fn ready(&self) -> bool {
        let r = |a: &AtomicBool| a.load(Ordering::Relaxed);
        !r(&self.stopping)
            && (r(&self.standby) || (r(&self.leader) && self.feed_up() && r(&self.server_ok)))
    }

    /// The feed is installed and its waker (LISTEN, `data_version`) works.
    pub fn feed_up(&self) -> bool {
        self.feed_ok.load(Ordering::Relaxed) && self.feed_problem().is_none()
    }

    pub(crate) fn feed_problem(&self) -> Option<String> {
        self.feed_problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_feed_problem(&self, problem: Option<String>) {
        *self
            .feed_problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = problem;
    }

    /// Why `/readyz` says not ready, in a few words (`None` when ready).
    pub fn reason(&self) -> Option<String> {
        let r = |a: &AtomicBool| a.load(Ordering::Relaxed);
        if self.ready() {
            None
        } else if r(&self.stopping) {
            Some("stopping".into())
        } else if !r(&self.leader) {
            Some("not leading yet".into())
        } else if let Some(p) = self.feed_problem() {
            Some(p)
        } else if !r(&self.feed_ok) {
            Some("change feed disconnected".into())
        } else {
            Some("the server is unreachable".into())
        }
    }

    /// The commit in use (`None` without `controller.source`).
    pub fn revision(&self) -> Option<String> {
        self.revision
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_revision(&self, commit: Option<String>) {
        *self.revision.lock().unwrap_or_else(PoisonError::into_inner) = commit;
    }
}

/// Messages to the loop.
pub(crate) enum Msg {
    One(RestaurantId),
    All,
    Reload(oneshot::Sender<Result<ReloadOutcome, String>>),
    Stop,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// The tools, template or settings changed: every restaurant was queued.
    pub requeued_all: bool,
    /// The followed repository's commit now in use (`None` without `controller.source`).
    pub revision: Option<String>,
}

/// The loop's end of the channel.
pub struct Inbox(pub(crate) mpsc::UnboundedReceiver<Msg>);

/// How the HTTP listener, the signals and the file watcher talk to the running controller.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Msg>,
    pub status: Arc<Status>,
    pub metrics: Arc<Metrics>,
    /// Each restaurant's last verdict, the feed and the queue: `/v1/status` and the page.
    pub board: Arc<status::Board>,
    /// The client of the reconcile under way, to stop its writes on shutdown.
    client: Arc<Mutex<Option<Client>>>,
}

/// A handle and the inbox [`run`] reads.
pub fn channel() -> (Handle, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Handle {
            tx,
            status: Arc::new(Status::default()),
            metrics: Arc::new(Metrics::new()),
            board: Arc::new(status::Board::default()),
            client: Arc::new(Mutex::new(None)),
        },
        Inbox(rx),
    )
}

impl Handle {
    /// Queues one restaurant (the webhook). Its id was checked by the caller.
    pub fn reconcile(&self, id: RestaurantId) {
        let _ = self.tx.send(Msg::One(id));
    }

    /// Queues every restaurant.
    pub fn reconcile_all(&self) {
        let _ = self.tx.send(Msg::All);
    }

    /// Reloads tools, template and settings; an invalid configuration is refused (the error
    /// says why) and the one in use keeps running.
    pub async fn reload(&self) -> Result<ReloadOutcome, String> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Reload(tx)).is_err() {
            return Err("the controller has stopped".into());
        }
        rx.await
            .unwrap_or_else(|_| Err("the controller has stopped".into()))
    }

    /// Stops taking work; writes not yet sent are not sent, those in flight finish and are
    /// recorded; then the loop releases its locks and returns.
    pub fn shutdown(&self, why: &str) {
        self.status.stopping.store(true, Ordering::Relaxed);
        if let Some(c) = self
            .client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            c.halt_writes(why);
        }
        let _ = self.tx.send(Msg::Stop);
    }

    /// The fleet as the controller sees it now (`/v1/status`).
    pub fn snapshot(&self) -> status::Snapshot {
        self.board
            .snapshot(self.status.feed_ok.load(Ordering::Relaxed))
    }

    fn set_client(&self, client: Option<Client>) {
        *self.client.lock().unwrap_or_else(PoisonError::into_inner) = client;
    }

    fn stopping(&self) -> bool {
        self.status.stopping.load(Ordering::Relaxed)
    }
}

/// What a run did, for `--once` and the final log line.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub changed: usize,
    pub unchanged: usize,
    pub transient: usize,
    pub fatal: usize,
    pub held: usize,
    pub not_started: usize,
    pub suspended: usize,
}

impl Summary {
    pub fn add(&mut self, v: &reconcile::Verdict) {
        use reconcile::Verdict::*;
        match v {
            Done { changes: 0 } => self.unchanged += 1,
            Done { .. } => self.changed += 1,
            Transient(_) => self.transient += 1,
            Fatal(_) => self.fatal += 1,
            Held(_) => self.held += 1,
            NotStarted => self.not_started += 1,
            Suspended => self.suspended += 1,
        }
    }

    /// Whether anything failed or was left undone.
    pub fn failed(&self) -> bool {
        self.transient + self.fatal + self.not_started > 0
    }
}
