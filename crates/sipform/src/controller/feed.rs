//! The change feed: what wakes the loop, and the check that the feed is still there.
//!
//! Waking: PostgreSQL's LISTEN on the channel the trigger notifies; on SQLite, `PRAGMA
//! data_version` on a kept read-only connection every 50 ms (it changes when another
//! connection commits; nothing of the file is read). The loop then reads the change log
//! ([`crate::inventory::changes`]). A wake-up carries no id: the log is the truth, so one lost
//! while disconnected loses nothing.
//!
//! Checking ([`Guard`]): the platform's schema changes can remove the triggers (SQLite's table
//! rebuild drops them; a PostgreSQL `DROP … CASCADE` too). The catalog is read at start, at
//! every poll on SQLite and every [`PG_CHECK_EVERY`] on PostgreSQL. A missing trigger is always
//! reported (an ERROR line naming table and trigger, `/readyz` 503 with the reason, the
//! `feed_installed` gauge at 0), reinstalled when the controller manages it
//! (`--manage-trigger`), and the gap is covered by a full reconcile queued at once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::Handle;
use crate::db::Pool;
use crate::LOG_TARGET;

pub(crate) use crate::inventory::changes::{ChangeLog, CHANNEL};

/// How often the PostgreSQL catalog is checked (at least every 30 s, as promised).
pub(crate) const PG_CHECK_EVERY: Duration = Duration::from_secs(10);

/// How often SQLite's `data_version` is read: a commit is noticed within about this long.
pub(crate) const DATA_VERSION_EVERY: Duration = Duration::from_millis(50);

/// Watches that the feed is installed, and puts it back when allowed.
pub(crate) struct Guard {
    log: ChangeLog,
    manage: bool,
    every: Duration,
    last: Option<Instant>,
    /// What was missing at the last check (`None`: installed, or not checked yet).
    missing: Option<Vec<String>>,
    log_present: bool,
}

impl Guard {
    /// `manage`: reinstall what is missing (`--manage-trigger`).
    pub fn new(log: ChangeLog, manage: bool, engine: crate::db::Engine) -> Guard {
        let every = match engine {
            crate::db::Engine::Sqlite => Duration::ZERO,
            crate::db::Engine::Postgres => PG_CHECK_EVERY,
        };
        Guard {
            log,
            manage,
            every,
            last: None,
            missing: None,
            log_present: true,
        }
    }

    pub fn log(&self) -> &ChangeLog {
        &self.log
    }

    /// What was missing at the last check (`None`: installed, or not checked yet).
    pub(crate) fn missing(&self) -> Option<&[String]> {
        self.missing.as_deref()
    }

    /// Whether the change log table exists (there is something to read).
    pub(crate) fn log_present(&self) -> bool {
        self.log_present
    }

    /// Reads the catalog when a check is due. `true`: changes may have been missed (the feed
    /// was found missing, or came back): queue a full reconcile.
    pub async fn check(&mut self, handle: &Handle) -> bool {
        if self.last.is_some_and(|t| t.elapsed() < self.every) {
            return false;
        }
        self.last = Some(Instant::now());
        let found = match self.log.catalog().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(target: LOG_TARGET, "controller: checking the change feed: {e}");
                return false;
            }
        };
        if found.installed() {
            let was_missing = self.missing.take().is_some();
            self.report(handle, None);
            if was_missing {
                tracing::info!(target: LOG_TARGET, "controller: the change feed is installed again; queueing every restaurant for the changes it missed");
            }
            return was_missing;
        }
        let news = self.missing.as_ref() != Some(&found.missing);
        let what = found.missing.join(", ");
        if news {
            tracing::error!(target: LOG_TARGET, "controller: the change feed is broken, missing: {what}; until it is back, changes are seen by the full resync only{}", if self.manage { "" } else { " (run `sipform controller install-trigger`, or run the controller with --manage-trigger)" });
        }
        self.log_present = !found.missing.iter().any(|m| m.starts_with("change log"));
        if self.manage {
            match self.log.install().await {
                Ok(_) => {
                    tracing::info!(target: LOG_TARGET, "controller: reinstalled the change feed ({what}); queueing every restaurant for the changes it missed");
                    self.missing = None;
                    self.log_present = true;
                    self.report(handle, None);
                    return true;
                }
                Err(e) => {
                    tracing::error!(target: LOG_TARGET, "controller: reinstalling the change feed: {e}")
                }
            }
        }
        self.report(handle, Some(format!("change feed missing: {what}")));
        self.missing = Some(found.missing);
        news
    }

    fn report(&self, handle: &Handle, problem: Option<String>) {
        let installed = problem.is_none();
        handle.status.set_feed_problem(problem);
        handle.metrics.feed_installed.set(i64::from(installed));
        handle.board.feed_installed(installed);
    }
}

/// Starts what wakes the loop for `pool`: LISTEN on PostgreSQL, `data_version` polling on
/// SQLite. `connected` tells `/readyz` whether it works. Abort the handle to stop it.
pub(crate) fn spawn_waker(
    pool: &Pool,
    sqlite_path: Option<PathBuf>,
    wake: Arc<Notify>,
    connected: Arc<AtomicBool>,
) -> Option<tokio::task::JoinHandle<()>> {
    match (pool, sqlite_path) {
        (Pool::Postgres(p), _) => Some(spawn_listener(p.clone(), wake, connected)),
        (Pool::Sqlite(_), Some(path)) => Some(spawn_data_version(path, wake, connected)),
        (Pool::Sqlite(_), None) => None,
    }
}

/// Reads `PRAGMA data_version` on its own read-only connection every [`DATA_VERSION_EVERY`]
/// and wakes `wake` when another connection committed. The pragma reads no table: the
/// platform's file is never loaded, and the connection never writes.
pub(crate) fn spawn_data_version(
    path: PathBuf,
    wake: Arc<Notify>,
    connected: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    use sqlx::Connection;
    tokio::spawn(async move {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .read_only(true)
            .busy_timeout(Duration::from_millis(20));
        let mut conn: Option<sqlx::SqliteConnection> = None;
        let mut last: Option<i64> = None;
        let mut tick = tokio::time::interval(DATA_VERSION_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if conn.is_none() {
                match sqlx::SqliteConnection::connect_with(&opts).await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        if connected.swap(false, Ordering::Relaxed) {
                            tracing::warn!(target: LOG_TARGET, "change feed: cannot open the database to watch it: {e}");
                        }
                        continue;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                .fetch_one(&mut *c)
                .await
            {
                Ok(v) => {
                    if last != Some(v) {
                        wake.notify_one();
                    }
                    last = Some(v);
                    connected.store(true, Ordering::Relaxed);
                }
                // Busy (a writer's lock) or a lost file: look at the log anyway, reconnect.
                Err(_) => {
                    wake.notify_one();
                    conn = None;
                }
            }
        }
    })
}

/// Listens on [`CHANNEL`] on its own connection and wakes `wake` at every notification (and
/// after every reconnect, since notifications sent meanwhile were lost). `connected` tells
/// `/readyz` whether the listener is up. Ends when `wake`'s owner drops the returned handle.
pub(crate) fn spawn_listener(
    pool: sqlx::PgPool,
    wake: std::sync::Arc<tokio::sync::Notify>,
    connected: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(e) => {
                    connected.store(false, Ordering::Relaxed);
                    tracing::warn!(target: crate::LOG_TARGET, "change feed: cannot connect to listen: {}", crate::model::secret::redact_url(&e.to_string()));
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    continue;
                }
            };
            if let Err(e) = listener.listen(CHANNEL).await {
                connected.store(false, Ordering::Relaxed);
                tracing::warn!(target: crate::LOG_TARGET, "change feed: LISTEN failed: {e}");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                continue;
            }
            connected.store(true, Ordering::Relaxed);
            wake.notify_one();
            loop {
                match listener.try_recv().await {
                    Ok(Some(_)) => wake.notify_one(),
                    // The connection was lost and is re-established at the next call: what was
                    // sent meanwhile is read from the log.
                    Ok(None) => wake.notify_one(),
                    Err(e) => {
                        connected.store(false, Ordering::Relaxed);
                        tracing::warn!(target: crate::LOG_TARGET, "change feed: listening failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                        break;
                    }
                }
            }
        }
    })
}
