//! What sipform shows: plans in three forms (human text, JSON, Markdown), the closing report
//! of an apply, and rendered specs. Every function is pure (data in, text out: no I/O, no
//! clock), so snapshot tests pin the forms exactly and the CLI only decides where text goes.
//!
//! A new format is one file here plus one [`Format`] variant.

mod annotations;
mod apply_json;
mod duplicates;
mod guardrails;
mod holds;
mod human;
mod json;
mod lines;
mod markdown;
mod orphans;
mod report;
mod rollout;
mod skipped;
pub mod specs;
mod status;
mod waivers;

pub use crate::escape::escape;
pub use annotations::github_annotations;
pub use apply_json::{apply_json, ApplyRunView};
pub use duplicates::dedupe;
pub use human::{human, human_brief};
pub use json::{json, plan_schema_json};
pub use lines::NO_CHANGES;
pub use markdown::{
    markdown, markdown_comment, CommentContext, COMMENT_MARKER, MARKDOWN_MAX_CHARS,
};
pub use report::{imports, report};
pub use rollout::{rollout_line, rollout_run, rollout_status};
pub use skipped::skipped;
pub use status::{feed_line, queue_line, status};
pub use waivers::with_waivers;

use crate::plan::Plan;

/// How a plan is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// For a terminal; `color` adds ANSI colors (the CLI asks when stdout is a terminal and
    /// `NO_COLOR` is unset).
    Human { color: bool },
    /// The saved form, the same document `plan --out` writes.
    Json,
    /// A pull-request comment.
    Markdown,
}

/// `plan` in `format`.
pub fn plan(plan: &Plan, format: Format) -> String {
    match format {
        Format::Human { color } => human(plan, color),
        Format::Json => json(plan),
        Format::Markdown => markdown(plan),
    }
}
