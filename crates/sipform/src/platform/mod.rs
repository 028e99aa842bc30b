//! The platform's side of a run: writing the remote ids back into its `restaurants` rows, in the
//! same step as state records them. Sits above state (it is a state commit hook), so neither
//! depends on the other's internals.

pub mod writeback;

pub use writeback::WriteBack;
