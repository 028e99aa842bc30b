//! `--data FILE`: the snapshot writer.
//!
//! One background task writes snapshots; a write request waits until a snapshot holding its
//! change is on disk before answering. Writes arriving during a flush are coalesced into the
//! next one, so a burst of N writes costs far fewer than N snapshots.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{watch, Notify};

use super::App;
use crate::LOG_TARGET;

pub(crate) struct Persister {
    pub path: PathBuf,
    wake: Notify,
    done: watch::Sender<u64>,
}

impl Persister {
    pub fn new(path: PathBuf, version: u64) -> Self {
        Persister {
            path,
            wake: Notify::new(),
            done: watch::Sender::new(version),
        }
    }

    /// Returns once a snapshot at `version` or later is on disk.
    pub async fn flushed(&self, version: u64) {
        let mut rx = self.done.subscribe();
        self.wake.notify_one();
        let _ = rx.wait_for(|v| *v >= version).await;
    }

    /// Asks for a snapshot without waiting for it.
    pub fn nudge(&self) {
        self.wake.notify_one();
    }
}

/// The writer loop: runs until the emulator shuts down.
pub(crate) async fn writer(app: Arc<App>) {
    let Some(p) = app.persist.as_ref() else {
        return;
    };
    loop {
        p.wake.notified().await;
        let (version, text) = {
            let s = app.store.read().unwrap_or_else(|e| e.into_inner());
            if s.version <= *p.done.borrow() {
                continue;
            }
            (s.version, s.state_text())
        };
        let path = p.path.clone();
        match tokio::task::spawn_blocking(move || write_atomic(&path, text.as_bytes())).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(target: LOG_TARGET, path = %p.path.display(), "cannot write the emulator snapshot: {e}")
            }
            Err(e) => tracing::error!(target: LOG_TARGET, "the snapshot writer failed: {e}"),
        }
        p.done.send_replace(version);
    }
}

/// Temp file in the same folder (created 0600 by `tempfile`: the snapshot holds tokens), fsync,
/// rename, fsync of the folder: a crash leaves the old or the new snapshot, never half of one.
pub(crate) fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
