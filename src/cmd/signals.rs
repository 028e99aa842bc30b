//! SIGINT and SIGTERM during a command that writes.
//!
//! Before any write has started, a signal ends the run at once: there is nothing to finish.
//! Once armed (apply has begun writing), the first signal stops new work through the hook the
//! command gave and lets the requests in flight finish and be recorded, so state keeps naming
//! exactly what the server has; the command then prints its summary and exits 128 + the
//! signal's number. A second signal exits at once: state is still consistent, because every id
//! is recorded as it comes and the locks are released by the operating system.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

/// A signal that asks sipform to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// 128 + the signal's number: what a shell reports for a process the signal ended.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

type Stop = Box<dyn Fn(Signal) + Send>;

#[derive(Default)]
struct Inner {
    received: Option<Signal>,
    /// Set once writes may be under way: what the first signal calls.
    stop: Option<Stop>,
}

/// Listens for SIGINT and SIGTERM for the rest of the process.
#[derive(Clone, Default)]
pub struct Interrupts {
    inner: Arc<Mutex<Inner>>,
}

impl Interrupts {
    /// Installs the handlers (from then on the signals no longer kill the process by
    /// default). Must be called inside the runtime.
    pub fn listen() -> std::io::Result<Interrupts> {
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let me = Interrupts::default();
        let inner = me.inner.clone();
        tokio::spawn(async move {
            loop {
                let sig = tokio::select! {
                    Some(()) = int.recv() => Signal::Interrupt,
                    Some(()) = term.recv() => Signal::Terminate,
                    else => return,
                };
                on_signal(&inner, sig);
            }
        });
        Ok(me)
    }

    /// From now on, the first signal calls `stop` (which must return quickly) instead of
    /// exiting; a signal already received calls it at once.
    pub fn arm(&self, stop: impl Fn(Signal) + Send + 'static) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sig) = inner.received {
            stop(sig);
        }
        inner.stop = Some(Box::new(stop));
    }

    /// The first signal received since [`Interrupts::arm`], if any.
    pub fn received(&self) -> Option<Signal> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .received
    }
}

fn on_signal(inner: &Mutex<Inner>, sig: Signal) {
    let mut inner = inner.lock().unwrap_or_else(PoisonError::into_inner);
    if inner.received.is_some() {
        eprintln!(
            "\n{}: exiting now; state holds every id recorded so far, run `sipform apply` again to finish",
            sig.name()
        );
        std::process::exit(i32::from(sig.exit_code()));
    }
    let Some(stop) = &inner.stop else {
        eprintln!(
            "\nInterrupted by {} before anything was applied: nothing was changed.",
            sig.name()
        );
        std::process::exit(i32::from(sig.exit_code()));
    };
    eprintln!(
        "\nInterrupted by {}: no new work starts; the requests in flight finish and are recorded \
         (send it again to exit at once).",
        sig.name()
    );
    stop(sig);
    inner.received = Some(sig);
}

/// How long the controller lets requests in flight finish after SIGTERM or SIGINT before it
/// abandons them: systemd's and compose's stop timeouts are 10 s, and a server that hangs must
/// not hold the exit through request timeouts and their retries. Abandoning is safe: every id
/// is recorded as it comes, and a create whose answer was lost is re-read at the next start,
/// as after a crash.
pub const STOP_GRACE: Duration = Duration::from_secs(1);

/// A stop asked for by a signal (the controller's): [`StopRequest::expired`] ends
/// [`STOP_GRACE`] after the first request.
#[derive(Clone, Default)]
pub struct StopRequest(Arc<tokio::sync::Notify>);

impl StopRequest {
    /// Starts the grace (once: later calls change nothing).
    pub fn request(&self) {
        self.0.notify_one();
    }

    /// Completes [`STOP_GRACE`] after [`StopRequest::request`].
    pub async fn expired(&self) {
        self.0.notified().await;
        tokio::time::sleep(STOP_GRACE).await;
    }
}
