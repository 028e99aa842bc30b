//! One file per command: argument struct + a `run` that calls `sipform::ops` and prints what it
//! returns with `sipform::output`. Printing, prompts, exit codes and the progress bar live here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sipform::config::{self, Overrides, Settings};
use sipform::front::load::PROJECT_FILE;
use sipform::model::ids::RestaurantId;
use sipform::ops::plan::PlanOptions;
use sipform::ops::{OpsError, Workspace};

pub mod abort;
pub mod apply;
pub mod call;
pub mod completions;
pub mod controller;
pub mod controller_http;
pub mod controller_status;
pub mod dedupe;
pub mod demo;
pub mod doctor;
pub mod emulator;
pub mod import;
pub mod init;
pub mod listener;
pub mod man;
pub mod plan;
pub mod probe;
pub mod progress;
pub mod render;
pub mod rollout;
pub mod schema;
pub mod signals;
pub mod state;
pub mod status;
pub mod suspend;
pub mod test;
pub mod validate;

/// Options every command shares.
pub struct Global {
    pub project: PathBuf,
    /// -v count: commands may print more detail.
    pub verbose: u8,
}

/// Logs go to stderr under the `sip-provisioning` target; data goes to stdout.
pub fn init_logging(verbose: u8) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let from_env = tracing_subscriber::EnvFilter::try_from_env("SIPFORM_LOG").ok();
    // At the default verbosity nothing shows the retries: say once that the server is being
    // waited for, instead of seconds of silence before the final error.
    let notice = (verbose == 0 && from_env.is_none()).then(|| {
        RetryNotice::default().with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target(sipform::LOG_TARGET, tracing::Level::INFO),
        )
    });
    let filter =
        from_env.unwrap_or_else(|| tracing_subscriber::EnvFilter::new(log_filter(verbose)));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(color_stderr())
        .with_target(true)
        .with_filter(filter);
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(notice)
        .try_init();
}

/// Prints one line on the first retry of a request the server did not answer (a refused
/// connection, a timeout, a 5xx): the library logs each retry at info level, which the
/// default verbosity hides. Throttling (429) has its own warning in the library.
#[derive(Default)]
struct RetryNotice {
    told: std::sync::atomic::AtomicBool,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RetryNotice {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        use std::sync::atomic::Ordering;
        if self.told.load(Ordering::Relaxed) {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let Some(why) = message
            .0
            .strip_prefix("retrying in ")
            .and_then(|rest| rest.split_once(" after: "))
            .map(|(_, why)| why)
        else {
            return;
        };
        if why.contains("429") || self.told.swap(true, Ordering::Relaxed) {
            return;
        }
        // The cause is not repeated: the final error, if it comes to that, says it once.
        eprintln!(
            "warning: waiting for sip-agent-server: a request failed and is retried with backoff (-v shows each attempt and why)"
        );
    }
}

/// The `message` field of an event, as text.
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

/// The log filter of `-v`s when `SIPFORM_LOG` sets none: `-v` and `-vv` raise only sipform's
/// own targets (the library's and binary's modules, `sipform*`, and the `sip-provisioning`
/// target its lines are logged under): the pool's and the HTTP stack's connection lines
/// buried sipform's at `-vv`. `-vvv` traces everything. sqlx stays at error whatever the
/// level: its own warnings can quote a database URL.
pub fn log_filter(verbose: u8) -> String {
    let own = match verbose {
        0 => return "warn,sqlx=error".to_string(),
        1 => "info",
        2 => "debug",
        _ => return "trace,sqlx=error".to_string(),
    };
    format!("warn,sqlx=error,sipform={own},sip-provisioning={own}")
}

/// `--color`: when colour goes to stdout and stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Only to a terminal, and only without NO_COLOR.
    Auto,
    /// Always, even to a file or a pipe (a CI log that renders ANSI colour).
    Always,
    /// Never.
    Never,
}

static COLOR: std::sync::OnceLock<ColorChoice> = std::sync::OnceLock::new();

/// Sets `--color` once, before anything prints.
pub fn set_color(choice: ColorChoice) {
    let _ = COLOR.set(choice);
}

/// Whether colour may be written to a stream. `auto`: only a terminal, and only without
/// `NO_COLOR` (a log file or a CI log must not fill with escape codes); the flag's `always`
/// and `never` win over both.
fn color_for(is_terminal: bool) -> bool {
    match COLOR.get().copied().unwrap_or(ColorChoice::Auto) {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

/// Whether to colour what goes to stderr (logs, warnings).
pub fn color_stderr() -> bool {
    use std::io::IsTerminal;
    color_for(std::io::stderr().is_terminal())
}

/// Where the server is and how long to wait for it: the commands that talk to it take these.
#[derive(clap::Args, Clone, Default)]
pub struct ServerArgs {
    /// sip-agent-server's base URL (wins over SIP_AGENT_SERVER_URL and `server.url`).
    #[arg(long, value_name = "URL", value_parser = non_empty)]
    pub server_url: Option<String>,
    /// Per-request timeout, e.g. 10s, 500ms (wins over `server.timeout_sec`).
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    pub timeout: Option<Duration>,
}

impl ServerArgs {
    /// The settings these flags set; the others stay as the environment and file say.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            server_url: self.server_url.clone(),
            timeout: self.timeout,
            ..Overrides::default()
        }
    }
}

/// The most requests a run may keep in flight: more only exhausts sockets and the server.
pub const MAX_PARALLELISM: u64 = 256;

/// `--parallelism auto|N` and `--max-parallelism`, bounded so no value can overflow a
/// semaphore or a buffer.
#[derive(clap::Args, Clone)]
pub struct ParallelismArg {
    /// Requests in flight at once: `auto` finds what the server takes (starting at 8, growing
    /// while round trips stay flat, backing off on 429/5xx/timeouts), or a number (1 to 256)
    /// fixes it.
    #[arg(long, default_value = "auto", value_parser = parse_parallelism)]
    pub parallelism: ParallelismFlag,
    /// The most requests `--parallelism auto` keeps in flight (1 to 256).
    #[arg(
        long,
        default_value_t = config::DEFAULT_MAX_PARALLELISM as u64,
        value_parser = clap::value_parser!(u64).range(1..=MAX_PARALLELISM)
    )]
    pub max_parallelism: u64,
}

/// `--parallelism`'s value: `auto`, or a number in 1..=256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParallelismFlag {
    Auto,
    Fixed(usize),
}

fn parse_parallelism(s: &str) -> Result<ParallelismFlag, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(ParallelismFlag::Auto);
    }
    match s
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=MAX_PARALLELISM).contains(n))
    {
        Some(n) => usize::try_from(n)
            .map(ParallelismFlag::Fixed)
            .map_err(|e| e.to_string()),
        None => Err(format!(
            "expected `auto` or a number in 1..={MAX_PARALLELISM}"
        )),
    }
}

impl ParallelismArg {
    pub fn get(&self) -> config::Parallelism {
        // Both bounded to 1..=256 by their parsers, so they fit any usize.
        match self.parallelism {
            ParallelismFlag::Fixed(n) => config::Parallelism::Fixed(n),
            ParallelismFlag::Auto => config::Parallelism::Auto {
                max: usize::try_from(self.max_parallelism)
                    .unwrap_or(config::DEFAULT_MAX_PARALLELISM),
            },
        }
    }
}

/// `--target`: the restaurants a run is limited to.
#[derive(clap::Args, Clone)]
pub struct TargetArgs {
    /// Limit to this restaurant id (repeatable).
    #[arg(long = "target", value_name = "RESTAURANT_ID")]
    pub targets: Vec<String>,
}

impl TargetArgs {
    pub fn set(&self) -> BTreeSet<RestaurantId> {
        target_set(&self.targets)
    }
}

/// Restaurant ids as the plan keys them.
pub fn target_set(ids: &[String]) -> BTreeSet<RestaurantId> {
    ids.iter().map(|t| RestaurantId::new(t.as_str())).collect()
}

/// `--lock-timeout`, for the commands that take the state lock (apply, import).
#[derive(clap::Args, Clone)]
pub struct LockArgs {
    /// How long to wait for another run's state lock (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = config::parse_duration)]
    pub lock_timeout: Duration,
}

/// What `plan` and `apply` share: what to consider and whether deletes are allowed.
#[derive(clap::Args, Clone)]
pub struct PlanArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Delete the agents and final customers of restaurants gone from the inventory.
    #[arg(long)]
    pub allow_destroy: bool,
    /// Replace what the server cannot update: a final customer's subscription to another
    /// plan than `billing.plan` names (delete, then create).
    #[arg(long)]
    pub allow_replace: bool,
    /// Go back: restaurants state records at a newer (or diverged, or unknown) commit are
    /// planned and applied from this one, and the rollback is recorded.
    #[arg(long)]
    pub allow_rollback: bool,
    /// Apply uncommitted configuration changes over restaurants recorded at a commit.
    #[arg(long)]
    pub allow_dirty: bool,
    /// Update agents now, inside their change windows and during live calls (`windows:` in
    /// sipform.yaml): for an emergency fix.
    #[arg(long)]
    pub ignore_windows: bool,
    #[command(flatten)]
    pub parallelism: ParallelismArg,
    #[command(flatten)]
    pub server: ServerArgs,
}

impl PlanArgs {
    pub fn plan_options(&self) -> PlanOptions {
        PlanOptions {
            allow_destroy: self.allow_destroy,
            allow_replace: self.allow_replace,
            targets: self.targets.set(),
            only_changes: false,
            allow_rollback: self.allow_rollback,
            allow_dirty: self.allow_dirty,
            ignore_windows: self.ignore_windows,
        }
    }

    /// The settings these flags set.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            parallelism: Some(self.parallelism.get()),
            ..self.server.overrides()
        }
    }
}

/// A request timeout of zero would fail every request before it is sent.
fn positive_duration(s: &str) -> Result<Duration, String> {
    match config::parse_duration(s)? {
        d if d.is_zero() => Err("must be longer than zero".into()),
        d => Ok(d),
    }
}

fn non_empty(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s.to_string())
    }
}

/// The project's settings with `overrides` applied. A folder without `sipform.yaml` is said
/// once, with the way to point at a project, instead of as a file that cannot be read.
pub fn settings(root: &Path, overrides: &Overrides) -> anyhow::Result<Settings> {
    require_project(root)?;
    Ok(Settings::load(root, overrides).map_err(OpsError::from)?)
}

/// Fails, saying what to do, when `root` holds no `sipform.yaml`.
pub fn require_project(root: &Path) -> anyhow::Result<()> {
    if root.join(PROJECT_FILE).exists() {
        return Ok(());
    }
    let shown = if root.as_os_str().is_empty() || root == Path::new(".") {
        "the current folder".to_string()
    } else {
        root.display().to_string()
    };
    anyhow::bail!(
        "no {PROJECT_FILE} in {shown}: run sipform in a project folder, or point at one with -C DIR"
    )
}

/// Loads the project with the flags applied, and prints its warnings once.
pub async fn workspace(global: &Global, overrides: &Overrides) -> anyhow::Result<Workspace> {
    let settings = settings(&global.project, overrides)?;
    let ws = Workspace::load(settings).await?;
    for w in ws.warnings() {
        eprintln!("warning: {w}");
    }
    Ok(ws)
}

/// Whether to color stdout (the human plan).
pub fn color_stdout() -> bool {
    use std::io::IsTerminal;
    color_for(std::io::stdout().is_terminal())
}

/// The human plan format, colored when stdout is a terminal.
pub fn human() -> sipform::output::Format {
    sipform::output::Format::Human {
        color: color_stdout(),
    }
}
