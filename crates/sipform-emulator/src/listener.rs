//! A listener slow or numerous clients cannot take down (issue 25, item 10): at most
//! `max_connections` connections at once (beyond, new ones wait in the kernel's backlog and
//! hold no file descriptor of ours), a request head that must arrive whole within
//! `header_timeout` (counted from when the connection is ready for a request, so a keep-alive
//! connection idle that long is closed too), and an accept that fails for lack of file
//! descriptors (EMFILE, ENFILE) retried after a pause, never fatal. Used by the emulator and
//! by the controller's listener (`src/cmd/listener.rs`).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The connection cap and the timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// The longest a request head may take to arrive, and a keep-alive connection may idle.
    pub header_timeout: Duration,
}

impl Default for Limits {
    /// 256 connections, 10 s: far beyond what probes, Prometheus and a webhook need, far below
    /// a process's usual 1,024 file descriptors.
    fn default() -> Self {
        Limits {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// The defaults, overridden by `{prefix}_MAX_CONNECTIONS` and `{prefix}_HEADER_TIMEOUT_MS`
    /// when set to a positive whole number (anything else is ignored, with the default kept).
    pub fn from_env(prefix: &str) -> Limits {
        let num = |name: &str| {
            std::env::var(format!("{prefix}_{name}"))
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|n| *n > 0)
        };
        let d = Limits::default();
        Limits {
            max_connections: num("MAX_CONNECTIONS")
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(d.max_connections),
            header_timeout: num("HEADER_TIMEOUT_MS")
                .map(Duration::from_millis)
                .unwrap_or(d.header_timeout),
        }
    }

    /// The gate the accept loop takes a slot from.
    pub fn gate(&self) -> Arc<Semaphore> {
        Arc::new(Semaphore::new(self.max_connections.max(1)))
    }

    /// An HTTP/1 connection builder with the header timeout.
    pub fn http1(&self) -> hyper::server::conn::http1::Builder {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout);
        b
    }
}

/// Waits for a free slot, then for a connection. An accept error (out of file descriptors, a
/// connection reset before it was accepted) is logged and retried after a pause.
pub async fn accept(
    listener: &TcpListener,
    gate: &Arc<Semaphore>,
    log_target: &str,
) -> (TcpStream, OwnedSemaphorePermit) {
    // The gate is never closed, so acquiring only waits.
    let permit = loop {
        if let Ok(p) = gate.clone().acquire_owned().await {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                return (stream, permit);
            }
            Err(e) => {
                tracing::warn!(target: crate::LOG_TARGET, listener = log_target, "accept failed (retried): {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves `router` on `listener` under `limits` until the task is aborted.
pub async fn serve_router(listener: TcpListener, router: axum::Router, limits: Limits) {
    let gate = limits.gate();
    loop {
        let (stream, permit) = accept(&listener, &gate, "http").await;
        let svc = TowerToHyperService::new(router.clone());
        let builder = limits.http1();
        tokio::spawn(async move {
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_from_the_environment() {
        let d = Limits::from_env("SIPFORM_TEST_UNSET_PREFIX");
        assert_eq!(d, Limits::default());
    }
}
