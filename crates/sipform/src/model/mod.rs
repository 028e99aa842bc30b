//! The typed model every stage shares: the specs read from files, the remote ids, and secrets
//! that cannot be printed.

pub mod clock;
pub mod ids;
pub mod interned;
pub mod resource;
pub mod revision;
pub mod rollout;
pub mod secret;
pub mod spec;
