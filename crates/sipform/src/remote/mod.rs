//! Talking to sip-agent-server: the transport (timeouts, retries, throttling), typed routes
//! whose segments are always encoded, and server objects typed where they enter. Which calls a
//! kind of object makes lives with the kind, in `resources`.

mod body;
pub mod bridges;
pub mod created;
pub mod digest;
mod error;
pub mod limiter;
mod list;
pub mod objects;
mod retry;
pub mod routes;
pub(crate) mod transport;

pub use created::Created;
pub use limiter::{Parallelism, Settled};
pub(crate) use objects::BadObject;
pub use objects::{Object, Secrets, ServerObject};
pub use routes::Route;
pub use transport::{Client, ClientError, Probe, Stats};

impl Client {
    /// Requests sent so far by this client and its clones.
    pub fn requests(&self) -> u64 {
        self.stats
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Retries made so far by this client and its clones.
    pub fn retries(&self) -> u64 {
        self.stats
            .retries
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The counters themselves, shared with every clone (the controller's metrics read them).
    pub fn counters(&self) -> std::sync::Arc<Stats> {
        self.stats.clone()
    }

    /// Most attempts one request gets.
    pub(crate) fn max_attempts(&self) -> u32 {
        self.retry.max_attempts
    }

    /// Lowers the attempts one request gets to `most` (the controller retries on its queue,
    /// not in the client).
    pub(crate) fn cap_attempts(&mut self, most: u32) {
        self.retry.max_attempts = self.retry.max_attempts.min(most);
    }
}
