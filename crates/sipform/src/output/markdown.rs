//! The plan as a GitHub pull-request comment: totals and per-restaurant counts in tables, one
//! collapsed `diff` block per restaurant, and never longer than GitHub accepts. Every value a
//! comment shows (names, ids, the server URL, targets) goes through [`md_escape`], so tenant
//! data cannot render as Markdown, break a table or open HTML; inside the `diff` blocks (notes,
//! field values) nothing is interpreted, and the fence is longer than any backtick run.

use std::fmt::Write as _;

use super::lines::{account_lines, is_listed, printable, restaurant_lines, summary_line, Line};
use crate::plan::{Op, Plan, RestaurantPlan, Summary};

/// GitHub refuses a comment longer than this many characters.
pub const MARKDOWN_MAX_CHARS: usize = 65_536;

/// Room kept free for the truncation notice and the closing lines of the comment.
const MARKDOWN_RESERVE: usize = 512;

/// The per-restaurant table is cut at this size so the details keep most of the budget.
const MARKDOWN_TABLE_MAX_CHARS: usize = 24_000;

/// The plan as a GitHub PR comment: totals and per-restaurant counts in tables, then one
/// collapsed diff per restaurant. Always fits GitHub's comment limit: details that do not fit
/// are left out and counted, the tables stay.
pub fn markdown(plan: &Plan) -> String {
    let listed: Vec<&RestaurantPlan> = plan.restaurants.iter().filter(|r| is_listed(r)).collect();
    let mut out = String::from("### sipform plan\n\n");
    // sipform's own words and numbers: nothing to escape.
    let _ = writeln!(out, "**{}**\n", summary_line(plan));
    let mut context = format!(
        "Server: {}",
        md_escape(&crate::config::redact_url(&plan.server_url))
    );
    if !plan.targets.is_empty() {
        let targets: Vec<String> = plan.targets.iter().map(|t| md_escape(t.as_str())).collect();
        let _ = write!(context, " · targets: {}", targets.join(", "));
    }
    let _ = writeln!(context, " · state serial {}", plan.state_serial);
    out.push_str(&context);
    out.push('\n');

    // Totals: the account, all restaurants together, and the plan's own summary.
    let account = Summary::of(std::iter::once(&plan.account));
    let restaurants = Summary::of(plan.restaurants.iter().flat_map(|r| r.actions.iter()));
    out.push_str("| | add | change | delete | adopt |\n|:--|--:|--:|--:|--:|\n");
    out.push_str(&count_row("account", account, false));
    out.push_str(&count_row(
        &format!("restaurants ({})", listed.len()),
        restaurants,
        false,
    ));
    out.push_str(&count_row("**total**", plan.summary, true));

    if !listed.is_empty() {
        out.push_str("\n| restaurant | id | add | change | delete | adopt |\n");
        out.push_str("|:--|:--|--:|--:|--:|--:|\n");
        let mut table = String::new();
        let mut table_chars = 0;
        let mut rows = 0;
        for r in &listed {
            let s = Summary::of(&r.actions);
            let row = format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                md_escape(&r.name),
                md_escape(r.restaurant_id.as_str()),
                s.add,
                s.change,
                s.delete,
                s.adopt
            );
            table_chars += row.chars().count();
            if table_chars > MARKDOWN_TABLE_MAX_CHARS {
                break;
            }
            table.push_str(&row);
            rows += 1;
        }
        if rows < listed.len() {
            let _ = writeln!(
                table,
                "| … {} more restaurants | | | | | |",
                listed.len() - rows
            );
        }
        out.push_str(&table);
    }

    let mut sections = Vec::new();
    if plan.account.op() != Op::NoOp {
        let title = format!(
            "account {}: {}",
            md_escape(plan.account.name()),
            counts_phrase(account)
        );
        sections.push(details(&title, &account_lines(&plan.account)));
    }
    for r in &listed {
        let title = format!(
            "{} ({}): {}",
            md_escape(&r.name),
            md_escape(r.restaurant_id.as_str()),
            counts_phrase(Summary::of(&r.actions))
        );
        sections.push(details(&title, &restaurant_lines(r)));
    }

    let budget = MARKDOWN_MAX_CHARS - MARKDOWN_RESERVE;
    let mut used = out.chars().count();
    let mut shown = 0;
    for section in &sections {
        let len = section.chars().count() + 1;
        if used + len > budget {
            break;
        }
        out.push('\n');
        out.push_str(section);
        used += len;
        shown += 1;
    }
    if shown < sections.len() {
        // The account section is first and small, so what is left out is restaurants.
        let left = sections.len() - shown;
        let what = if left == 1 {
            "restaurant"
        } else {
            "restaurants"
        };
        let _ = write!(
            out,
            "\n> [!NOTE]\n> {left} more {what} left out of the details to fit GitHub's comment \
             size limit (the tables above count them); run `sipform plan` to see the whole plan.\n"
        );
    }
    out
}

fn count_row(label: &str, s: Summary, bold: bool) -> String {
    let n = |v: usize| {
        if bold {
            format!("**{v}**")
        } else {
            v.to_string()
        }
    };
    format!(
        "| {label} | {} | {} | {} | {} |\n",
        n(s.add),
        n(s.change),
        n(s.delete),
        n(s.adopt)
    )
}

/// `14 to add, 1 to change`; zeros left out, since a section title is a glance.
fn counts_phrase(s: Summary) -> String {
    let parts: Vec<String> = [
        (s.add, "to add"),
        (s.change, "to change"),
        (s.delete, "to delete"),
        (s.adopt, "to adopt"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        "notes only".to_string()
    } else {
        parts.join(", ")
    }
}

/// One collapsed section holding the plan lines as a `diff` block, symbols in column 0
/// (`+   tool x`) because GitHub colors a diff line by its first character. The fence is
/// longer than any run of backticks inside, so no name can close it.
fn details(title: &str, lines: &[Line]) -> String {
    let body: Vec<String> = lines.iter().map(Line::markdown).collect();
    let body = body.join("\n");
    let fence = "`".repeat(longest_backtick_run(&body).max(2) + 1);
    format!("<details><summary>{title}</summary>\n\n{fence}diff\n{body}\n{fence}\n\n</details>\n")
}

fn longest_backtick_run(s: &str) -> usize {
    let mut best = 0;
    let mut run = 0;
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// The one escape for a value shown outside a code block, in a table cell, in running text or
/// inside `<summary>` alike: every character Markdown or HTML gives a meaning to becomes a
/// numeric character reference. GitHub decodes references in both Markdown and HTML, so the
/// text reads the same, but a reference never starts emphasis (`*`, `_`, `~`), a link or an
/// image (`[`, `]`, `(`, `)`, `!`), code (`` ` ``), an autolink (`<`, `:`), a tag or an
/// entity (`<`, `>`, `&`), an escape (`\`) or a cell (`|`); a backslash escape would show
/// as-is inside HTML. Line breaks are flattened (a table row is one line) and other control
/// characters replaced.
pub(super) fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '~' | '[' | ']' | '(' | ')' | '!' | '|' | ':' => {
                let _ = write!(out, "&#{};", u32::from(c));
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

impl Line {
    /// The symbol in column 0, then the indent: GitHub colors a `diff` line by its first
    /// character.
    pub(super) fn markdown(&self) -> String {
        let text = printable(&self.text);
        let pad = " ".repeat(self.indent);
        let line = if self.sym.is_empty() {
            format!("{pad}{text}")
        } else {
            format!("{}{pad} {text}", self.sym)
        };
        line.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::lines::{field_lines, tests::change};
    use super::*;

    /// A description line that starts with `- ` must stay an unchanged line in Markdown.
    #[test]
    fn markdown_moves_only_real_symbols() {
        let c = change(
            "d",
            Some(json!("- a\n- b\n- c")),
            Some(json!("- a\n- B\n- c")),
        );
        let mut lines = Vec::new();
        field_lines(&c, &mut lines);
        let md: Vec<String> = lines.iter().map(Line::markdown).collect();
        assert_eq!(
            md,
            vec![
                "~       d:",
                "            - a",
                "-           - b",
                "+           - B",
                "            - c",
            ]
        );
    }

    #[test]
    fn a_fence_outlasts_backticks_inside() {
        let section = details("t", &[Line::heading("a ``` b".into())]);
        assert!(section.contains("\n````diff\na ``` b\n````\n"), "{section}");
    }

    #[test]
    fn escapes() {
        assert_eq!(md_escape("a|b<c>&"), "a&#124;b&lt;c&gt;&amp;");
        assert_eq!(
            md_escape("**x** [y](https://evil)"),
            "&#42;&#42;x&#42;&#42; &#91;y&#93;&#40;https&#58;//evil&#41;"
        );
        assert_eq!(md_escape("a\nb\\`c`"), "a b&#92;&#96;c&#96;");
        assert_eq!(md_escape("Chez Marco r-001"), "Chez Marco r-001");
    }
}
