//! The loop: become the leader, then take work from the feed, the webhook, the resync timer
//! and the queue's backoffs, one batch at a time, until told to stop or leadership is lost.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::cache::Cache;
use super::feed::{self, ChangeLog};
use super::fresh::{self, Marks};
use super::leader::{advisory_key, LeaderLock, Leadership, Lease};
use super::queue::{self, Lane, WorkQueue};
use super::reconcile::{self, Ctx, Verdict};
use super::reload::Config;
use super::source::{Follow, Followed};
use super::{Handle, Inbox, Msg, Options, ReloadOutcome, Summary};
use crate::inventory::{Inventory, InventoryRead};
use crate::model::ids::RestaurantId;
use crate::model::spec::StateConfig;
use crate::notify::{self, Event, Notifier};
use crate::ops::guardrails::Window;
use crate::ops::{OpsError, Workspace};
use crate::plan::HoldReason;
use crate::remote::Client;
use crate::resources::Kinds;
use crate::state::{self, ProjectRef, StateBackend};
use crate::LOG_TARGET;

/// Attempts per request inside one reconcile (the CLI's client makes 8): a blip is retried
/// once at once; anything longer is the queue's backoff.
const CLIENT_ATTEMPTS: u32 = 2;

/// A restaurant held with no known end (no window opens in the next days) is looked at again
/// this often.
const HELD_RECHECK: Duration = Duration::from_secs(30);

/// Runs until [`Handle::shutdown`] (or, with `--once`, one full reconcile). Returns what it
/// did; an error only for what stops it from running at all (invalid configuration at start,
/// another controller holding the file lock, an unreachable table at start).
pub async fn run(opts: Options, handle: Handle, inbox: Inbox) -> Result<Summary, OpsError> {
    run_with(Kinds::builtin(), opts, handle, inbox).await
}

/// [`run`] over `kinds` (built once, carried for the controller's life): a program embedding
/// sipform adds its own kinds with [`Kinds::with`].
pub async fn run_with(
    kinds: Kinds,
    opts: Options,
    handle: Handle,
    inbox: Inbox,
) -> Result<Summary, OpsError> {
    let (config, follow) = first_config(&opts).await?;
    let (notifier, worker) = start_notifier(&config.settings);
    handle.metrics.watch_notifier(&notifier);
    // The last events (a `--once` run's refusal, a lost lead) get a moment to go out; a
    // controller told to stop still exits within about a second.
    let grace = if opts.once { ONCE_GRACE } else { STOP_GRACE };
    let ran = run_configured(kinds, opts, handle, inbox, (config, follow), notifier).await;
    worker.finish(grace).await;
    ran
}

/// How long `--once` waits for its queued notifications at the end (their retries included).
const ONCE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a controller told to stop (SIGTERM) waits for them.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The notifier for `settings.notify` (a disabled one when it cannot start: notifications
/// never stop the controller).
fn start_notifier(settings: &crate::config::Settings) -> (Notifier, notify::Worker) {
    let project = settings
        .project
        .clone()
        .unwrap_or_else(|| settings.account.name.clone());
    match Notifier::start(&settings.notify, &project, notify::RetryPolicy::default()) {
        Ok(started) => started,
        Err(e) => {
            tracing::error!(target: LOG_TARGET, "controller: {e}");
            (Notifier::disabled(), notify::Worker::none())
        }
    }
}

/// [`run_with`] once the configuration is read and the notifier started.
async fn run_configured(
    kinds: Kinds,
    opts: Options,
    handle: Handle,
    mut inbox: Inbox,
    (mut config, mut follow): (Config, Option<Follow>),
    notifier: Notifier,
) -> Result<Summary, OpsError> {
    tracing::info!(target: LOG_TARGET, "controller: configuration at revision {}", config.revision.describe());
    handle.metrics.config(&config.revision);
    handle.board.set_revision(Some(config.revision.short()));
    handle.status.set_revision(config.commit.clone());
    if follow.as_ref().is_some_and(Follow::refused) {
        handle.metrics.source_last_error.set(1);
    }
    let inventory = crate::ops::open_inventory(&config.settings).await?;
    let project = ProjectRef::of(
        config.settings.project.as_deref(),
        &config.settings.account.name,
    );
    let backend = state::open(&config.settings.state, &opts.root, Some(&project))?;
    let lock = leader_lock(&config, inventory.as_ref(), &project)?;
    let mut summary = Summary::default();
    let mut carried: Option<Carried> = None;
    loop {
        let Some(leadership) = become_leader(
            &lock,
            &handle,
            &mut inbox,
            (&mut config, &mut follow),
            &opts,
        )
        .await?
        else {
            return Ok(summary);
        };
        handle.status.standby.store(false, Ordering::Relaxed);
        let resumed = Resumed::of(carried.take(), backend.as_ref(), &opts).await;
        let mut leader = Leader {
            opts: &opts,
            handle: &handle,
            config: &mut config,
            follow: &mut follow,
            inventory: inventory.as_ref(),
            backend: backend.clone(),
            queue: resumed.queue,
            summary: &mut summary,
            full_due: resumed.full_due,
            // A leadership goes on with the sweep where the last check of each restaurant left
            // it (`--once`: everyone at once).
            sweep: if opts.once || !resumed.full_due {
                Sweep::Now
            } else {
                Sweep::Resume
            },
            next_sweep: resumed.next_sweep,
            keep_cache: false,
            cache: resumed.cache,
            marks: Marks::new(opts.resync_every),
            commits_clean: false,
            kinds: &kinds,
            notifier: &notifier,
            guard_window: Window::default(),
            last_refusal: None,
            feed_down: None,
            slo: super::slo::Slo::default(),
            rollout_shown: true,
            rollout_verified: None,
            stable: Default::default(),
            log_read: LogRead::default(),
        };
        let ended = leader.lead(leadership, &mut inbox).await;
        carried = Some(leader.hand_over());
        handle.status.leader.store(false, Ordering::Relaxed);
        handle.metrics.leader.set(0);
        match ended? {
            Ended::Stopped => return Ok(summary),
            Ended::LostLeadership => {
                tracing::warn!(target: LOG_TARGET, "controller: lost the leader lock; standing by");
                notifier.notify(Event::LeadershipLost);
            }
        }
    }
}

/// The configuration at start: the project folder's, or the followed repository's.
async fn first_config(opts: &Options) -> Result<(Config, Option<Follow>), OpsError> {
    let Some(src) = opts.source.clone() else {
        let config = Config::load(&opts.root, &opts.overrides, opts.work_dir.as_deref())?;
        return Ok((config, None));
    };
    let work = match &opts.work_dir {
        Some(w) => w.clone(),
        None => {
            super::reload::work_dir(&crate::config::Settings::load(&opts.root, &opts.overrides)?)
        }
    };
    let mut follow = Follow::new(src, &work);
    tracing::info!(target: LOG_TARGET, "controller: following {} branch {} every {:?}", follow.source.repo(), follow.source.settings.branch, follow.source.settings.interval);
    let config = follow.initial(opts, &work).await?;
    Ok((config, Some(follow)))
}

enum Ended {
    Stopped,
    LostLeadership,
}

/// What a full reconcile does with the restaurants both the inventory and state hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sweep {
    /// Everyone due at once (`POST /v1/reconcile`, a reload, a gap in the feed, `--once`).
    Now,
    /// The timed sweep: spread evenly over the interval, jittered.
    Spread,
    /// A new leadership: each restaurant due one interval after its last check at the
    /// configuration in use (`fresh::age`), those never checked, checked longer ago or at
    /// another configuration first.
    Resume,
}

/// What this process keeps from one leadership to the next (a lock blip, or leading again
/// after a failover): the cache, the queue (changes taken from the log and not yet
/// reconciled) and when the next timed sweep is due.
struct Carried {
    cache: Cache,
    queue: WorkQueue,
    /// State's lineage and serial as the last batch left them, when every commit of that
    /// leadership went through (`None`: not known).
    serial: Option<(uuid::Uuid, u64)>,
    next_sweep: Instant,
}

/// How a leadership starts.
struct Resumed {
    cache: Cache,
    queue: WorkQueue,
    /// The account-wide lists are read and restaurants scheduled by their last check.
    full_due: bool,
    next_sweep: Instant,
}

impl Resumed {
    /// From what the last leadership of this process left, if any. Nobody committed state
    /// since (its serial is the one the last batch kept): the cache is still the server's and
    /// the sweep goes on as it was, with no read at all. Otherwise (a first start, another
    /// leader or CI's `apply` wrote meanwhile): a new cache, filled from the account-wide
    /// lists, and each restaurant scheduled by its last check; the changes queued before are
    /// kept (the log no longer has them).
    async fn of(carried: Option<Carried>, backend: &dyn StateBackend, opts: &Options) -> Resumed {
        let fresh = |queue| Resumed {
            cache: Cache::default(),
            queue,
            full_due: true,
            next_sweep: Instant::now() + opts.resync_every,
        };
        let Some(c) = carried else {
            return fresh(WorkQueue::new(opts.backoff_base, opts.backoff_max));
        };
        let stored = match backend.stored_serial().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(target: LOG_TARGET, "controller: reading state's serial: {e}");
                None
            }
        };
        if c.serial.is_some() && stored == c.serial {
            tracing::info!(target: LOG_TARGET, "controller: nobody wrote state since this process last led: the cache and the sweep go on as they were");
            return Resumed {
                cache: c.cache,
                queue: c.queue,
                full_due: false,
                next_sweep: c.next_sweep,
            };
        }
        let serial =
            |s: Option<(uuid::Uuid, u64)>| s.map_or("unknown".to_string(), |(_, n)| n.to_string());
        tracing::info!(target: LOG_TARGET, "controller: state was written since this process last led (serial {} then, {} now): reading the account-wide lists again", serial(c.serial), serial(stored));
        fresh(c.queue)
    }
}

/// Where the one-active-controller lock lives: the platform's PostgreSQL, else state's
/// PostgreSQL, else a file beside state.
fn leader_lock(
    config: &Config,
    inventory: &dyn Inventory,
    project: &ProjectRef,
) -> Result<LeaderLock, OpsError> {
    let settings = &config.settings;
    let scope = format!("{}|{}", project, inventory.scope());
    if let Some(db) = inventory.database() {
        if let Some(opts) = db.pg_options() {
            return Ok(LeaderLock::Postgres {
                options: Box::new(opts.clone()),
                key: advisory_key(&scope),
                place: db.describe(),
            });
        }
    }
    let root = &settings.root;
    let path = match &settings.state {
        StateConfig::Postgres { url, .. } => {
            let url = crate::db::url_or_env(url.as_deref(), "state.url")?;
            let options = sqlx::postgres::PgConnectOptions::from_str(&url).map_err(|e| {
                OpsError::Conflict(format!("state.url is not a PostgreSQL URL: {e}"))
            })?;
            return Ok(LeaderLock::Postgres {
                options: Box::new(options),
                key: advisory_key(&scope),
                place: crate::db::redact(&url),
            });
        }
        StateConfig::Sqlite { url, .. } => crate::db::sqlite_path(url, root)?,
        StateConfig::File { path, .. } => root.join(path),
    };
    let mut p = path.into_os_string();
    p.push(".controller");
    Ok(LeaderLock::File(PathBuf::from(p)))
}

/// Waits to lead. `None`: told to stop while standing by.
async fn become_leader(
    lock: &LeaderLock,
    handle: &Handle,
    inbox: &mut Inbox,
    (config, follow): (&mut Config, &mut Option<Follow>),
    opts: &Options,
) -> Result<Option<Leadership>, OpsError> {
    let mut said = false;
    loop {
        if handle.stopping() {
            return Ok(None);
        }
        match lock.try_acquire().await {
            Ok(Some(l)) => return Ok(Some(l)),
            Ok(None) => {
                if opts.once {
                    return Err(OpsError::Conflict(
                        "another controller is the leader of this database: --once did nothing"
                            .into(),
                    ));
                }
                handle.status.standby.store(true, Ordering::Relaxed);
                if !said {
                    tracing::info!(target: LOG_TARGET, "controller: another controller leads; standing by");
                    said = true;
                }
            }
            Err(e) if e.is_transient() => {
                handle.status.standby.store(false, Ordering::Relaxed);
                tracing::warn!(target: LOG_TARGET, "controller: cannot take the leader lock yet: {e}");
            }
            Err(e) => return Err(e.into()),
        }
        let deadline = tokio::time::sleep(opts.leader_retry);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                msg = inbox.0.recv() => match msg {
                    None | Some(Msg::Stop) => return Ok(None),
                    // A standby keeps its configuration current, so it leads with the new one.
                    Some(Msg::Reload(reply)) => {
                        let r = reload(config, follow, handle, opts).await;
                        let _ = reply.send(r.map(|_| ReloadOutcome { requeued_all: false, revision: config.commit.clone() }));
                    }
                    // The leader's feed sees the same changes: nothing to do here.
                    Some(Msg::One(_)) | Some(Msg::All) => {}
                },
            }
        }
    }
}

/// Loads the configuration again (with a followed repository: fetches it, and switches to a
/// new valid commit); `Ok(true)` when it changed what restaurants look like.
async fn reload(
    config: &mut Config,
    follow: &mut Option<Follow>,
    handle: &Handle,
    opts: &Options,
) -> Result<bool, String> {
    if let Some(f) = follow {
        let r = f.reload(config, handle, opts).await;
        // The board first: whoever sees the new commit in /readyz then sees every restaurant
        // not yet reconciled at it as out of sync in /v1/status.
        handle.board.set_revision(Some(config.revision.short()));
        handle.status.set_revision(config.commit.clone());
        handle.metrics.config(&config.revision);
        handle
            .metrics
            .reloaded(if r.is_ok() { "ok" } else { "refused" });
        // A new commit is a rollout: every restaurant, whatever the digest says.
        return r.map(|f| matches!(f, Followed::Switched));
    }
    let next = config.admit(Config::load(
        &opts.root,
        &opts.overrides,
        opts.work_dir.as_deref(),
    ));
    match next {
        Ok(next) => {
            let changed = next.digest != config.digest;
            *config = next;
            handle.metrics.reloaded("ok");
            handle.metrics.config(&config.revision);
            handle.board.set_revision(Some(config.revision.short()));
            tracing::info!(target: LOG_TARGET, "controller: configuration reloaded at revision {}{}", config.revision.describe(), if changed { "; every restaurant is queued" } else { " (unchanged)" });
            Ok(changed)
        }
        Err(e) => {
            handle.metrics.reloaded("refused");
            tracing::error!(target: LOG_TARGET, "controller: reload refused, the configuration in use keeps running: {e}");
            Err(e.to_string())
        }
    }
}

struct Leader<'a> {
    opts: &'a Options,
    handle: &'a Handle,
    config: &'a mut Config,
    follow: &'a mut Option<Follow>,
    inventory: &'a dyn Inventory,
    backend: Arc<dyn StateBackend>,
    queue: WorkQueue,
    summary: &'a mut Summary,
    /// A full reconcile is due (start, resync, reload, `POST /v1/reconcile`).
    full_due: bool,
    /// How the next full reconcile schedules the restaurants.
    sweep: Sweep,
    /// When the next timed sweep starts.
    next_sweep: Instant,
    /// Restaurants a background reconcile found in step, to stamp in state.
    marks: Marks,
    /// Every state commit of the leadership went through (known once it ended).
    commits_clean: bool,
    /// The next full reconcile is a new configuration's rollout: the cache, kept current by
    /// every write, is planned against as it is (no list or child re-read per restaurant);
    /// drift made by hand is the timed resync's to find.
    keep_cache: bool,
    /// The server as last seen: targeted reconciles plan against it.
    cache: Cache,
    kinds: &'a Kinds,
    notifier: &'a Notifier,
    /// What was applied over the guardrails' window: each batch is judged with it.
    guard_window: Window,
    /// The last guardrail refusal notified: the same refusal at every resync is said once.
    last_refusal: Option<String>,
    /// The change feed's problem last notified (`None`: up).
    feed_down: Option<String>,
    /// Time to live, drift and holds, for `/metrics`.
    slo: super::slo::Slo,
    /// The board shows a rollout that was going on at the last poll.
    rollout_shown: bool,
    /// The rollout's wave last read back and found right (post-apply verification).
    rollout_verified: Option<(crate::model::revision::ConfigDigest, usize)>,
    /// The stable revision's files of the rollout in progress (new restaurants).
    stable: crate::ops::rollout::StableCache,
    /// The change log as read by this leadership, and the entries read and not yet
    /// acknowledged, by restaurant: deleted once it is reconciled (see [`ChangeLog::read`]).
    log_read: LogRead,
}

/// A leadership's reading of the change log.
#[derive(Default)]
struct LogRead {
    log: Option<ChangeLog>,
    cursor: crate::inventory::changes::Cursor,
    taken: std::collections::HashMap<RestaurantId, Vec<i64>>,
}

impl Leader<'_> {
    async fn lead(&mut self, leadership: Leadership, inbox: &mut Inbox) -> Result<Ended, OpsError> {
        let mut client = Client::new(&self.config.settings)
            .map_err(|e| OpsError::server(&self.config.settings.server_url, e))?;
        // A failing call is tried again by the queue, at a due time, not by the client while
        // the batch waits: one tenant whose agent answers 500 holds nobody.
        client.cap_attempts(CLIENT_ATTEMPTS);
        self.handle.metrics.watch_client(&client);
        self.handle.set_client(Some(client.clone()));
        // Leadership is confirmed apart from the work; while it is, state commits go through
        // the lease's fence.
        let lease = Lease::start(leadership, client.clone());
        let plain = self.backend.clone();
        self.backend = lease.fence(plain.clone());
        let ended = self.lead_with(&client, &lease, inbox).await;
        if matches!(ended, Ok(Ended::Stopped)) && !lease.expired() {
            // Stopping: the checks gathered are stamped, so the next start goes on from them.
            self.checkpoint().await;
        }
        self.commits_clean = lease.commits_clean();
        self.backend = plain;
        self.handle.set_client(None);
        lease.release().await;
        ended
    }

    async fn lead_with(
        &mut self,
        client: &Client,
        lease: &Lease,
        inbox: &mut Inbox,
    ) -> Result<Ended, OpsError> {
        self.heal(client).await;
        let wake = Arc::new(Notify::new());
        let log = self.inventory.change_log();
        // Without a change log (a files inventory) nothing is installed or expected.
        self.handle.board.feed_installed(log.is_some());
        let feed_ok = self.handle.status.feed_ok.clone();
        feed_ok.store(true, Ordering::Relaxed);
        let mut guard = log.map(|l| {
            let engine = self.inventory.database().map(|d| d.engine());
            feed::Guard::new(
                l,
                self.opts.manage_trigger,
                engine.unwrap_or(crate::db::Engine::Postgres),
            )
        });
        if let Some(g) = guard.as_mut() {
            g.check(self.handle).await;
            self.feed_state(g.missing().map(|m| format!("missing {}", m.join(", "))));
        }
        let waker = match self.inventory.database() {
            Some(db) if guard.is_some() && !self.opts.once => feed::spawn_waker(
                db.pool(),
                db.sqlite_path().map(std::path::Path::to_path_buf),
                wake.clone(),
                feed_ok.clone(),
            ),
            _ => None,
        };
        let ended = self
            .serve(client, lease, inbox, guard.as_mut(), &wake)
            .await;
        if let Some(l) = waker {
            l.abort();
        }
        ended
    }

    /// Rewrites the platform rows whose ids or tokens are not state's, once at start.
    async fn heal(&self, client: &Client) {
        if self.inventory.write_back().is_none() {
            return;
        }
        let ws = match Workspace::for_read(
            self.config.settings.clone(),
            self.backend.clone(),
            self.inventory,
            InventoryRead::default(),
            self.kinds.clone(),
        ) {
            Ok(ws) => ws,
            Err(e) => {
                tracing::warn!(target: LOG_TARGET, "controller: {e}");
                return;
            }
        };
        let healed = async {
            let _lock = ws.lock("controller").await?;
            let mut state = ws.state().await?;
            crate::ops::repair::repair_rows(&ws, client, &mut state, None).await
        };
        match healed.await {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(target: LOG_TARGET, "controller: healing the platform's rows: {e}")
            }
        }
    }

    async fn serve(
        &mut self,
        client: &Client,
        lease: &Lease,
        inbox: &mut Inbox,
        mut guard: Option<&mut feed::Guard>,
        wake: &Notify,
    ) -> Result<Ended, OpsError> {
        let mut poll = tokio::time::interval(self.opts.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut resync = tokio::time::interval_at(
            tokio::time::Instant::from_std(self.next_sweep),
            self.opts.resync_every,
        );
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let every = self.follow.as_ref().map(|f| f.source.settings.interval);
        // Without a source the timer is never read: a day is as good as never.
        let mut fetch =
            tokio::time::interval(every.unwrap_or(std::time::Duration::from_secs(86_400)));
        fetch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        fetch.reset();
        loop {
            if self.handle.stopping() {
                return Ok(Ended::Stopped);
            }
            if self.full_due {
                self.full_due = false;
                self.queue_all(client).await;
            }
            if !self.handle.status.leader.swap(true, Ordering::Relaxed) {
                // Reported once the first full resync is queued: from then on, every change
                // is seen.
                self.handle.metrics.leader.set(1);
                tracing::info!(target: LOG_TARGET, "controller: leading");
            }
            if self.opts.once {
                lease.writable().await;
                self.work(client, lease).await;
                return Ok(Ended::Stopped);
            }
            // One batch at a time, the feed, the webhook and the leader check looked at between
            // two: a change seen meanwhile goes ahead of the rest of a resync's sweep.
            // A new leader's first write waits for a predecessor still running to let go.
            let gate = lease.writes_from();
            let writes_from = tokio::time::Instant::from_std(gate);
            let gated = writes_from > tokio::time::Instant::now();
            let next_due = self
                .queue
                .next_due()
                .map(|t| tokio::time::Instant::from_std(t).max(writes_from));
            let busy = next_due.is_some_and(|t| t <= tokio::time::Instant::now());
            let backoff = async {
                match next_due {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                msg = inbox.0.recv() => match msg {
                    None | Some(Msg::Stop) => return Ok(Ended::Stopped),
                    Some(m) => self.message(m).await,
                },
                _ = lease.lost() => return Ok(Ended::LostLeadership),
                _ = lease.opened_before(gate), if gated => {}
                _ = fetch.tick(), if every.is_some() => {
                    // Refusals and fetch failures are logged and counted by the reload.
                    let _ = self.reload().await;
                }
                _ = wake.notified() => self.feed_poll(guard.as_deref_mut()).await,
                _ = poll.tick() => self.on_poll(client, guard.as_deref_mut()).await,
                _ = resync.tick() => {
                    self.full_due = true;
                    self.sweep = Sweep::Spread;
                    self.next_sweep = Instant::now() + self.opts.resync_every;
                }
                _ = std::future::ready(()), if busy => { self.batch(client, lease).await; }
                _ = backoff, if !busy => {}
            }
        }
    }

    async fn message(&mut self, msg: Msg) {
        let now = Instant::now();
        match msg {
            Msg::One(id) => self.push_change(id, now),
            Msg::All => {
                self.full_due = true;
                self.sweep = Sweep::Now;
            }
            Msg::Reload(reply) => {
                let r = self.reload().await;
                let _ = reply.send(r);
            }
            Msg::Stop => {}
        }
        self.gauges();
    }

    /// A reload (or a followed repository's fetch); a change queues every restaurant and
    /// unparks the parked ones.
    async fn reload(&mut self) -> Result<ReloadOutcome, String> {
        let account = self.config.settings.account.name.clone();
        let changed = reload(self.config, self.follow, self.handle, self.opts).await?;
        if changed {
            self.full_due = true;
            // The same account: what the cache holds is still the server's.
            self.keep_cache = account == self.config.settings.account.name;
            self.queue.unpark_all(Instant::now());
        }
        Ok(ReloadOutcome {
            requeued_all: changed,
            revision: self.config.commit.clone(),
        })
    }

    /// The feed's self-check (a full reconcile when it found a gap), then the log's entries.
    async fn feed_poll(&mut self, guard: Option<&mut feed::Guard>) {
        let Some(guard) = guard else { return };
        if guard.check(self.handle).await {
            self.full_due = true;
        }
        let mut down = guard.missing().map(|m| format!("missing {}", m.join(", ")));
        if guard.log_present() {
            if let Some(e) = self.read_log(guard.log()).await {
                down = down.or(Some(e));
            }
        }
        self.feed_state(down);
    }

    /// A change seen on the feed or the webhook: a restaurant state does not hold yet goes
    /// ahead of the changes of known ones.
    fn push_change(&mut self, id: RestaurantId, now: Instant) {
        self.slo.seen(&id, now);
        if self.cache.is_new(&id) {
            self.queue.push_new(id, now);
        } else {
            self.queue.push(id, now);
        }
    }

    /// Queues the log's entries; the error when it could not be read.
    async fn read_log(&mut self, log: &ChangeLog) -> Option<String> {
        let mut failed = None;
        if self.log_read.log.is_none() {
            self.log_read.log = Some(log.clone());
        }
        loop {
            match log.read(&mut self.log_read.cursor).await {
                Ok((entries, full)) => {
                    let now = Instant::now();
                    let mut ids = BTreeSet::new();
                    for (seq, id) in entries {
                        self.log_read.taken.entry(id.clone()).or_default().push(seq);
                        ids.insert(id);
                    }
                    for id in ids {
                        self.push_change(id, now);
                    }
                    if !full {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(target: LOG_TARGET, "controller: reading the change log: {e}");
                    self.handle.status.feed_ok.store(false, Ordering::Relaxed);
                    failed = Some(format!("reading the change log: {e}"));
                    break;
                }
            }
        }
        self.gauges();
        failed
    }

    /// Deletes the log's entries `read` of the restaurants a batch `answered` (read before
    /// their reconcile started); the others get theirs back, for a later reconcile (or the next
    /// leader) to answer.
    async fn acknowledge(
        &mut self,
        read: Vec<(RestaurantId, Vec<i64>)>,
        answered: &std::collections::HashSet<RestaurantId>,
    ) {
        let mut seqs = Vec::new();
        for (id, mut s) in read {
            if answered.contains(&id) {
                seqs.append(&mut s);
            } else {
                let e = self.log_read.taken.entry(id).or_default();
                s.append(e);
                *e = s;
            }
        }
        let Some(log) = &self.log_read.log else {
            return;
        };
        if let Err(e) = log.ack(&seqs).await {
            // Left in the log: the next leader reconciles those restaurants again, no worse.
            tracing::warn!(target: LOG_TARGET, "controller: clearing {} change-log entries: {e}", seqs.len());
        }
    }

    /// Every restaurant of the inventory and of state, queued (see [`Sweep`] for when). A
    /// timed sweep (every `--resync`) spreads the restaurants both hold over the interval,
    /// jittered, so the server sees a steady trickle of reads, not a burst; a new leadership
    /// resumes the sweep from each restaurant's last check; a restaurant only one of them
    /// holds (new, or gone) is due at once, as is everyone on `POST /v1/reconcile`, a reload
    /// or `--once`.
    async fn queue_all(&mut self, client: &Client) {
        let sweep = std::mem::replace(&mut self.sweep, Sweep::Now);
        let listed: BTreeSet<RestaurantId> = match self.inventory.all_ids().await {
            Ok(ids) => ids.into_iter().collect(),
            Err(e) => {
                tracing::warn!(target: LOG_TARGET, "controller: full resync: {e}; retrying at the next poll");
                self.full_due = true;
                self.sweep = sweep;
                return;
            }
        };
        let state = match self.cache.take_or_load_state(self.backend.as_ref()).await {
            Ok(state) => Some(state.unwrap_or_default()),
            Err(e) => {
                tracing::warn!(target: LOG_TARGET, "controller: full resync: reading state: {e}");
                self.cache.invalidate();
                None
            }
        };
        let recorded = state
            .as_ref()
            .map(|s| s.restaurant_ids())
            .unwrap_or_default();
        if let Some(state) = &state {
            let all: BTreeSet<RestaurantId> = listed.union(&recorded).cloned().collect();
            self.handle.board.known(&all, state);
            self.refresh_cache(client, state).await;
        }
        self.schedule(sweep, &listed, &recorded, state.as_ref());
        if let Some(state) = state {
            self.cache.keep_loaded(state, self.backend.as_ref()).await;
        }
        self.handle.metrics.resynced();
        self.gauges();
    }

    /// The cache replaced from the server's lists: drift on the server is seen by the batches
    /// that follow. A new configuration's rollout plans against it as it is.
    async fn refresh_cache(&mut self, client: &Client, state: &crate::state::State) {
        let name = &self.config.settings.account.name;
        let keep = std::mem::take(&mut self.keep_cache) && self.cache.loaded();
        if keep {
            tracing::debug!(target: LOG_TARGET, "controller: rollout of a new configuration against the cache (no re-read)");
        } else if let Err(e) = self.cache.resync(self.kinds, client, name, state).await {
            tracing::warn!(target: LOG_TARGET, "controller: full resync: reading the server: {e}");
            self.cache.invalidate();
        }
    }

    /// Queues the restaurants of a full reconcile, each at the time `sweep` gives it.
    fn schedule(
        &mut self,
        sweep: Sweep,
        listed: &BTreeSet<RestaurantId>,
        recorded: &BTreeSet<RestaurantId>,
        state: Option<&crate::state::State>,
    ) {
        let sweep = if self.opts.once { Sweep::Now } else { sweep };
        let (now, utc, every) = (Instant::now(), chrono::Utc::now(), self.opts.resync_every);
        let both: Vec<&RestaurantId> = listed.intersection(recorded).collect();
        let n = both.len();
        let mut waiting = 0usize;
        for (i, id) in both.into_iter().enumerate() {
            let offset = match sweep {
                Sweep::Now => Duration::ZERO,
                Sweep::Spread => queue::spread(i, n, every, rand::random::<f64>()),
                Sweep::Resume => {
                    let r = state.and_then(|s| s.restaurants.get(id));
                    let age = r.and_then(|r| fresh::age(r, &self.config.revision.digest, utc));
                    queue::resume_after(age, every, rand::random::<f64>())
                }
            };
            waiting += usize::from(!offset.is_zero());
            self.queue
                .push_resync(id.clone(), now + queue::on_step(offset));
        }
        if sweep == Sweep::Resume {
            tracing::info!(target: LOG_TARGET, "controller: sweep resumed: {waiting} of {n} restaurants were checked within {every:?} and keep their turn; {} are read first", n - waiting);
        }
        for id in listed.symmetric_difference(recorded) {
            // A row state does not know: new (its notification missed), its clock starts.
            if listed.contains(id) {
                self.slo.seen(id, now);
            }
            self.queue.push_resync(id.clone(), now);
        }
    }

    /// Runs batches while items are due (`--once`: until every item had its try).
    /// A poll: the feed, then a rollout's gates.
    async fn on_poll(&mut self, client: &Client, guard: Option<&mut feed::Guard>) {
        self.feed_poll(guard).await;
        self.advance_rollout(client).await;
    }

    /// A rollout's next wave opens as soon as the one before is done.
    async fn work(&mut self, client: &Client, lease: &Lease) {
        loop {
            while !self.handle.stopping() && self.batch(client, lease).await {}
            if self.handle.stopping() || !self.advance_rollout(client).await {
                break;
            }
        }
    }

    /// The rollout in progress goes on when its gates allow (`ops::rollout::controller`):
    /// the restaurants of the wave it opens are queued. Whether it opened one.
    async fn advance_rollout(&mut self, client: &Client) -> bool {
        if self.config.settings.rollout.is_none() && !self.rollout_shown {
            return false;
        }
        // The state the last batch kept, unless someone committed since: no whole read of
        // state at every poll.
        let state = match self.cache.state_to_read(self.backend.as_ref()).await {
            Ok(Some(s)) => s,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(target: LOG_TARGET, "controller: rollout: reading state: {e}");
                return false;
            }
        };
        let settings = &self.config.settings;
        let revision = &self.config.revision;
        let going = crate::ops::rollout::controller::going_on(settings, &state, revision);
        if !going && !self.rollout_shown {
            return false;
        }
        let keeper = crate::ops::rollout::Keeper::new(self.backend.clone(), settings);
        let advanced = if going {
            let mut verifier = crate::ops::rollout::controller::Verifier {
                inventory: self.inventory,
                backend: self.backend.clone(),
                kinds: self.kinds.clone(),
                verified: self.rollout_verified.take(),
            };
            let advanced = crate::ops::rollout::controller::advance(
                settings,
                &keeper,
                &state,
                client,
                revision,
                Some(&mut verifier),
            )
            .await;
            self.rollout_verified = verifier.verified;
            advanced
        } else {
            Ok(Default::default())
        };
        // The board shows it while it goes on, and once more as it stops (halted, finished).
        let shown = crate::ops::rollout::status_of(settings, &state)
            .ok()
            .filter(|s| s.phase != crate::ops::rollout::Phase::None);
        let reached = shown.as_ref().map_or(0, |s| {
            s.waves.iter().map(|w| w.restaurants as u64).sum::<u64>()
        });
        self.handle.board.set_rollout(shown);
        self.rollout_shown = going;
        match advanced {
            Ok(a) => {
                for event in a.events.notifications(&revision.short(), reached) {
                    self.notifier.notify(event);
                }
                let now = Instant::now();
                for id in &a.opened {
                    self.queue.push(id.clone(), now);
                }
                !a.opened.is_empty()
            }
            Err(e) => {
                tracing::warn!(target: LOG_TARGET, "controller: rollout: {e}");
                false
            }
        }
    }

    /// Reconciles one batch of the items due, fresh ones first; `false` when none was due (or
    /// this process may no longer lead).
    async fn batch(&mut self, client: &Client, lease: &Lease) -> bool {
        if lease.expired() {
            return false;
        }
        let due = self
            .queue
            .take_due(Instant::now(), self.opts.batch_size.max(1));
        if due.is_empty() {
            return false;
        }
        self.gauges();
        // A retry (handed out alone) gets one attempt per request: the queue's backoff is its
        // next try, not the client's while everyone else waits behind this batch.
        let once;
        let client = if due.iter().any(|id| self.queue.is_retry(id)) {
            let mut c = client.clone();
            c.cap_attempts(1);
            once = c;
            &once
        } else {
            client
        };
        let ids: BTreeSet<RestaurantId> = due.iter().cloned().collect();
        // The log's entries read so far for these restaurants: this reconcile reads their rows
        // after them, so it answers them.
        let read: Vec<(RestaurantId, Vec<i64>)> = due
            .iter()
            .filter_map(|id| self.log_read.taken.remove(id).map(|s| (id.clone(), s)))
            .collect();
        let started = Instant::now();
        let ctx = Ctx {
            settings: &self.config.settings,
            revision: &self.config.revision,
            backend: self.backend.clone(),
            inventory: self.inventory,
            client,
            kinds: self.kinds,
            allow_destroy: self.opts.allow_destroy,
            allow_changes: self.opts.allow_changes,
            recent: self.guard_window.recent(Instant::now()),
            ignore_windows: self.opts.ignore_windows,
            stable: &self.stable,
        };
        let batch = reconcile::reconcile(&ctx, &ids, &mut self.cache).await;
        self.guarded(&batch.guard);
        self.handle
            .metrics
            .reconcile_seconds
            .observe(started.elapsed().as_secs_f64());
        // Most batches (a sweep's) answer no log entry: nothing to sort out.
        let answered = (!read.is_empty()).then(|| Self::answered(&batch));
        self.record(&due, batch);
        if let Some(answered) = answered {
            self.acknowledge(read, &answered).await;
        }
        if self.marks.due(Instant::now()) {
            self.checkpoint().await;
        }
        if due.len() >= 50 {
            release_free_memory();
        }
        true
    }

    /// Stamps in state the checks gathered since the last checkpoint (see [`fresh`]).
    async fn checkpoint(&mut self) {
        let ids = self.marks.take();
        if ids.is_empty() {
            return;
        }
        let place = fresh::Place {
            settings: &self.config.settings,
            backend: self.backend.clone(),
            inventory: self.inventory,
            kinds: self.kinds,
        };
        match fresh::commit(&place, &mut self.cache, &ids).await {
            Ok(n) => {
                tracing::debug!(target: LOG_TARGET, "controller: {n} restaurants stamped checked")
            }
            // Not stamped: those restaurants are read sooner at the next start, nothing worse.
            Err(e) => {
                tracing::warn!(target: LOG_TARGET, "controller: stamping {} checks: {e}", ids.len())
            }
        }
    }

    /// What the next leadership of this process may go on with.
    fn hand_over(&mut self) -> Carried {
        let serial = self
            .commits_clean
            .then(|| self.cache.kept_serial())
            .flatten();
        tracing::debug!(target: LOG_TARGET, "controller: leadership ended: every commit went through: {}; state kept at serial {:?}", self.commits_clean, self.cache.kept_serial().map(|(_, n)| n));
        Carried {
            cache: std::mem::take(&mut self.cache),
            queue: std::mem::replace(
                &mut self.queue,
                WorkQueue::new(self.opts.backoff_base, self.opts.backoff_max),
            ),
            serial,
            next_sweep: self.next_sweep,
        }
    }

    /// The restaurants whose change a batch answered: reconciled, suspended, parked, or held
    /// for good (a retry, a stop or a change window leaves the change to answer later).
    fn answered(batch: &reconcile::Batch) -> std::collections::HashSet<RestaurantId> {
        batch
            .verdicts
            .iter()
            .filter(|(id, v)| match v {
                Verdict::Done { .. } | Verdict::Suspended | Verdict::Fatal(_) => true,
                Verdict::Held(_) => batch.said.get(id).and_then(|s| s.hold).is_none(),
                Verdict::Transient(_) | Verdict::NotStarted => false,
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn record(&mut self, due: &[RestaurantId], batch: reconcile::Batch) {
        let now = Instant::now();
        for (id, v) in &batch.verdicts {
            self.summary.add(v);
            let name = batch.said.get(id).map(|s| s.name.as_str());
            self.handle.board.record(id, name, v);
            self.handle.metrics.reconciled(v.label());
            let said = batch.said.get(id);
            self.slo.record(id, v, said, now, &self.handle.metrics);
            let hold = batch.said.get(id).and_then(|s| s.hold);
            match v {
                Verdict::Held(_) if hold.is_some() => {
                    let at = self.wake_at(hold);
                    self.queue.later(id, at);
                }
                Verdict::Done { .. } | Verdict::Held(_) | Verdict::Suspended => {
                    // A background reconcile read it from the server: its check is stamped.
                    let read = self.queue.lane_in_flight(id) == Some(Lane::Background);
                    if read && matches!(v, Verdict::Done { .. }) {
                        self.marks.add(id.clone(), now);
                    }
                    self.queue.succeeded(id)
                }
                Verdict::Transient(_) => {
                    let _ = self.queue.transient(id, now);
                }
                Verdict::Fatal(e) => {
                    self.queue.fatal(id, e.clone());
                    if self.queue.parked().contains_key(id) {
                        self.notifier.notify(Event::RestaurantParked {
                            restaurant: id.clone(),
                            name: name.map(str::to_string),
                            reason: e.clone(),
                        });
                    }
                }
                Verdict::NotStarted => self.queue.not_started(id, now),
            }
        }
        // Whatever is still in flight is done with.
        for id in due {
            self.queue.succeeded(id);
        }
        // Readiness follows the server, never one tenant: a restaurant whose calls the server
        // answers with errors backs off in the queue; a server that does not answer, or fails
        // the account's own calls, is down.
        self.slo.publish(&self.handle.metrics);
        if let Some(up) = batch.server_up() {
            self.handle.status.server_ok.store(up, Ordering::Relaxed);
        }
        self.gauges();
    }

    /// Counts what a batch applied for the window; a refusal is logged, counted and
    /// notified (once while it stays the same).
    fn guarded(&mut self, note: &reconcile::GuardNote) {
        self.guard_window.record(Instant::now(), note.applied);
        let Some(refused) = &note.refused else {
            return;
        };
        self.handle.metrics.guardrail_refusals.inc();
        let why = refused.to_string();
        tracing::error!(target: LOG_TARGET, "controller: batch held: {why}");
        if self.last_refusal.as_deref() != Some(why.as_str()) {
            self.notifier.notify(Event::GuardrailRefused {
                breaches: refused.breaches.clone(),
                needed: refused.needed,
            });
            self.last_refusal = Some(why);
        }
    }

    /// The change feed's state after a check or a read: a new problem is notified.
    fn feed_state(&mut self, down: Option<String>) {
        if down.is_some() && down != self.feed_down {
            if let Some(reason) = &down {
                self.notifier.notify(Event::FeedDown {
                    reason: reason.clone(),
                });
            }
        }
        self.feed_down = down;
    }

    /// When a held restaurant is looked at again: when its window opens (the run's clock,
    /// `SIPFORM_NOW` in tests), at least a second from now; an agent in a call after
    /// `windows.live_call_check`; a hold with no known end (no window opens in the next days)
    /// after [`HELD_RECHECK`].
    fn wake_at(
        &self,
        hold: Option<(HoldReason, Option<chrono::DateTime<chrono::Utc>>)>,
    ) -> Instant {
        let settings = &self.config.settings;
        let wait = match hold {
            Some((HoldReason::LiveCalls, _)) => settings.windows().live_call_check,
            Some((_, Some(until))) => (until - settings.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO),
            _ => HELD_RECHECK,
        };
        Instant::now() + wait.max(Duration::from_secs(1))
    }

    fn gauges(&self) {
        let queue = crate::ops::status::Queue {
            depth: self.queue.depth(),
            due: self.queue.due(Instant::now()),
            parked: self.queue.parked().len(),
        };
        self.handle.board.queue(queue, self.queue.parked());
        self.handle
            .metrics
            .queue_depth
            .set(self.queue.depth() as i64);
        self.handle
            .metrics
            .parked
            .set(self.queue.parked().len() as i64);
    }
}

/// Hands memory freed after a big batch (a resync, a bulk insert: whole server listings) back
/// to the operating system, so an idle controller's RSS reflects what it holds, not its peak.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
