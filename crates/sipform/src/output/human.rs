//! The plan as a person reads it on a terminal, Terraform-like: `+ ~ - <=` per action, field
//! diffs below, ANSI colors only when asked.

use std::fmt::Write as _;

use similar::ChangeTag;

use super::lines::{
    account_lines, group_lines, is_listed_apart, printable, render_merged, restaurant_lines,
    summary_line, thousands, Color, Line,
};
use crate::plan::{groups, Op, Plan};

/// Restaurants named under a group; the rest are counted, so the plan's size follows the
/// number of distinct changes, not of restaurants (`plan --json` lists them all).
const GROUP_NAMES_SHOWN: usize = 5;

/// The plan as a person reads it on a terminal. `color` adds ANSI colors (callers pass whether
/// stdout is a terminal and `NO_COLOR` is unset). A change made identically in several
/// restaurants is shown once, with its count and a few of the restaurants; what is left is
/// shown per restaurant.
pub fn human(plan: &Plan, color: bool) -> String {
    render(plan, color, usize::MAX)
}

/// Restaurants listed apart in [`human_brief`]; the rest are counted.
pub(crate) const BRIEF_RESTAURANTS: usize = 20;

/// [`human`] for a log (`apply --auto-approve` with stdout not a terminal): the shared changes
/// grouped as always, but at most [`BRIEF_RESTAURANTS`] restaurants with changes of their own
/// listed, the others counted, so that 100,000 restaurants print kilobytes, not megabytes.
/// `sipform plan --out` / `--json` keep every action.
pub fn human_brief(plan: &Plan, color: bool) -> String {
    render(plan, color, BRIEF_RESTAURANTS)
}

/// Restaurants named under a revision note; the rest are counted.
const REVISION_NOTES_SHOWN: usize = 5;

/// The header's revision lines: the configuration's revision, then the restaurants an apply
/// would roll back or refuse (a few named, the rest counted), then those held by their change
/// window. Shared with the Markdown.
pub(super) fn revision_lines(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(r) = &plan.revision {
        out.push(format!("Revision: {}", r.describe()));
    }
    for (refused, label) in [(false, "Going back"), (true, "Refused")] {
        let notes: Vec<_> = plan
            .revision_notes
            .iter()
            .filter(|n| n.refused == refused)
            .collect();
        for n in notes.iter().take(REVISION_NOTES_SHOWN) {
            out.push(format!(
                "{label}: restaurant {} ({}): {}",
                n.name, n.restaurant_id, n.message
            ));
        }
        if notes.len() > REVISION_NOTES_SHOWN {
            out.push(format!(
                "{label}: and {} more restaurants",
                thousands(notes.len() - REVISION_NOTES_SHOWN)
            ));
        }
    }
    // Updates waiting for their change window.
    out.extend(super::holds::lines(plan));
    out
}

/// The revision lines, then the guardrails the plan goes over.
fn header_lines(plan: &Plan) -> Vec<String> {
    let mut out = revision_lines(plan);
    out.extend(
        super::guardrails::lines(plan)
            .iter()
            .map(|l| format!("! {l}")),
    );
    out
}

fn render(plan: &Plan, color: bool, listed: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sipform plan for {}",
        printable(&crate::model::secret::redact_url(&plan.server_url))
    );
    if !plan.targets.is_empty() {
        let targets: Vec<&str> = plan.targets.iter().map(|t| t.as_str()).collect();
        let _ = writeln!(out, "Targets: {}", printable(&targets.join(", ")));
    }
    for line in header_lines(plan) {
        let _ = writeln!(out, "{}", printable(&line));
    }
    let grouping = groups(plan);
    let names: std::collections::HashMap<&str, &str> = plan
        .restaurants
        .iter()
        .map(|r| (r.restaurant_id.as_str(), r.name.as_str()))
        .collect();
    let mut blocks = Vec::new();
    if plan.account.op() != Op::NoOp {
        blocks.push(account_lines(&plan.account));
    }
    for g in &grouping.groups {
        let mut lines = group_lines(g);
        let shown: Vec<String> = g
            .restaurant_ids
            .iter()
            .take(GROUP_NAMES_SHOWN)
            .map(|id| format!("{} ({id})", names.get(id.as_str()).unwrap_or(&"?")))
            .collect();
        let mut list = format!("restaurants: {}", shown.join(", "));
        if g.count > shown.len() {
            let _ = write!(list, " and {} more", thousands(g.count - shown.len()));
        }
        let mut line = Line::heading(list);
        line.indent = 4;
        lines.push(line);
        blocks.push(lines);
    }
    let (mut shown, mut unlisted) = (0usize, 0usize);
    for (ri, r) in plan.restaurants.iter().enumerate() {
        let grouped = |ai: usize| grouping.is_grouped(ri, ai);
        if is_listed_apart(r, &grouped) {
            shown += 1;
            if shown > listed {
                unlisted += 1;
                continue;
            }
            blocks.push(restaurant_lines(r, &grouped));
        }
    }
    if unlisted > 0 {
        blocks.push(vec![Line::heading(format!(
            "... and {} more restaurants with changes of their own (not listed here: `sipform plan --out FILE` or `--json` shows every action)",
            thousands(unlisted)
        ))]);
    }
    for block in blocks {
        out.push('\n');
        for line in block.iter().filter(|l| !l.human_hidden) {
            out.push_str(&line.human(color));
            out.push('\n');
        }
    }
    out.push('\n');
    out.push_str(&summary_line(plan));
    out.push('\n');
    let mut dups = super::duplicates::lines(plan);
    dups.extend(super::orphans::lines(plan));
    if !dups.is_empty() {
        out.push('\n');
        for l in dups {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

impl Line {
    /// The symbol after the indent; with `color`, the symbol (or, in a text diff, the whole
    /// line) painted and the changed words of a replaced line underlined.
    pub(super) fn human(&self, color: bool) -> String {
        let pad = " ".repeat(self.indent);
        let text = printable(&self.text);
        let line = if let Some(parts) = &self.merged {
            let paint = |tag: ChangeTag, s: &str| match (color, tag) {
                (true, ChangeTag::Delete) => Color::Red.paint(s),
                (true, ChangeTag::Insert) => Color::Green.paint(s),
                _ => s.to_string(),
            };
            let parts: Vec<(ChangeTag, String)> =
                parts.iter().map(|(t, w)| (*t, printable(w))).collect();
            let sym = if color {
                Color::Yellow.paint("~")
            } else {
                "~".into()
            };
            format!("{pad}{sym} {}", render_merged(&parts, &paint))
        } else if self.sym.is_empty() {
            if color && self.indent == 0 {
                format!("{pad}\x1b[1m{text}\x1b[0m")
            } else {
                format!("{pad}{text}")
            }
        } else {
            match (color, self.color) {
                (true, Some(c)) if self.color_text => {
                    let text = if self.words.is_empty() {
                        text
                    } else {
                        self.words
                            .iter()
                            .map(|(changed, w)| {
                                let w = printable(w);
                                if *changed && !w.trim().is_empty() {
                                    format!("\x1b[4m{w}\x1b[24m")
                                } else {
                                    w
                                }
                            })
                            .collect()
                    };
                    format!("{pad}{}", c.paint(&format!("{} {text}", self.sym)))
                }
                (true, Some(c)) => format!("{pad}{} {text}", c.paint(self.sym)),
                _ => format!("{pad}{} {text}", self.sym),
            }
        };
        line.trim_end().to_string()
    }
}

impl Color {
    fn paint(self, s: &str) -> String {
        let code = match self {
            Color::Red => "31",
            Color::Green => "32",
            Color::Yellow => "33",
            Color::Cyan => "36",
        };
        format!("\x1b[{code}m{s}\x1b[0m")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::lines::{field_lines, tests::change, Line};

    #[test]
    fn color_marks_the_changed_words() {
        let c = change(
            "d",
            Some(json!("one two three\nfour")),
            Some(json!("one TWO three\nfour")),
        );
        let mut lines = Vec::new();
        field_lines(&c, &mut lines);
        let colored: Vec<String> = lines.iter().map(|l| l.human(true)).collect();
        assert_eq!(
            colored[1],
            "          \x1b[33m~\x1b[0m one \x1b[31m[-two-]\x1b[0m\x1b[32m{+TWO+}\x1b[0m three"
        );
        assert!(lines[2].human_hidden, "the + half is shown on the - line");
        assert_eq!(
            lines[1].human(false),
            "          ~ one [-two-]{+TWO+} three"
        );
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let line = Line::heading("evil\x1b[2Jname".into());
        assert_eq!(line.human(false), "evil\\u{1b}[2Jname");
        assert_eq!(line.markdown(), "evil\\u{1b}[2Jname");
    }
}
