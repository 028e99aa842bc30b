//! `sipform plan`: read the server, diff, print what apply would do.

use std::path::PathBuf;
use std::process::ExitCode;

use sipform::plan::render;

use super::{Global, RunArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub run: RunArgs,
    /// Print the plan as JSON (the saved-plan format, schema/plan.schema.json).
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print the plan as Markdown, for a pull request comment.
    #[arg(long)]
    pub markdown: bool,
    /// Save the plan for `sipform apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let ws = super::workspace(global, &args.run).await?;
    let client = ws.client()?;
    let state = ws.state().await?;
    let (plan, _) = ws
        .plan(
            &client,
            &state,
            args.run.allow_destroy,
            &args.run.target_set(),
        )
        .await?;
    let text = if args.json {
        render::json(&plan)
    } else if args.markdown {
        render::markdown(&plan)
    } else {
        render::human(&plan, super::color_stdout())
    };
    print!("{text}");
    if let Some(out) = &args.out {
        sipform::pipeline::write_plan(out, &plan)?;
        eprintln!(
            "Saved the plan to {}; apply it with: sipform apply {}",
            out.display(),
            out.display()
        );
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
