//! sipform: sip-agent-server's phone agents as code.
//!
//! The pipeline, one module per stage, data flowing one way:
//! `load → render → validate → refresh → diff → plan → apply → state`.
//! The binary (`src/main.rs` at the workspace root) is a thin shell over these modules.

pub mod model;

pub mod config;
pub mod front;
pub mod inventory;

pub mod db;
pub mod fsio;
pub mod remote;
pub mod resources;

pub mod apply;
pub mod diff;
pub mod pipeline;
pub mod plan;
pub mod platform;
pub mod refresh;
pub mod state;

/// The `tracing` target of every log line: the platform's log filters look for this word.
pub const LOG_TARGET: &str = "sip-provisioning";
