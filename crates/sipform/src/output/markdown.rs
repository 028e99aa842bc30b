//! The plan as a GitHub pull-request comment, read top down: a hidden marker (CI finds and
//! updates its one comment by it), the summary, one line per distinct change, then the details
//! collapsed (a change shared by many restaurants once, with its restaurants), and how to apply
//! it. Never longer than GitHub accepts: only the per-restaurant lists and details are cut,
//! never the list of shared changes. Every value a comment shows (names, ids, the server URL,
//! targets) goes through [`md_escape`] or a code span, so tenant data cannot render as
//! Markdown, break out or open HTML; inside the `diff` blocks nothing is interpreted, and the
//! fence is longer than any backtick run.

use std::collections::HashMap;
use std::fmt::Write as _;

use similar::ChangeTag;

use super::lines::{
    account_lines, changed_fields, group_lines, group_title, is_listed_apart, printable,
    render_side, restaurant_lines, summary_line, thousands, Line,
};
use crate::plan::{groups, Action, ChangeGroup, Grouping, Op, Plan, RestaurantPlan, Summary};

/// GitHub refuses a comment longer than this many characters.
pub const MARKDOWN_MAX_CHARS: usize = 65_536;

/// The first line of every comment: CI updates the comment holding it instead of adding one.
pub const COMMENT_MARKER: &str = "<!-- sipform-plan -->";

/// Room kept free for the truncation notices.
const MARKDOWN_RESERVE: usize = 1_024;

/// The restaurant-specific lines of the change list stop at this size, so the shared changes
/// and their details keep the budget.
const CHANGE_LIST_MAX_CHARS: usize = 16_000;

/// The list of shared changes stops at this size (thousands of them): the comment must fit.
/// With the other caps and the reserve, the whole comment stays under GitHub's limit.
const SHARED_LIST_MAX_CHARS: usize = 40_000;

/// Targets named in the comment's context line; the rest are counted.
const TARGETS_SHOWN: usize = 10;

/// A restaurant with more changes of its own than this is one line of the change list.
const RESTAURANT_ITEMS_MAX: usize = 3;

/// A group's list of restaurants is cut at this size (the rest are counted).
const GROUP_LIST_MAX_CHARS: usize = 3_000;

/// Where the comment was made: said at its end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommentContext {
    /// The commit the plan was made from (`GITHUB_SHA`, or `git rev-parse HEAD`).
    pub commit: Option<String>,
}

/// [`markdown_comment`] without a commit.
pub fn markdown(plan: &Plan) -> String {
    markdown_comment(plan, &CommentContext::default())
}

/// The plan as a GitHub PR comment (see the module's documentation). Always fits GitHub's
/// comment limit and always lists every shared change.
pub fn markdown_comment(plan: &Plan, ctx: &CommentContext) -> String {
    let grouping = groups(plan);
    let mut out = header(plan);
    let footer = footer(plan, ctx);
    let budget = MARKDOWN_MAX_CHARS - MARKDOWN_RESERVE - footer.chars().count();

    // One line per distinct change: the account, every group, then what is left per
    // restaurant (cut at CHANGE_LIST_MAX_CHARS, counted).
    let apart = listed_apart(plan, &grouping);
    let mut list = String::new();
    if plan.account.op() != Op::NoOp {
        let _ = writeln!(list, "- {}", action_item(&plan.account, None));
    }
    list.push_str(&shared_list(&grouping));
    list.push_str(&specific_list(&apart, &grouping));
    if !list.is_empty() {
        out.push('\n');
        out.push_str(&list);
    }

    let sections = detail_sections(plan, &grouping, &apart);
    push_sections(&mut out, &sections, budget);
    out.push_str(&footer);
    out
}

/// The marker, the summary, the duplicates' note and the context line (server, targets,
/// state serial).
fn header(plan: &Plan) -> String {
    let mut out = format!("{COMMENT_MARKER}\n");
    // sipform's own words and numbers: nothing to escape.
    let _ = writeln!(out, "### {}\n", summary_line(plan));
    // sipform's own words and numbers too.
    for line in super::guardrails::lines(plan) {
        let _ = writeln!(out, "> :warning: {line}\n");
    }
    for d in [
        super::duplicates::summary(plan),
        super::orphans::summary(plan),
    ]
    .into_iter()
    .flatten()
    {
        let _ = writeln!(out, "> {d}\n");
    }
    let _ = write!(
        out,
        "sipform plan for {}",
        md_escape(&crate::model::secret::redact_url(&plan.server_url))
    );
    if !plan.targets.is_empty() {
        let targets: Vec<String> = plan
            .targets
            .iter()
            .take(TARGETS_SHOWN)
            .map(|t| md_escape(t.as_str()))
            .collect();
        let _ = write!(out, " · targets: {}", targets.join(", "));
        if plan.targets.len() > TARGETS_SHOWN {
            let _ = write!(out, " and {} more", plan.targets.len() - TARGETS_SHOWN);
        }
    }
    let _ = writeln!(out, " · state serial {}", plan.state_serial);
    let revision = super::human::revision_lines(plan);
    if !revision.is_empty() {
        out.push('\n');
        for line in revision {
            let _ = writeln!(out, "{}  ", md_escape(&line));
        }
    }
    out
}

/// Lines of a list kept under a size: once one does not fit, it and every later one are
/// only counted.
struct Capped {
    text: String,
    chars: usize,
    left: usize,
    max: usize,
}

impl Capped {
    fn new(max: usize) -> Self {
        Capped {
            text: String::new(),
            chars: 0,
            left: 0,
            max,
        }
    }

    fn push(&mut self, item: String) {
        let len = item.chars().count();
        if self.left > 0 || self.chars + len > self.max {
            self.left += 1;
        } else {
            self.text.push_str(&item);
            self.chars += len;
        }
    }
}

/// Every shared change, one line each, unless there are thousands: the comment must fit first.
fn shared_list(grouping: &Grouping) -> String {
    let mut shared = Capped::new(SHARED_LIST_MAX_CHARS);
    for g in &grouping.groups {
        shared.push(format!("- {}\n", group_item(g)));
    }
    if shared.left > 0 {
        let _ = writeln!(
            shared.text,
            "- … and {} more shared changes (run `sipform plan` to see them all)",
            thousands(shared.left)
        );
    }
    shared.text
}

/// The restaurants with changes or notes of their own (beside the groups), with their index.
fn listed_apart<'p>(plan: &'p Plan, grouping: &Grouping) -> Vec<(usize, &'p RestaurantPlan)> {
    plan.restaurants
        .iter()
        .enumerate()
        .filter(|(ri, r)| is_listed_apart(r, &|ai: usize| grouping.is_grouped(*ri, ai)))
        .collect()
}

/// The changes and notes of restaurants listed apart, cut at `CHANGE_LIST_MAX_CHARS`.
fn specific_list(apart: &[(usize, &RestaurantPlan)], grouping: &Grouping) -> String {
    let mut specific = Capped::new(CHANGE_LIST_MAX_CHARS);
    for &(ri, r) in apart {
        let own: Vec<&Action> = r
            .actions
            .iter()
            .enumerate()
            .filter(|(ai, a)| a.op() != Op::NoOp && !grouping.is_grouped(ri, *ai))
            .map(|(_, a)| a)
            .collect();
        if own.len() > RESTAURANT_ITEMS_MAX {
            // A new or much-changed restaurant: one line, its details below.
            specific.push(format!(
                "- {} ({}): {}\n",
                md_escape(&r.name),
                md_escape(r.restaurant_id.as_str()),
                counts_phrase(Summary::of(own.iter().copied()))
            ));
        } else {
            for a in &own {
                specific.push(format!("- {}\n", action_item(a, Some(r))));
            }
        }
        for note in &r.notes {
            specific.push(format!(
                "- ! {} ({}): {}\n",
                md_escape(&r.name),
                md_escape(r.restaurant_id.as_str()),
                md_escape(note)
            ));
        }
    }
    if specific.left > 0 {
        let _ = writeln!(
            specific.text,
            "- … and {} more restaurant-specific changes (run `sipform plan` to see them all)",
            thousands(specific.left)
        );
    }
    specific.text
}

/// The details, collapsed: the account, the groups, then each restaurant's own changes.
fn detail_sections(
    plan: &Plan,
    grouping: &Grouping,
    apart: &[(usize, &RestaurantPlan)],
) -> Vec<String> {
    let names: HashMap<&str, &str> = plan
        .restaurants
        .iter()
        .map(|r| (r.restaurant_id.as_str(), r.name.as_str()))
        .collect();
    let mut sections = Vec::new();
    if plan.account.op() != Op::NoOp {
        let title = format!("account {}", md_escape(plan.account.name()));
        sections.push(details(&title, &account_lines(&plan.account), ""));
    }
    for g in &grouping.groups {
        sections.push(group_section(g, &names));
    }
    for &(ri, r) in apart {
        let grouped = |ai: usize| grouping.is_grouped(ri, ai);
        let own = Summary::of(
            r.actions
                .iter()
                .enumerate()
                .filter(|(ai, _)| !grouped(*ai))
                .map(|(_, a)| a),
        );
        let title = format!(
            "{} ({}): {}",
            md_escape(&r.name),
            md_escape(r.restaurant_id.as_str()),
            counts_phrase(own)
        );
        sections.push(details(&title, &restaurant_lines(r, &grouped)[1..], ""));
    }
    sections
}

/// A shared change's section: its lines, then the restaurants it is on (cut at
/// `GROUP_LIST_MAX_CHARS`, counted).
fn group_section(g: &ChangeGroup, names: &HashMap<&str, &str>) -> String {
    let title = format!("{} {}", g.op.symbol(), md_escape(&group_title(g)));
    let mut names_list = String::new();
    let mut shown = 0;
    for id in &g.restaurant_ids {
        let item = format!(
            "{} ({})",
            md_escape(names.get(id.as_str()).unwrap_or(&"?")),
            md_escape(id.as_str())
        );
        if names_list.chars().count() + item.chars().count() > GROUP_LIST_MAX_CHARS {
            break;
        }
        if shown > 0 {
            names_list.push_str(", ");
        }
        names_list.push_str(&item);
        shown += 1;
    }
    if shown < g.count {
        let _ = write!(
            names_list,
            " … and {} more (`sipform plan --json` lists them all)",
            thousands(g.count - shown)
        );
    }
    let after = format!("On {} agents: {names_list}\n", thousands(g.count));
    details(&title, &group_lines(g)[1..], &after)
}

/// Appends the sections that fit in `budget` characters (of the whole comment so far), then
/// a note counting those left out.
fn push_sections(out: &mut String, sections: &[String], budget: usize) {
    let mut used = out.chars().count();
    let mut shown = 0;
    for section in sections {
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
        let left = sections.len() - shown;
        let what = if left == 1 { "section" } else { "sections" };
        let _ = write!(
            out,
            "\n> [!NOTE]\n> {left} more detail {what} left out to fit GitHub's comment size \
             limit (the list above names every shared change); run `sipform plan` to see the \
             whole plan.\n"
        );
    }
}

/// How to apply the plan, and the commit it was made from.
fn footer(plan: &Plan, ctx: &CommentContext) -> String {
    let mut out = String::new();
    if plan.has_changes() || plan.summary.adopt > 0 {
        out.push_str(
            "To apply: merge this pull request (the workflow applies the saved plan, or a fresh \
             one if it went stale), or run `sipform apply plan.json` with the artifact.\n",
        );
    }
    if let Some(commit) = &ctx.commit {
        let _ = writeln!(out, "Made from commit {}.", md_escape(commit));
    }
    if out.is_empty() {
        out
    } else {
        format!("\n---\n{out}")
    }
}

/// `~ tool `end_call`: description changed, 1,000 agents`.
fn group_item(g: &ChangeGroup) -> String {
    format!(
        "{} {} {}: {}, {} agents",
        g.op.symbol(),
        g.resource.label(),
        code(&g.name),
        what_changed(g.op, &g.changes),
        thousands(g.count)
    )
}

/// `~ agent `Chez Marco` (r-1): aiVoice changed`, for a change of one restaurant (or the
/// account when `r` is `None`).
fn action_item(a: &Action, r: Option<&RestaurantPlan>) -> String {
    let mut item = format!(
        "{} {} {}",
        a.op().symbol(),
        a.resource().label(),
        code(a.name())
    );
    if let Some(r) = r {
        if r.name != a.name() {
            let _ = write!(item, " of {}", md_escape(&r.name));
        }
        let _ = write!(item, " ({})", md_escape(r.restaurant_id.as_str()));
    }
    let _ = write!(item, ": {}", what_changed(a.op(), &a.changes()));
    if let Some(reason) = a.reason() {
        let _ = write!(item, " ({})", md_escape(&reason));
    }
    item
}

fn what_changed(op: Op, changes: &[crate::plan::FieldChange]) -> String {
    match op {
        Op::Create => "created".into(),
        Op::Delete => "deleted".into(),
        Op::Adopt => "adopted".into(),
        Op::NoOp => "unchanged".into(),
        Op::Update => format!("{} changed", md_escape(&changed_fields(changes))),
    }
}

/// A name as a code span (nothing inside is interpreted); escaped text if it holds a backtick
/// or a line break, which a code span cannot carry safely.
fn code(name: &str) -> String {
    if name.is_empty() || name.contains(['`', '\n', '\r']) {
        md_escape(name)
    } else {
        format!("`{}`", printable(name))
    }
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
/// (`+   tool x`) because GitHub colors a diff line by its first character, and only the
/// changed lines (unchanged context is what a reviewer already knows). The fence is longer
/// than any run of backticks inside, so no name can close it. `after` (Markdown, already
/// escaped) follows the block.
fn details(title: &str, lines: &[Line], after: &str) -> String {
    let body: Vec<String> = lines
        .iter()
        .filter(|l| l.sym != " ")
        .map(Line::markdown)
        .collect();
    let body = body.join("\n");
    let fence = "`".repeat(longest_backtick_run(&body).max(2) + 1);
    let after = if after.is_empty() {
        String::new()
    } else {
        format!("{after}\n")
    };
    format!(
        "<details><summary>{title}</summary>\n\n{fence}diff\n{body}\n{fence}\n\n{after}</details>\n"
    )
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
        // GitHub finds mentions (`@team`), issue references (`#1`), e-mail and `www.`
        // autolinks, URLs (`scheme://`) and `:emoji:` in the rendered text, after references
        // are decoded: an invisible word joiner after `@`, `#`, `:` and `www.` breaks every
        // such pattern while the text reads the same.
        let www = c == '.' && {
            let before: String = out.chars().rev().skip(1).take(3).collect();
            before.eq_ignore_ascii_case("www")
        };
        if matches!(c, '@' | '#' | ':') || www {
            out.push(WORD_JOINER);
        }
    }
    out
}

/// U+2060: invisible, no width, not a word character, so no pattern spans it.
const WORD_JOINER: char = '\u{2060}';

impl Line {
    /// The symbol in column 0, then the indent: GitHub colors a `diff` line by its first
    /// character.
    pub(super) fn markdown(&self) -> String {
        let text = match (&self.merged, self.sym) {
            (Some(parts), "-") => printable(&render_side(parts, ChangeTag::Delete)),
            (Some(parts), "+") => printable(&render_side(parts, ChangeTag::Insert)),
            _ => printable(&self.text),
        };
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
        let section = details("t", &[Line::heading("a ``` b".into())], "");
        assert!(section.contains("\n````diff\na ``` b\n````\n"), "{section}");
    }

    #[test]
    fn escapes() {
        assert_eq!(md_escape("a|b<c>&"), "a&#124;b&lt;c&gt;&amp;");
        assert_eq!(
            md_escape("**x** [y](https://evil)"),
            "&#42;&#42;x&#42;&#42; &#91;y&#93;&#40;https&#58;\u{2060}//evil&#41;"
        );
        assert_eq!(
            md_escape("@team a@b.c #1 WWW.x.y"),
            "@\u{2060}team a@\u{2060}b.c #\u{2060}1 WWW.\u{2060}x.y"
        );
        assert_eq!(md_escape("a\nb\\`c`"), "a b&#92;&#96;c&#96;");
        assert_eq!(md_escape("Chez Marco r-001"), "Chez Marco r-001");
    }
}
