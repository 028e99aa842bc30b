//! The `sipform` binary: parses arguments and hands over to the library. Nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "sipform",
    version = VERSION,
    about = "sip-agent-server's phone agents as code: validate, plan, apply."
)]
struct Cli {
    /// The project folder (holding sipform.yaml).
    #[arg(short = 'C', long = "project", global = true, default_value = ".")]
    project: PathBuf,
    /// More log output on stderr (-v info, -vv debug, -vvv trace). Secrets are never logged.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Colour on stdout and stderr: `auto` only on a terminal and without NO_COLOR.
    #[arg(
        long,
        value_enum,
        global = true,
        default_value = "auto",
        value_name = "WHEN"
    )]
    color: cmd::ColorChoice,
    #[command(subcommand)]
    command: Command,
}

/// `sipform --version`: the package's version and the commit it was built from (`build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SIPFORM_COMMIT"),
    ")"
);

#[derive(Subcommand)]
enum Command {
    /// Check every file and every rendered agent, offline. Exit 1 on any error.
    Validate(cmd::validate::Args),
    /// Print the rendered agent specs.
    Render(cmd::render::Args),
    /// Write (or --check) the JSON Schemas under schema/.
    Schema(cmd::schema::Args),
    /// Show what apply would change on the server.
    Plan(cmd::plan::Args),
    /// Make the server match the files (a saved plan, or plan-and-apply).
    Apply(cmd::apply::Args),
    /// Take objects that already exist on the server into state.
    Import(cmd::import::Args),
    /// Inspect or edit state.
    State(cmd::state::Args),
    /// Where each restaurant stands: synced, out of sync, failed, parked, held, suspended.
    Status(cmd::status::Args),
    /// Set restaurants aside: plan, apply and the controller leave them as they are.
    Suspend(cmd::suspend::Args),
    /// Take suspended restaurants back.
    Resume(cmd::suspend::Args),
    /// A change going out in waves: status, resume, abort (docs/rollout.md).
    Rollout(cmd::rollout::Args),
    /// Deactivate (with --allow-destroy, delete) the duplicates every plan lists.
    Dedupe(cmd::dedupe::Args),
    /// Check the server, the credentials and the state backend.
    Doctor(cmd::doctor::Args),
    /// Run the sip-agent-server emulator.
    Emulator(cmd::emulator::Args),
    /// One command that shows it all: start an emulator, apply the bundled project, plan again.
    Demo(cmd::demo::Args),
    /// Reconcile continuously: provision a restaurant's agent seconds after its row appears.
    Controller(cmd::controller::Args),
    /// Print (or --send) the exact request a tool makes for one call, built offline.
    Call(cmd::call::Args),
    /// Run the tool tests of tool-tests/ (offline; --platform URL for the live part).
    Test(cmd::test::Args),
    /// Create a new project folder (settings, the 12 tools, the template, one restaurant).
    Init(cmd::init::Args),
    /// Print the shell completion script (bash, zsh or fish).
    Completions(cmd::completions::Args),
    /// Print the man page (or one command's; --dir writes them all).
    Man(cmd::man::Args),
    /// Exit 0 when an HTTP GET answers 2xx: the image's health check of `/healthz`.
    Probe(cmd::probe::Args),
}

fn main() -> ExitCode {
    restore_sigpipe();
    tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    cmd::set_color(cli.color);
    cmd::init_logging(cli.verbose);
    // What needs neither the runtime nor a project: answered before either exists.
    let offline = match &cli.command {
        Command::Completions(a) => Some(cmd::completions::run(Cli::command(), a)),
        Command::Man(a) => Some(cmd::man::run(Cli::command(), a)),
        _ => None,
    };
    if let Some(result) = offline {
        return finish(result);
    }
    let global = cmd::Global {
        project: cli.project,
        verbose: cli.verbose,
    };
    // One worker beside the main thread, which runs the command itself (planning, comparing):
    // the requests' I/O needs far less than a core (about 140 µs each at a few thousand a
    // second), and a second worker only stole tasks back and forth, waking threads: it cost
    // a fresh apply a quarter more CPU for no speed (measured with the scale bench, docs/performance.md). The servers (the
    // controller with its listener, the emulator) keep a worker per core.
    let workers = match &cli.command {
        Command::Emulator(_) | Command::Controller(_) => {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
        _ => 1,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Validate(a) => cmd::validate::run(&global, a).await,
            Command::Render(a) => cmd::render::run(&global, a).await,
            Command::Schema(a) => cmd::schema::run(&global, a).await,
            Command::Plan(a) => cmd::plan::run(&global, a).await,
            Command::Apply(a) => cmd::apply::run(&global, a).await,
            Command::Import(a) => cmd::import::run(&global, a).await,
            Command::State(a) => cmd::state::run(&global, a).await,
            Command::Status(a) => cmd::status::run(&global, a).await,
            Command::Suspend(a) => cmd::suspend::run(&global, a, true).await,
            Command::Rollout(a) => cmd::rollout::run(&global, a).await,
            Command::Resume(a) => cmd::suspend::run(&global, a, false).await,
            Command::Dedupe(a) => cmd::dedupe::run(&global, a).await,
            Command::Doctor(a) => cmd::doctor::run(&global, a).await,
            Command::Emulator(a) => cmd::emulator::run(&global, a).await,
            Command::Demo(a) => cmd::demo::run(&global, a).await,
            Command::Controller(a) => cmd::controller::run(&global, a).await,
            Command::Call(a) => cmd::call::run(&global, a).await,
            Command::Test(a) => cmd::test::run(&global, a).await,
            Command::Init(a) => cmd::init::run(&global, a),
            Command::Probe(a) => cmd::probe::run(a).await,
            Command::Completions(_) | Command::Man(_) => unreachable!("answered above"),
        }
    });
    finish(result)
}

/// The exit code of a command, its error said on stderr.
fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// Prints clap's message and exits 0 for `--help`/`--version`, 1 for a usage error: like
/// Terraform, 2 is kept for `plan --detailed-exitcode`'s "changes present", which clap's own
/// code for a usage error would be mistaken for.
fn usage_error(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    if e.exit_code() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The error and its causes, each said once: a cause whose text the message already holds (an
/// error that shows its source and also returns it from `source()`) is not repeated.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// mimalloc rather than glibc's allocator: a plan or apply of 10,000 restaurants allocates
/// and frees millions of small JSON nodes across threads; glibc spent a quarter of the CPU in
/// malloc/free/consolidation and held far more than the live heap (docs/performance.md).
/// The feature is on by default; off, glibc is limited to two arenas.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc keeps freed memory for 10 ms and commits a whole arena up front by default: at
/// 10,000 restaurants that held 30-60 MB more at the peak than purging at once and committing
/// on demand, for no measurable CPU (docs/performance.md). Without the `mimalloc` feature (a
/// build for heap profilers that hook malloc), glibc is limited to two arenas instead: each
/// thread's own kept ~100 MB more.
fn tune_allocator() {
    #[cfg(feature = "mimalloc")]
    // SAFETY: plain option setters of the allocator, called first thing in main. The numbers
    // are mimalloc v2's `mi_option_e` (`mimalloc.h`), which keeps retired options in place so
    // that the numbering never moves; `libmimalloc-sys` names neither of these two.
    unsafe {
        const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
        const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
    // SAFETY: called first thing in main, before any thread allocates; a documented option.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Rust ignores SIGPIPE, so `sipform plan | head` would end in a panic on a closed pipe; the
/// default action ends the process quietly, as every Unix filter does.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
