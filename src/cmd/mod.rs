//! One file per command: argument struct + a `run` that calls the library.

use std::path::PathBuf;

pub mod apply;
pub mod demo;
pub mod doctor;
pub mod emulator;
pub mod import;
pub mod plan;
pub mod render;
pub mod schema;
pub mod state;
pub mod validate;

/// Options every command shares.
pub struct Global {
    pub project: PathBuf,
    pub verbose: u8,
}

/// Logs go to stderr under the `sip-provisioning` target; data goes to stdout.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIPFORM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .try_init();
}
