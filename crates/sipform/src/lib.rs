//! sipform: sip-agent-server's phone agents as code.
//!
//! The pipeline, one module per stage, data flowing one way:
//! `load → render → validate → refresh → diff → plan → apply → state`.
//! [`config`] resolves the settings once; [`ops`] strings the stages together, one function per
//! command; [`output`] turns plans and reports into text. The binary (`src/main.rs` at the
//! workspace root) is a thin shell over `ops` and `output`.

pub mod escape;
pub mod model;

pub mod config;
pub mod contract;
pub mod crypto;
pub mod front;
pub mod inventory;
pub mod revision;

pub mod db;
pub mod fsio;
pub mod notify;
pub mod remote;
pub mod resources;

pub mod apply;
pub mod compare;
pub mod diff;
pub mod plan;
pub mod refresh;
pub mod state;

pub mod controller;
pub mod ops;
pub mod output;

/// The `tracing` target of every log line: the platform's log filters look for this word.
pub const LOG_TARGET: &str = "sip-provisioning";
