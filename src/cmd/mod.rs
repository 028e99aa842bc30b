//! One file per command: argument struct + a `run` that calls the library.

use std::path::PathBuf;

pub mod apply;
pub mod demo;
pub mod doctor;
pub mod emulator;
pub mod import;
pub mod plan;
pub mod progress;
pub mod render;
pub mod schema;
pub mod state;
pub mod validate;

/// Options every command shares.
pub struct Global {
    pub project: PathBuf,
    /// -v count: commands may print more detail.
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

/// Options shared by the commands that read the server.
#[derive(clap::Args, Clone)]
pub struct RunArgs {
    /// Limit to this restaurant id (repeatable).
    #[arg(long = "target", value_name = "RESTAURANT_ID")]
    pub targets: Vec<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = sipform::config::DEFAULT_PARALLELISM, value_parser = clap::value_parser!(usize))]
    pub parallelism: usize,
    /// Delete the agents and final customers of restaurants gone from the inventory.
    #[arg(long)]
    pub allow_destroy: bool,
    /// How long to wait for another run's state lock (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = sipform::pipeline::parse_duration)]
    pub lock_timeout: std::time::Duration,
}

impl RunArgs {
    pub fn target_set(&self) -> std::collections::BTreeSet<sipform::model::ids::RestaurantId> {
        self.targets
            .iter()
            .map(|t| sipform::model::ids::RestaurantId::new(t.as_str()))
            .collect()
    }
}

/// Loads the project and applies the flags that override settings.
pub async fn workspace(
    global: &Global,
    run: &RunArgs,
) -> anyhow::Result<sipform::pipeline::Workspace> {
    let mut ws = sipform::pipeline::Workspace::load(&global.project).await?;
    ws.settings.parallelism = run.parallelism.max(1);
    for w in ws.settings.warnings() {
        eprintln!("warning: {w}");
    }
    Ok(ws)
}

/// Whether to color stdout.
pub fn color_stdout() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}
