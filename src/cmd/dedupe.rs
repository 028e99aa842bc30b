//! `sipform dedupe`: deactivate (and with `--allow-destroy` delete) the duplicates every plan
//! lists: extra agents claiming a restaurant, their final customers, phone lines and
//! subscriptions. Never what state or the platform's row points at.

use std::process::ExitCode;

use sipform::config::Overrides;
use sipform::ops::dedupe::{self, DedupeOptions};
use sipform::output;

use super::{Global, LockArgs, ServerArgs, TargetArgs};

#[derive(clap::Args)]
pub struct Args {
    /// Delete the duplicates after deactivating them (phone lines first).
    #[arg(long)]
    pub allow_destroy: bool,
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub lock: LockArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        lock_timeout: Some(args.lock.lock_timeout),
        ..args.server.overrides()
    };
    let ws = super::workspace(global, &overrides).await?;
    let opts = DedupeOptions {
        allow_destroy: args.allow_destroy,
        targets: args.targets.set(),
    };
    let report = dedupe::dedupe(&ws, &opts).await?;
    print!("{}", output::dedupe(&report));
    let code = if report.failed() || !ws.skipped().is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };
    if !ws.skipped().is_empty() {
        eprint!("{}", output::skipped(ws.skipped()));
    }
    Ok(code)
}
