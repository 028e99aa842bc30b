//! `sipform demo`: the whole job on an embedded default. Starts the bundled emulator in-process,
//! plans and applies the project against it (state in a temporary folder), then plans again to
//! show that nothing is left to do.

use std::process::ExitCode;

use sipform::ops::demo::{Demo, DemoOptions};
use sipform::output;
use sipform_emulator::{Emulator, EmulatorConfig};

use super::progress::TerminalProgress;
use super::{Global, ParallelismArg, TargetArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub targets: TargetArgs,
    #[command(flatten)]
    pub parallelism: ParallelismArg,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    super::require_project(&global.project)?;
    let emulator = Emulator::start(EmulatorConfig::default()).await?;
    let opts = DemoOptions {
        server_url: emulator.base_url(),
        parallelism: args.parallelism.get(),
        targets: args.targets.set(),
    };
    let demo = Demo::open(&global.project, opts).await?;
    println!(
        "Emulator listening on {} (in-process, in memory)\n",
        emulator.base_url()
    );

    let plan = demo.plan().await?;
    println!("$ sipform plan");
    print!("{}", output::plan(&plan, super::human()));

    println!("\n$ sipform apply --auto-approve");
    let total = plan.actions().filter(|a| a.op().is_change()).count() as u64;
    let progress = TerminalProgress::new(total);
    let report = demo.apply(&plan, &progress).await?;
    progress.finish();
    print!("{}", output::report(&report));

    let again = demo.plan().await?;
    println!("\n$ sipform plan");
    print!("{}", output::plan(&again, super::human()));
    emulator.shutdown().await;
    Ok(if report.failed() || again.has_changes() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
