//! The controller's HTTP listener under limits (issue 25, item 10): at most
//! `SIPFORM_CONTROLLER_HTTP_MAX_CONNECTIONS` connections at once (default 256; beyond, new ones
//! wait in the kernel's backlog), a request head that must arrive within
//! `SIPFORM_CONTROLLER_HTTP_HEADER_TIMEOUT_MS` (default 10 s, also the keep-alive idle limit),
//! and accept errors (out of file descriptors) retried, never fatal. The loop itself is the
//! emulator's, shared (`sipform_emulator::listener`).

use sipform_emulator::listener::{serve_router, Limits};

/// The environment variables' prefix.
const ENV_PREFIX: &str = "SIPFORM_CONTROLLER_HTTP";

/// Serves `router` until the task is aborted.
pub async fn serve(listener: tokio::net::TcpListener, router: axum::Router) {
    serve_router(listener, router, Limits::from_env(ENV_PREFIX)).await;
}
