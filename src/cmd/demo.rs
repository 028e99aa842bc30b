//! `sipform demo`: the whole job on an embedded default. Starts the bundled emulator in-process,
//! plans and applies the project against it (state in a temporary folder), then plans again to
//! show that nothing is left to do.

use std::process::ExitCode;

use super::progress::TerminalProgress;
use sipform::apply;
use sipform::plan::render;
use sipform::state::{self, StateWriter};
use sipform_emulator::{Emulator, EmulatorConfig};

use super::{Global, RunArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub run: RunArgs,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let emulator = Emulator::start(EmulatorConfig::default()).await?;
    let scratch = tempfile::tempdir()?;
    let mut ws = sipform::pipeline::Workspace::load(&global.project).await?;
    ws.settings.server_url = emulator.base_url();
    ws.settings.api_key = None;
    ws.settings.parallelism = args.run.parallelism.max(1);
    ws.project.state = sipform::model::spec::StateConfig::File {
        path: scratch.path().join("sipform.state.json"),
        store_tokens: false,
    };
    ws.backend = state::open(&ws.project.state, scratch.path())?;
    println!(
        "Emulator listening on {} (in-process, in memory)\n",
        emulator.base_url()
    );

    let client = ws.client()?;
    let targets = args.run.target_set();
    let st = ws.state().await?;
    let (plan, _) = ws.plan(&client, &st, false, &targets).await?;
    println!("$ sipform plan");
    print!("{}", render::human(&plan, super::color_stdout()));

    println!("\n$ sipform apply --auto-approve");
    let writer = StateWriter::new(ws.backend.clone(), st, false, None);
    let total = plan.actions().filter(|a| a.op().is_change()).count() as u64;
    let progress = TerminalProgress::new(total);
    let report = apply::apply(&plan, &client, &writer, &progress).await;
    progress.finish();
    print!("{}", report.render());
    drop(writer);

    let st = ws.state().await?;
    let (again, _) = ws.plan(&client, &st, false, &targets).await?;
    println!("\n$ sipform plan");
    print!("{}", render::human(&again, super::color_stdout()));
    emulator.shutdown().await;
    Ok(if report.failed() || again.has_changes() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
