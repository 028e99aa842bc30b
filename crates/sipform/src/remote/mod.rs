//! Talking to sip-agent-server: the transport (timeouts, retries, throttling), typed routes
//! whose segments are always encoded, and server objects typed where they enter. Which calls a
//! kind of object makes lives with the kind, in `resources`.

pub mod created;
pub mod digest;
pub mod limiter;
pub mod objects;
pub mod routes;
pub mod transport;

pub use created::{BadAnswer, Created};
pub use limiter::{Limiter, Parallelism, Settled};
pub use objects::{BadObject, Object, Secrets, ServerObject};
pub use routes::Route;
pub use transport::{Client, ClientError, Probe, RetryPolicy, Stats, MAX_THROTTLED_ATTEMPTS};
