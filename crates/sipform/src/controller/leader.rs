//! Who is the active controller.
//!
//! On PostgreSQL: a session-level advisory lock, held on a dedicated connection for as long as
//! this process leads. PostgreSQL releases it when that session ends, so a leader killed with
//! `kill -9` frees it as soon as the kernel closes its socket, and a standby retrying every few
//! seconds takes over. Without PostgreSQL (SQLite or file state) there is no standby: the lock
//! is a file lock beside state, and a second controller refuses to start, naming the holder.
//!
//! Fencing: a [`Lease`] confirms the lock every [`LEASE_CHECK`] on the lock's own connection,
//! apart from the work. A check that fails, or no confirmation for [`LEASE`], ends leadership
//! at once: the client's writes are halted (a batch in progress sends nothing more) and state
//! commits are refused ([`Fenced`]). The two never write at once: a leader also holds a second
//! advisory lock, its *presence*, on a connection of its own, which it lets go only once it has
//! stopped (a clean stop, or a lost lock after its last batch ended); a process that dies loses
//! both with its sockets. A new leader that finds the presence free writes at once (after a
//! restart or a `kill -9` nothing is waited for); one that finds it held (the old leader is alive
//! but lost its lock session) sends its first write when the presence is let go, at most
//! [`LEASE`] after taking the lock, by when the deposed leader has fenced itself.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use tokio::sync::{oneshot, Notify};

use crate::remote::Client;
use crate::state::{
    async_trait, Change, FileState, LockGuard, LockInfo, State, StateBackend, StateError,
};
use crate::LOG_TARGET;

/// How often a leader confirms its lock.
pub(crate) const LEASE_CHECK: Duration = Duration::from_secs(1);

/// How long a leader goes on without a confirmation: the bound within which a deposed leader
/// stops sending (a failed check stops it sooner), and how long a new leader waits before its
/// first write.
pub(crate) const LEASE: Duration = Duration::from_secs(3);

/// The `application_name` of the leader lock's session, so an operator (or a test) finds it in
/// `pg_stat_activity`.
pub(crate) const LOCK_APPLICATION_NAME: &str = "sipform-controller-leader";

/// The `application_name` of the session holding the leader's presence.
pub(crate) const PRESENCE_APPLICATION_NAME: &str = "sipform-controller-presence";

/// How often a new leader looks whether its predecessor has let its presence go.
const PRESENCE_POLL: Duration = Duration::from_millis(100);

/// Where the leader lock lives.
#[derive(Clone)]
pub enum LeaderLock {
    /// An advisory lock with this key, in this database.
    Postgres {
        options: Box<PgConnectOptions>,
        key: i64,
        place: String,
    },
    /// A file lock at this path (`<path>.lock`).
    File(PathBuf),
}

/// Held while this process leads; dropping it lets go.
pub enum Leadership {
    Postgres(PgLeadership),
    File(#[allow(dead_code)] Box<dyn LockGuard>),
}

/// The two sessions of a PostgreSQL leader: the lock, and the presence (see the module's doc).
pub struct PgLeadership {
    lock: PgConnection,
    presence: PgConnection,
    presence_key: i64,
    /// Whether this process holds the presence yet (false while a predecessor still does).
    presence_held: bool,
}

/// The presence's key beside the leader lock's `key`.
fn presence_key(key: i64) -> i64 {
    advisory_key(&format!("presence|{key}"))
}

/// Whether `conn`'s session answers.
async fn ping(conn: &mut PgConnection) -> bool {
    sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(conn)
        .await
        .is_ok()
}

/// Takes the presence if no other session holds it.
async fn try_presence(conn: &mut PgConnection, key: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(conn)
        .await
}

/// The advisory lock key for `scope` (the project and table): two projects on one database
/// each have their own leader.
pub(crate) fn advisory_key(scope: &str) -> i64 {
    let digest = Sha256::digest(format!("sipform-controller:{scope}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

impl LeaderLock {
    /// Tries once. `Ok(None)`: another controller leads (PostgreSQL: this one stands by).
    /// A file lock held elsewhere is an error naming the holder: no standby without a shared
    /// database.
    pub async fn try_acquire(&self) -> Result<Option<Leadership>, StateError> {
        match self {
            LeaderLock::Postgres {
                options,
                key,
                place,
            } => {
                let db_err = |e: sqlx::Error| StateError::Database {
                    place: place.clone(),
                    message: format!("controller leader lock: {e}"),
                    transient: true,
                };
                let options = options
                    .as_ref()
                    .clone()
                    .application_name(LOCK_APPLICATION_NAME);
                let mut conn = PgConnection::connect_with(&options).await.map_err(db_err)?;
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(key)
                    .fetch_one(&mut conn)
                    .await
                    .map_err(db_err)?;
                if !got {
                    let _ = conn.close().await;
                    return Ok(None);
                }
                let presence_options = options.application_name(PRESENCE_APPLICATION_NAME);
                let mut presence = PgConnection::connect_with(&presence_options)
                    .await
                    .map_err(db_err)?;
                let presence_key = presence_key(*key);
                let presence_held = try_presence(&mut presence, presence_key)
                    .await
                    .map_err(db_err)?;
                Ok(Some(Leadership::Postgres(PgLeadership {
                    lock: conn,
                    presence,
                    presence_key,
                    presence_held,
                })))
            }
            LeaderLock::File(path) => {
                let who = LockInfo::for_this_process("controller");
                let guard = FileState::new(path.clone())
                    .lock(&who, Duration::ZERO)
                    .await
                    .map_err(|e| match e {
                        StateError::Locked { holder, .. } => StateError::Backend {
                            place: path.display().to_string(),
                            message: format!(
                                "another controller is running ({holder}); only one controller \
                                 may run without PostgreSQL. Stop it first"
                            ),
                        },
                        other => other,
                    })?;
                Ok(Some(Leadership::File(guard)))
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, LeaderLock::Postgres { .. })
    }
}

impl Leadership {
    /// Whether this process still leads: the lock's session is alive. A lost session lost
    /// the lock, and another controller may lead already.
    /// The presence's session counts too: a leader that lost it could no longer tell a
    /// successor to wait.
    pub async fn check(&mut self) -> bool {
        match self {
            Leadership::Postgres(pg) => ping(&mut pg.lock).await && ping(&mut pg.presence).await,
            Leadership::File(_) => true,
        }
    }

    /// Whether this process holds the presence: no predecessor is still running. Tries to
    /// take it when not yet held; `false` also when the session fails (the lease's check
    /// then finds it lost).
    async fn take_presence(&mut self) -> bool {
        match self {
            Leadership::Postgres(pg) => {
                if !pg.presence_held {
                    pg.presence_held = try_presence(&mut pg.presence, pg.presence_key)
                        .await
                        .unwrap_or(false);
                }
                pg.presence_held
            }
            Leadership::File(_) => true,
        }
    }

    /// Whether a predecessor may still be running: it held the presence when the lock was
    /// taken.
    pub fn predecessor_present(&self) -> bool {
        match self {
            Leadership::Postgres(pg) => !pg.presence_held,
            Leadership::File(_) => false,
        }
    }

    /// Lets go at once (on PostgreSQL, ends the sessions that hold the lock and the presence).
    pub async fn release(self) {
        if let Leadership::Postgres(pg) = self {
            let _ = pg.lock.close().await;
            let _ = pg.presence.close().await;
        }
    }
}

/// Leadership confirmed in the background while this process works (see the module's doc).
pub(crate) struct Lease {
    state: Arc<LeaseState>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Leadership>,
}

/// What the lease's task and the work share.
#[derive(Debug)]
struct LeaseState {
    lost: AtomicBool,
    confirmed: Mutex<Instant>,
    notify: Notify,
    /// No write before this: a predecessor still running has let go, or its lease has run
    /// out, by then. Moved earlier (and `opened` notified) when the predecessor lets go.
    writes_from: Mutex<Instant>,
    opened: Notify,
    /// A commit was refused or failed during this leadership: the copy of state kept in
    /// memory may hold what is not stored, so its serial proves nothing.
    commit_failed: AtomicBool,
}

impl LeaseState {
    /// Lost, or not confirmed for [`LEASE`].
    fn expired(&self) -> bool {
        let confirmed = *self.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        self.lost.load(Ordering::SeqCst) || confirmed.elapsed() > LEASE
    }

    fn writes_from(&self) -> Instant {
        *self.writes_from.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes may start now.
    fn open(&self) {
        let mut at = self.writes_from.lock().unwrap_or_else(|e| e.into_inner());
        *at = (*at).min(Instant::now());
        drop(at);
        self.opened.notify_waiters();
    }
}

impl Lease {
    /// Starts confirming `leadership`; on loss, `client`'s writes are halted.
    pub fn start(leadership: Leadership, client: Client) -> Lease {
        let now = Instant::now();
        // A predecessor still present may still be writing: wait for it to let go, at most
        // until its lease has run out. None (a clean stop, a `kill -9`, a file lock): at once.
        let writes_from = if leadership.predecessor_present() {
            tracing::info!(target: LOG_TARGET, "controller: a previous leader is still running (it holds its presence): first write when it lets go, at most {} s from now", LEASE.as_secs());
            now + LEASE
        } else {
            tracing::info!(target: LOG_TARGET, "controller: no previous leader is running: writing at once");
            now
        };
        let state = Arc::new(LeaseState {
            lost: AtomicBool::new(false),
            confirmed: Mutex::new(now),
            notify: Notify::new(),
            writes_from: Mutex::new(writes_from),
            opened: Notify::new(),
            commit_failed: AtomicBool::new(false),
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(confirm(leadership, client, state.clone(), stopped));
        Lease {
            state,
            stop: Some(stop),
            task,
        }
    }

    /// Whether this process may no longer act as the leader.
    pub fn expired(&self) -> bool {
        self.state.expired()
    }

    /// Resolves once leadership is lost.
    pub async fn lost(&self) {
        loop {
            let notified = self.state.notify.notified();
            if self.state.lost.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// When this leader may send its first write (moves earlier when a predecessor lets go).
    pub(crate) fn writes_from(&self) -> Instant {
        self.state.writes_from()
    }

    /// Resolves once this leader may write.
    pub(crate) async fn writable(&self) {
        loop {
            let opened = self.state.opened.notified();
            let at = self.state.writes_from();
            if at <= Instant::now() {
                return;
            }
            tokio::select! {
                _ = opened => {}
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
            }
        }
    }

    /// Resolves once the first write is allowed before `at` (a predecessor let go early):
    /// never when it does not.
    pub(crate) async fn opened_before(&self, at: Instant) {
        loop {
            let opened = self.state.opened.notified();
            if self.state.writes_from() < at {
                return;
            }
            opened.await;
        }
    }

    /// Whether every state commit of this leadership went through: then the state the last
    /// batch kept is the one stored, and its serial says whether anyone wrote after it.
    pub(crate) fn commits_clean(&self) -> bool {
        !self.state.commit_failed.load(Ordering::SeqCst)
    }

    /// `backend`, refusing commits once this lease has expired.
    pub fn fence(&self, backend: Arc<dyn StateBackend>) -> Arc<dyn StateBackend> {
        Arc::new(Fenced {
            inner: backend,
            lease: self.state.clone(),
        })
    }

    /// Stops confirming and lets the lock go.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Ok(leadership) = self.task.await {
            leadership.release().await;
        }
    }
}

/// The lease's task: confirms every [`LEASE_CHECK`] (each check bounded, so a connection that
/// hangs counts as lost), until told to stop or the lock is lost. Meanwhile, while a
/// predecessor holds the presence, looks every [`PRESENCE_POLL`] whether it has let go.
async fn confirm(
    mut leadership: Leadership,
    client: Client,
    state: Arc<LeaseState>,
    mut stopped: oneshot::Receiver<()>,
) -> Leadership {
    let started = Instant::now();
    let mut next_check = tokio::time::Instant::now();
    let mut waiting = leadership.predecessor_present();
    let mut said = false;
    loop {
        // Past the bound the predecessor no longer delays anything: looked at with the checks.
        let bounded = started.elapsed() < LEASE;
        if waiting && !bounded && !said {
            said = true;
            tracing::warn!(target: LOG_TARGET, "controller: the previous leader still holds its presence after {} s; its lease has run out: writing from now", LEASE.as_secs());
        }
        let wake = if waiting && bounded {
            next_check.min(tokio::time::Instant::now() + PRESENCE_POLL)
        } else {
            next_check
        };
        tokio::select! {
            _ = &mut stopped => return leadership,
            _ = tokio::time::sleep_until(wake) => {}
        }
        if waiting {
            let bound = LEASE.saturating_sub(LEASE_CHECK);
            let took = tokio::time::timeout(bound, leadership.take_presence())
                .await
                .unwrap_or(false);
            if took {
                waiting = false;
                if !said {
                    tracing::info!(target: LOG_TARGET, "controller: the previous leader has let go after {:.1?}: writing from now", started.elapsed());
                }
                state.open();
            }
        }
        if tokio::time::Instant::now() < next_check {
            continue;
        }
        next_check += LEASE_CHECK;
        let bound = LEASE.saturating_sub(LEASE_CHECK);
        let ok = tokio::time::timeout(bound, leadership.check())
            .await
            .unwrap_or(false);
        if ok && !state.expired() {
            *state.confirmed.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            continue;
        }
        client.halt_writes("this controller lost the leader lock");
        state.lost.store(true, Ordering::SeqCst);
        state.notify.notify_waiters();
        return leadership;
    }
}

/// A state backend that refuses commits once the leader's lease has expired: a deposed leader
/// never records over what the new one does.
struct Fenced {
    inner: Arc<dyn StateBackend>,
    lease: Arc<LeaseState>,
}

#[async_trait]
impl StateBackend for Fenced {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn lock(
        &self,
        who: &LockInfo,
        timeout: Duration,
    ) -> Result<Box<dyn LockGuard>, StateError> {
        self.inner.lock(who, timeout).await
    }

    async fn load(&self) -> Result<Option<State>, StateError> {
        self.inner.load().await
    }

    async fn stored_serial(&self) -> Result<Option<(uuid::Uuid, u64)>, StateError> {
        self.inner.stored_serial().await
    }

    async fn commit(&self, state: &State, changes: &[Change]) -> Result<(), StateError> {
        if self.lease.expired() {
            self.lease.commit_failed.store(true, Ordering::SeqCst);
            return Err(StateError::Backend {
                place: self.inner.describe(),
                message: "not committed: this controller is no longer the leader".into(),
            });
        }
        let done = self.inner.commit(state, changes).await;
        if done.is_err() {
            self.lease.commit_failed.store(true, Ordering::SeqCst);
        }
        done
    }

    async fn settle(&self, state: &State) -> Result<(), StateError> {
        self.inner.settle(state).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_scoped() {
        assert_eq!(advisory_key("a"), advisory_key("a"));
        assert_ne!(advisory_key("a"), advisory_key("b"));
    }
}
