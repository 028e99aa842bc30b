//! One file per command: argument struct + a `run` that calls `sipform::ops` and prints what it
//! returns with `sipform::output`. Printing, prompts, exit codes and the progress bar live here.

use std::collections::BTreeSet;
use std::path::PathBuf;

use sipform::config::{self, Overrides, Settings};
use sipform::model::ids::RestaurantId;
use sipform::ops::plan::PlanOptions;
use sipform::ops::{OpsError, Workspace};

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
    #[arg(long, default_value_t = config::DEFAULT_PARALLELISM, value_parser = clap::value_parser!(usize))]
    pub parallelism: usize,
    /// Delete the agents and final customers of restaurants gone from the inventory.
    #[arg(long)]
    pub allow_destroy: bool,
    /// How long to wait for another run's state lock (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = config::parse_duration)]
    pub lock_timeout: std::time::Duration,
}

impl RunArgs {
    pub fn target_set(&self) -> BTreeSet<RestaurantId> {
        self.targets
            .iter()
            .map(|t| RestaurantId::new(t.as_str()))
            .collect()
    }

    /// The settings these flags set.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            parallelism: Some(self.parallelism),
            lock_timeout: Some(self.lock_timeout),
            ..Overrides::default()
        }
    }

    pub fn plan_options(&self) -> PlanOptions {
        PlanOptions {
            allow_destroy: self.allow_destroy,
            targets: self.target_set(),
        }
    }
}

/// Loads the project with the flags applied, and prints its warnings once.
pub async fn workspace(global: &Global, run: &RunArgs) -> anyhow::Result<Workspace> {
    let settings = Settings::load(&global.project, &run.overrides()).map_err(OpsError::from)?;
    let ws = Workspace::load(settings).await?;
    for w in ws.warnings() {
        eprintln!("warning: {w}");
    }
    Ok(ws)
}

/// Whether to color stdout.
pub fn color_stdout() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// The human plan format, colored when stdout is a terminal.
pub fn human() -> sipform::output::Format {
    sipform::output::Format::Human {
        color: color_stdout(),
    }
}
