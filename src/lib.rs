//! sipform: sip-agent-server's phone agents as code.
//!
//! The pipeline, one module per stage, data flowing one way:
//! `load → render → validate → refresh → diff → plan → apply → state`.
//! The binary (`src/main.rs`) is a thin shell over these modules.

pub mod ids;
pub mod secret;
pub mod spec;

pub mod diagnostics;
pub mod expr;
pub mod inventory;
pub mod load;
pub mod render;
pub mod schema;
pub mod validate;
pub mod yaml;

pub mod client;
pub mod settings;

pub mod apply;
pub mod diff;
pub mod pipeline;
pub mod plan;
pub mod refresh;
pub mod state;

pub mod db;
pub mod emulator;

/// The `tracing` target of every log line: the platform's log filters look for this word.
pub const LOG_TARGET: &str = "sip-provisioning";
