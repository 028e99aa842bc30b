//! The change feed: PostgreSQL's LISTEN on the channel the trigger notifies, waking the loop,
//! which then reads the change log ([`crate::inventory::changes`]). A notification carries no
//! id: the log is the truth, so a notification lost while disconnected loses nothing.

pub use crate::inventory::changes::{ChangeLog, CHANNEL};

/// Listens on [`CHANNEL`] on its own connection and wakes `wake` at every notification (and
/// after every reconnect, since notifications sent meanwhile were lost). `connected` tells
/// `/readyz` whether the listener is up. Ends when `wake`'s owner drops the returned handle.
pub fn spawn_listener(
    pool: sqlx::PgPool,
    wake: std::sync::Arc<tokio::sync::Notify>,
    connected: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    use std::sync::atomic::Ordering;
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
