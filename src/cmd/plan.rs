//! `sipform plan`: read the server, diff, print what apply would do.

use std::path::PathBuf;
use std::process::ExitCode;

use sipform::ops;
use sipform::output::{self, Format};

use super::{Global, PlanArgs};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub run: PlanArgs,
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
    let ws = super::workspace(global, &args.run.overrides()).await?;
    let opts = ops::plan::PlanOptions {
        // A plan only printed for people never shows unchanged restaurants: they are left
        // out of it. JSON and a saved plan list every object.
        only_changes: !args.json && args.out.is_none(),
        ..args.run.plan_options()
    };
    let plan = ops::plan::plan(&ws, &opts).await?;
    let format = if args.json {
        Format::Json
    } else if args.markdown {
        Format::Markdown
    } else {
        super::human()
    };
    let text = match format {
        // The PR comment ends with the commit it was made from.
        Format::Markdown => output::markdown_comment(
            &plan,
            &output::CommentContext {
                commit: ops::plan::source_commit(&ws.settings().root),
            },
        ),
        other => output::plan(&plan, other),
    };
    let waivers = &ws.settings().platform.waivers;
    let text = match format {
        Format::Json => text,
        f => output::with_waivers(text, waivers, f == Format::Markdown),
    };
    print!("{text}");
    if let Some(out) = &args.out {
        ops::plan::save(out, &plan)?;
        eprintln!(
            "Saved the plan to {}; apply it with: sipform apply {}",
            out.display(),
            out.display()
        );
    }
    // Restaurants skipped for invalid input: everything else is planned, but the run fails.
    if !ws.skipped().is_empty() {
        eprint!("{}", output::skipped(ws.skipped()));
        return Ok(ExitCode::FAILURE);
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
