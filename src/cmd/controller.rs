//! `sipform controller`: reconcile continuously; `controller install-trigger`.
//!
//! The loop is the library's (`sipform::controller`); this shell adds what the library does
//! not compile: the HTTP listener ([`super::controller_http`]), the signals and the file
//! watcher, all talking to the loop through its `Handle`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args as ClapArgs, Subcommand};
use sipform::config::{self, Overrides};
use sipform::controller::{self, Handle, Options};
use sipform::ops;
use tokio::signal::unix::{signal, SignalKind};

use super::{Global, ServerArgs};

/// Reconcile continuously: a restaurant's agent is provisioned seconds after the platform
/// creates its row.
///
/// Database inventory: reads the change log a trigger fills (`install-trigger`), woken at once
/// by PostgreSQL's NOTIFY and polled every --poll-interval otherwise; queues every restaurant
/// at start and every --resync; takes webhook calls on --listen. Files inventory: reconciles
/// at start, on --resync, and (with --watch) when the project's files change.
#[derive(ClapArgs)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<ControllerCommand>,
    /// Run one full reconcile and exit (0 when every restaurant is reconciled, 1 otherwise):
    /// for cron.
    #[arg(long)]
    pub once: bool,
    /// Queue every restaurant this often, to catch drift and anything a notification missed.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = positive)]
    pub resync: Duration,
    /// How often the change log is read when no NOTIFY wakes the controller (SQLite, or
    /// PostgreSQL while LISTEN is down).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = positive)]
    pub poll_interval: Duration,
    /// Delete the objects of a restaurant whose row was deleted (otherwise reported only).
    #[arg(long)]
    pub allow_destroy: bool,
    /// Apply batches over the `guardrails:` limits when none of their counts (over the last
    /// hour) is above N; without it such a batch is held and reported.
    #[arg(long, value_name = "N")]
    pub allow_changes: Option<u64>,
    /// Update agents inside their change windows and during live calls (`windows:` in
    /// sipform.yaml): for an emergency fix.
    #[arg(long)]
    pub ignore_windows: bool,
    /// The HTTP listener: /healthz, /readyz, /metrics, and the webhook (/v1/…) when
    /// SIPFORM_CONTROLLER_TOKEN is set.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
    /// Files inventory: reconcile when tools/, templates/, the inventory or sipform.yaml change
    /// (debounced; the configuration is reloaded first).
    #[arg(long)]
    pub watch: bool,
    /// Most restaurants per reconcile batch (the state lock is held for one batch).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch_size: u64,
    /// How long a batch waits for the state lock (held by CI's `apply`) before retrying later.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = config::parse_duration)]
    pub lock_timeout: Duration,
    /// First retry delay after a transient failure; doubles per failure up to --backoff-max.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = positive)]
    pub backoff: Duration,
    /// The longest retry delay after transient failures in a row.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = positive)]
    pub backoff_max: Duration,
    /// How often a standby tries to become the leader (PostgreSQL advisory lock).
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = positive)]
    pub leader_retry: Duration,
    /// Where the controller keeps its copy of the configuration (and a `controller.source`'s
    /// mirror and snapshots). Default: `.sipform-controller` beside the state file or SQLite
    /// database, else in the project folder. Never the system's temporary folder.
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Follow this git repository (a path or URL) instead of the project folder's tools,
    /// template and settings: overrides `controller.source.git` in sipform.yaml.
    #[arg(long, value_name = "GIT")]
    pub source: Option<String>,
    /// The branch followed (default: `controller.source.branch`, else main).
    #[arg(long, value_name = "BRANCH")]
    pub source_branch: Option<String>,
    /// How often the followed branch is fetched (default: `controller.source.interval`, else
    /// 30s); `POST /v1/reload` fetches at once.
    #[arg(long, value_name = "DURATION", value_parser = positive)]
    pub source_interval: Option<Duration>,
    /// Reinstall the change log and triggers when the self-check finds them missing (the
    /// platform's SQLite table rebuild drops them). Off by default: without it a missing
    /// trigger is reported (log, /readyz, metric) and covered by a full reconcile only.
    #[arg(long)]
    pub manage_trigger: bool,
    #[command(flatten)]
    pub parallelism: super::ParallelismArg,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Subcommand)]
pub enum ControllerCommand {
    /// Create or update the change log and trigger on the platform's restaurants table
    /// (idempotent).
    InstallTrigger {
        /// Print the SQL instead of running it (for a platform that runs its own migrations).
        #[arg(long)]
        print_sql: bool,
    },
}

fn positive(s: &str) -> Result<Duration, String> {
    match config::parse_duration(s)? {
        d if d.is_zero() => Err("must be longer than zero".into()),
        d => Ok(d),
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        parallelism: Some(args.parallelism.get()),
        lock_timeout: Some(args.lock_timeout),
        ..args.server.overrides()
    };
    let settings = super::settings(&global.project, &overrides)?;
    if let Some(ControllerCommand::InstallTrigger { print_sql }) = args.command {
        return install_trigger(&settings, print_sql).await;
    }
    let folder = if args.watch {
        match ops::controller::inventory_folder(&settings) {
            Some(f) => Some(f),
            None => anyhow::bail!(
                "--watch is for a files inventory; a database inventory has its change feed"
            ),
        }
    } else {
        None
    };
    for w in settings.warnings() {
        tracing::warn!(target: sipform::LOG_TARGET, "{w}");
    }
    let opts = Options {
        overrides,
        once: args.once,
        resync_every: args.resync,
        poll_interval: args.poll_interval,
        allow_destroy: args.allow_destroy,
        allow_changes: args.allow_changes,
        ignore_windows: args.ignore_windows,
        batch_size: usize::try_from(args.batch_size).unwrap_or(100),
        backoff_base: args.backoff,
        backoff_max: args.backoff_max,
        leader_retry: args.leader_retry,
        source: source(&settings, &args),
        work_dir: args.work_dir,
        manage_trigger: args.manage_trigger,
        ..Options::new(global.project.clone())
    };
    let (handle, inbox) = controller::channel();
    let server = if args.once {
        None
    } else {
        Some(listen(args.listen, handle.clone()).await?)
    };
    let stop = super::signals::StopRequest::default();
    listen_signals(handle.clone(), stop.clone())?;
    let _watcher = if let Some(folder) = folder {
        Some(watch(&settings, folder, handle.clone())?)
    } else {
        None
    };
    // A signal stops new work at once; what is still in flight after the grace is abandoned
    // (a hanging server must not hold the exit).
    let result = tokio::select! {
        r = controller::run(opts, handle.clone(), inbox) => r,
        () = stop.expired() => {
            tracing::warn!(target: sipform::LOG_TARGET, "controller: requests still in flight {} ms after the signal abandoned (a create whose answer was lost is re-read at the next start)", super::signals::STOP_GRACE.as_millis());
            Ok(controller::Summary::default())
        }
    };
    if let Some(s) = server {
        s.abort();
    }
    let summary = result?;
    tracing::info!(target: sipform::LOG_TARGET, "controller: stopped ({} changed, {} up to date, {} held, {} transient, {} fatal, {} not started)", summary.changed, summary.unchanged, summary.held, summary.transient, summary.fatal, summary.not_started);
    if args.once {
        eprintln!(
            "controller --once: {} changed, {} up to date, {} held, {} failed (transient), {} failed (fatal)",
            summary.changed, summary.unchanged, summary.held, summary.transient, summary.fatal
        );
        if summary.failed() {
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `controller.source` with the flags over it; `None` when neither names a repository.
fn source(settings: &sipform::config::Settings, args: &Args) -> Option<config::SourceSettings> {
    let from_file = settings.source();
    let git = match (&args.source, &from_file) {
        // A path on the command line is the caller's: made absolute (git runs in the mirror).
        (Some(g), _) => std::fs::canonicalize(g)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| g.clone()),
        (None, Some(s)) => s.git.clone(),
        (None, None) => return None,
    };
    Some(config::SourceSettings {
        git,
        branch: args
            .source_branch
            .clone()
            .or_else(|| from_file.as_ref().map(|s| s.branch.clone()))
            .unwrap_or_else(|| "main".into()),
        interval: args
            .source_interval
            .or_else(|| from_file.as_ref().map(|s| s.interval))
            .unwrap_or(config::DEFAULT_SOURCE_INTERVAL),
        path: from_file.and_then(|s| s.path),
    })
}

/// `controller install-trigger [--print-sql]`.
async fn install_trigger(
    settings: &sipform::config::Settings,
    print_sql: bool,
) -> anyhow::Result<ExitCode> {
    if print_sql {
        print!("{}", ops::controller::trigger_sql(settings).await?.sql);
    } else {
        let t = ops::controller::install_trigger(settings).await?;
        if t.changed {
            eprintln!(
                "installed the sipform change log and triggers on {}",
                t.table
            );
        } else {
            eprintln!(
                "the sipform change log and triggers are already installed on {}: nothing to do",
                t.table
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The HTTP listener (health, readiness, metrics, the webhook when a token is set).
async fn listen(
    addr: std::net::SocketAddr,
    handle: controller::Handle,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let token = std::env::var("SIPFORM_CONTROLLER_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty());
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (--listen)"))?;
    tracing::info!(target: sipform::LOG_TARGET, "controller: listening on {}{}", addr, if token.is_some() { "" } else { " (webhook off: SIPFORM_CONTROLLER_TOKEN is not set)" });
    Ok(super::controller_http::serve(listener, handle, token))
}

/// SIGTERM and SIGINT: stop (in-flight writes finish and are recorded within the grace, the
/// rest abandoned, then exit 0). SIGHUP:
/// reload the configuration.
fn listen_signals(handle: Handle, stop: super::signals::StopRequest) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!(target: sipform::LOG_TARGET, "controller: SIGTERM: finishing what is in flight");
                    handle.shutdown("interrupted by SIGTERM");
                    stop.request();
                }
                _ = int.recv() => {
                    tracing::info!(target: sipform::LOG_TARGET, "controller: SIGINT: finishing what is in flight");
                    handle.shutdown("interrupted by SIGINT");
                    stop.request();
                }
                _ = hup.recv() => {
                    let h = handle.clone();
                    // Logged (and counted) by the loop, accepted or refused.
                    tokio::spawn(async move { let _ = h.reload().await; });
                }
            }
        }
    });
    Ok(())
}

/// Watches the project's inputs; a change reloads the configuration and reconciles.
fn watch(
    settings: &sipform::config::Settings,
    inventory: PathBuf,
    handle: Handle,
) -> anyhow::Result<
    notify_debouncer_mini::Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>,
> {
    use notify_debouncer_mini::notify::RecursiveMode;
    let root = &settings.root;
    let paths: Vec<PathBuf> = vec![
        root.join(&settings.tools_dir),
        root.join(&settings.template)
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| root.clone()),
        root.join(sipform::front::load::PROJECT_FILE),
        inventory,
    ];
    let rt = tokio::runtime::Handle::current();
    let mut debouncer = notify_debouncer_mini::new_debouncer(
        Duration::from_millis(300),
        move |events: notify_debouncer_mini::DebounceEventResult| {
            if matches!(&events, Ok(e) if e.is_empty()) {
                return;
            }
            let h = handle.clone();
            rt.spawn(async move {
                let _ = h.reload().await;
                h.reconcile_all();
            });
        },
    )
    .context("starting the file watcher")?;
    for p in paths {
        let mode = if p.is_dir() {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        debouncer
            .watcher()
            .watch(&p, mode)
            .with_context(|| format!("watching {}", p.display()))?;
    }
    Ok(debouncer)
}
