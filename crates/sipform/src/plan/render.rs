//! Plan rendering: human text (Terraform-like), Markdown (a PR comment) and JSON (the saved
//! form), plus the JSON Schema of that saved form.
//!
//! Every format is a pure function of the [`Plan`]: no I/O, no clock, so snapshot tests pin
//! them exactly. Secrets never reach the plan model, but the human and Markdown forms still
//! redact any field flagged `sensitive` or named like a credential, so a mistake upstream
//! cannot leak one into a terminal or a PR comment.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;
use similar::{ChangeTag, DiffTag, TextDiff};

use super::{Action, FieldChange, Op, Plan, RestaurantPlan, Summary};
use crate::model::secret::REDACTED;

/// Field names whose values are credentials wherever they appear (last path segment,
/// compared without case): redacted even if the plan forgot `sensitive: true`.
const SECRET_FIELDS: &[&str] = &["apiToken", "publicToken", "sipPassword", "apiKey"];

/// Strings longer than this (in characters) are shown as a line diff, not inline.
const INLINE_MAX: usize = 60;

/// Unchanged lines kept around each change in a line diff; the rest are counted, not shown.
const DIFF_CONTEXT: usize = 3;

/// GitHub refuses a comment longer than this many characters.
pub const MARKDOWN_MAX_CHARS: usize = 65_536;

/// Room kept free for the truncation notice and the closing lines of the comment.
const MARKDOWN_RESERVE: usize = 512;

/// The per-restaurant table is cut at this size so the details keep most of the budget.
const MARKDOWN_TABLE_MAX_CHARS: usize = 24_000;

/// The message for a plan with nothing to do (also what `--detailed-exitcode` 0 means).
pub const NO_CHANGES: &str = "No changes. The server matches the configuration.";

// ---------------------------------------------------------------------------------------------
// Human

/// The plan as a person reads it on a terminal. `color` adds ANSI colors (callers pass whether
/// stdout is a terminal and `NO_COLOR` is unset).
pub fn human(plan: &Plan, color: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "sipform plan for {}", printable(&plan.server_url));
    if !plan.targets.is_empty() {
        let targets: Vec<&str> = plan.targets.iter().map(|t| t.as_str()).collect();
        let _ = writeln!(out, "Targets: {}", printable(&targets.join(", ")));
    }
    let mut blocks = Vec::new();
    if plan.account.op() != Op::NoOp {
        blocks.push(account_lines(&plan.account));
    }
    blocks.extend(
        plan.restaurants
            .iter()
            .filter(|r| is_listed(r))
            .map(restaurant_lines),
    );
    for block in blocks {
        out.push('\n');
        for line in block {
            out.push_str(&line.human(color));
            out.push('\n');
        }
    }
    out.push('\n');
    out.push_str(&summary_line(plan));
    out.push('\n');
    out
}

/// The last line of every human plan: what `apply` would do, in numbers.
pub fn summary_line(plan: &Plan) -> String {
    if !plan.has_changes() {
        return NO_CHANGES.to_string();
    }
    let s = plan.summary;
    let mut line = format!(
        "Plan: {} to add, {} to change, {} to delete",
        s.add, s.change, s.delete
    );
    if s.adopt > 0 {
        let _ = write!(line, ", {} to adopt", s.adopt);
    }
    line.push('.');
    line
}

/// A restaurant is shown when it has anything to say: an action other than no-op, or a note
/// (adopts count, unlike [`RestaurantPlan::has_changes`], because they write state).
fn is_listed(r: &RestaurantPlan) -> bool {
    !r.notes.is_empty() || r.actions.iter().any(|a| a.op() != Op::NoOp)
}

/// One line of a plan, kept structured until the end because the human form puts the symbol
/// after the indent and the Markdown form puts it first (GitHub colors a `diff` block by a
/// line's first character), and only the symbol decides the color.
#[derive(Debug, Clone, PartialEq)]
struct Line {
    indent: usize,
    /// `+ ~ - <= !`, `" "` for an unchanged line of a text diff, empty for a heading.
    sym: &'static str,
    color: Option<Color>,
    /// Color the text too, not just the symbol (the lines of a text diff).
    color_text: bool,
    text: String,
    /// The text again, split into words a word diff marks as changed (`true`) or not: with
    /// color, the changed words of a replaced line are underlined. Empty when not a pair.
    words: Vec<(bool, String)>,
}

impl Line {
    fn heading(text: String) -> Line {
        Line {
            indent: 0,
            sym: "",
            color: None,
            color_text: false,
            text,
            words: Vec::new(),
        }
    }

    fn op(indent: usize, op: Op, text: String) -> Line {
        Line {
            indent,
            sym: op.symbol(),
            color: op_color(op),
            color_text: false,
            text,
            words: Vec::new(),
        }
    }

    fn human(&self, color: bool) -> String {
        let pad = " ".repeat(self.indent);
        let text = printable(&self.text);
        let line = if self.sym.is_empty() {
            if color {
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

    fn markdown(&self) -> String {
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

/// Free text (names, notes, descriptions) shown with its control characters replaced, so an
/// escape sequence in a restaurant name cannot repaint or clear the terminal.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

fn op_color(op: Op) -> Option<Color> {
    match op {
        Op::Create => Some(Color::Green),
        Op::Update => Some(Color::Yellow),
        Op::Delete => Some(Color::Red),
        Op::Adopt => Some(Color::Cyan),
        Op::NoOp => None,
    }
}

fn account_lines(account: &Action) -> Vec<Line> {
    let mut lines = Vec::new();
    action_lines(account, &mut lines);
    lines
}

fn restaurant_lines(r: &RestaurantPlan) -> Vec<Line> {
    let mut lines = vec![Line::heading(format!(
        "restaurant {} ({})",
        r.name, r.restaurant_id
    ))];
    for a in r.actions.iter().filter(|a| a.op() != Op::NoOp) {
        action_lines(a, &mut lines);
    }
    for note in &r.notes {
        lines.push(Line {
            indent: 2,
            sym: "!",
            color: Some(Color::Yellow),
            color_text: false,
            text: note.clone(),
            words: Vec::new(),
        });
    }
    lines
}

fn action_lines(a: &Action, lines: &mut Vec<Line>) {
    let mut head = describe(a);
    if let Some(id) = a.remote_id() {
        let _ = write!(head, " ({id})");
    }
    if let Some(reason) = a.reason() {
        let _ = write!(head, " ({reason})");
    }
    lines.push(Line::op(2, a.op(), head));
    for change in a.changes() {
        field_lines(change, lines);
    }
}

/// `tool check_availability`, `agent "Chez Marco"`: tool names are identifiers, the other
/// names are free text and so quoted.
fn describe(a: &Action) -> String {
    a.resource().describe(a.name())
}

/// Whether a field's values must not be printed: flagged by the plan, or named like a secret.
pub fn is_sensitive(change: &FieldChange) -> bool {
    change.sensitive || {
        let last = change.path.rsplit('.').next().unwrap_or(&change.path);
        SECRET_FIELDS.iter().any(|s| s.eq_ignore_ascii_case(last))
    }
}

const FIELD_INDENT: usize = 6;
const DIFF_INDENT: usize = 10;

fn field_lines(c: &FieldChange, lines: &mut Vec<Line>) {
    let op = match (&c.before, &c.after) {
        (None, Some(_)) => Op::Create,
        (Some(_), None) => Op::Delete,
        _ => Op::Update,
    };
    if is_sensitive(c) {
        lines.push(Line::op(
            FIELD_INDENT,
            op,
            format!("{}: {REDACTED}", c.path),
        ));
        return;
    }
    let long = [&c.before, &c.after].into_iter().flatten().any(is_long);
    if long {
        lines.push(Line::op(FIELD_INDENT, op, format!("{}:", c.path)));
        let before = c.before.as_ref().map(block_text).unwrap_or_default();
        let after = c.after.as_ref().map(block_text).unwrap_or_default();
        text_diff_lines(&before, &after, lines);
        return;
    }
    let text = match (&c.before, &c.after) {
        (Some(b), Some(a)) => format!("{}: {b} → {a}", c.path),
        (None, Some(v)) | (Some(v), None) => format!("{}: {v}", c.path),
        (None, None) => c.path.clone(),
    };
    lines.push(Line::op(FIELD_INDENT, op, text));
}

/// Too long or too tall to read inline: multi-line or long strings, large objects.
fn is_long(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\n') || s.chars().count() > INLINE_MAX,
        other => other.to_string().chars().count() > INLINE_MAX,
    }
}

/// What a line diff compares: a string's own text, or pretty JSON for anything else.
fn block_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string()),
    }
}

/// A unified line diff, `-`/`+`/` ` prefixed, unchanged stretches folded into a count.
/// Replaced lines are paired and word-diffed, so color can point at the words that changed.
fn text_diff_lines(old: &str, new: &str, lines: &mut Vec<Line>) {
    let diff = TextDiff::configure()
        .timeout(DIFF_TIMEOUT)
        .diff_lines(old, new);
    let (old_lines, new_lines) = (diff.old_slices(), diff.new_slices());
    let mut shown_to = 0;
    for group in diff.grouped_ops(DIFF_CONTEXT) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let start = first.old_range().start;
        if start > shown_to {
            lines.push(hidden_line(start - shown_to));
        }
        for op in &group {
            let (tag, old_range, new_range) = op.as_tag_tuple();
            let olds = old_lines.get(old_range).unwrap_or_default();
            let news = new_lines.get(new_range).unwrap_or_default();
            match tag {
                DiffTag::Equal => lines.extend(olds.iter().map(|l| diff_line(" ", l))),
                DiffTag::Delete => lines.extend(olds.iter().map(|l| diff_line("-", l))),
                DiffTag::Insert => lines.extend(news.iter().map(|l| diff_line("+", l))),
                DiffTag::Replace => {
                    let mut removed: Vec<Line> = olds.iter().map(|l| diff_line("-", l)).collect();
                    let mut added: Vec<Line> = news.iter().map(|l| diff_line("+", l)).collect();
                    for (r, a) in removed.iter_mut().zip(added.iter_mut()) {
                        (r.words, a.words) = word_diff(&r.text, &a.text);
                    }
                    lines.extend(removed);
                    lines.extend(added);
                }
            }
        }
        shown_to = last.old_range().end;
    }
    if old_lines.len() > shown_to && shown_to > 0 {
        lines.push(hidden_line(old_lines.len() - shown_to));
    }
}

/// A line diff gives up on minimality after this long, so a huge value cannot hang a plan.
const DIFF_TIMEOUT: Duration = Duration::from_millis(500);

fn diff_line(sym: &'static str, text: &str) -> Line {
    Line {
        indent: DIFF_INDENT,
        sym,
        color: match sym {
            "-" => Some(Color::Red),
            "+" => Some(Color::Green),
            _ => None,
        },
        color_text: true,
        text: text.trim_end().to_string(),
        words: Vec::new(),
    }
}

/// The old and new line split into words, each marked changed or not.
type Words = Vec<(bool, String)>;

fn word_diff(old: &str, new: &str) -> (Words, Words) {
    let diff = TextDiff::configure()
        .timeout(DIFF_TIMEOUT)
        .diff_words(old, new);
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    for change in diff.iter_all_changes() {
        let word = change.value().to_string();
        match change.tag() {
            ChangeTag::Equal => {
                removed.push((false, word.clone()));
                added.push((false, word));
            }
            ChangeTag::Delete => removed.push((true, word)),
            ChangeTag::Insert => added.push((true, word)),
        }
    }
    (removed, added)
}

fn hidden_line(n: usize) -> Line {
    let s = if n == 1 { "" } else { "s" };
    Line {
        indent: DIFF_INDENT,
        sym: " ",
        color: None,
        color_text: false,
        text: format!("# ({n} unchanged line{s} hidden)"),
        words: Vec::new(),
    }
}

/// ANSI colors; a handful of escape codes does not need a crate.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Color {
    Red,
    Green,
    Yellow,
    Cyan,
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

// ---------------------------------------------------------------------------------------------
// Markdown

/// The plan as a GitHub PR comment: totals and per-restaurant counts in tables, then one
/// collapsed diff per restaurant. Always fits GitHub's comment limit: details that do not fit
/// are left out and counted, the tables stay.
pub fn markdown(plan: &Plan) -> String {
    let listed: Vec<&RestaurantPlan> = plan.restaurants.iter().filter(|r| is_listed(r)).collect();
    let mut out = String::from("### sipform plan\n\n");
    let _ = writeln!(out, "**{}**\n", md_escape(&summary_line(plan)));
    let mut context = format!("Server: {}", md_escape(&plan.server_url));
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
            html_escape(plan.account.name()),
            counts_phrase(account)
        );
        sections.push(details(&title, &account_lines(&plan.account)));
    }
    for r in &listed {
        let title = format!(
            "{} ({}): {}",
            html_escape(&r.name),
            html_escape(r.restaurant_id.as_str()),
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

/// For text inside HTML (`<summary>`), where Markdown's backslash escapes do not apply.
fn html_escape(s: &str) -> String {
    escape(s, "&#124;")
}

/// Names come from the inventory: keep them from breaking a table cell or opening HTML.
fn md_escape(s: &str) -> String {
    escape(s, "\\|")
}

/// HTML-escapes `<`, `>`, `&`, flattens line breaks, and writes `|` as `pipe` (a table cell
/// and an HTML element need different escapes for it).
fn escape(s: &str, pipe: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => out.push_str(pipe),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// JSON

/// The saved form: exactly the serde form of [`Plan`], pretty, with a trailing newline, so
/// `plan --json` and `plan --out` are the same document and `apply FILE` reads either.
pub fn json(plan: &Plan) -> String {
    // A Plan serializes infallibly: every map key is a string and no type has a failing
    // Serialize impl.
    let mut s = serde_json::to_string_pretty(plan).expect("a Plan always serializes to JSON");
    s.push('\n');
    s
}

/// The JSON Schema of the saved plan, committed as `schema/plan.schema.json`.
pub fn plan_schema() -> schemars::Schema {
    schemars::schema_for!(Plan)
}

/// [`plan_schema`] as the committed file holds it: pretty JSON with a trailing newline.
pub fn plan_schema_json() -> String {
    let mut s =
        serde_json::to_string_pretty(&plan_schema()).expect("a schema always serializes to JSON");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(path: &str, before: Option<Value>, after: Option<Value>) -> FieldChange {
        FieldChange {
            path: path.into(),
            before,
            after,
            sensitive: false,
        }
    }

    fn rendered(c: &FieldChange) -> Vec<String> {
        let mut lines = Vec::new();
        field_lines(c, &mut lines);
        lines.iter().map(|l| l.human(false)).collect()
    }

    #[test]
    fn credential_names_are_redacted_without_the_flag() {
        for path in [
            "apiToken",
            "agent.publicToken",
            "sip.SIPPASSWORD",
            "x.apiKey",
        ] {
            let c = change(path, Some(json!("old-secret")), Some(json!("new-secret")));
            let text = rendered(&c).join("\n");
            assert!(text.contains(REDACTED), "{path}: {text}");
            assert!(!text.contains("secret"), "{path}: {text}");
        }
    }

    #[test]
    fn short_values_are_inline_compact_json() {
        let c = change("aiVoice", Some(json!("sage")), Some(json!("alloy")));
        assert_eq!(rendered(&c), vec![r#"      ~ aiVoice: "sage" → "alloy""#]);
        let c = change("config", None, Some(json!({"a": [1, 2]})));
        assert_eq!(rendered(&c), vec![r#"      + config: {"a":[1,2]}"#]);
    }

    #[test]
    fn long_strings_become_a_line_diff() {
        let c = change(
            "description",
            Some(json!("a\nb\nc")),
            Some(json!("a\nB\nc")),
        );
        assert_eq!(
            rendered(&c),
            vec![
                "      ~ description:",
                "            a",
                "          - b",
                "          + B",
                "            c",
            ]
        );
    }

    #[test]
    fn unchanged_lines_far_from_a_change_are_counted() {
        let old: Vec<String> = (0..20).map(|i| format!("line {i}")).collect();
        let mut new = old.clone();
        new[10] = "changed".into();
        let c = change(
            "d",
            Some(json!(old.join("\n"))),
            Some(json!(new.join("\n"))),
        );
        let lines = rendered(&c);
        assert_eq!(lines[1], "            # (7 unchanged lines hidden)");
        assert_eq!(
            lines.last().map(String::as_str),
            Some("            # (6 unchanged lines hidden)")
        );
    }

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
    fn color_underlines_the_changed_words() {
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
            "          \x1b[31m- one \x1b[4mtwo\x1b[24m three\x1b[0m"
        );
        assert_eq!(
            colored[2],
            "          \x1b[32m+ one \x1b[4mTWO\x1b[24m three\x1b[0m"
        );
        assert_eq!(lines[1].human(false), "          - one two three");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let line = Line::heading("evil\x1b[2Jname".into());
        assert_eq!(line.human(false), "evil\u{FFFD}[2Jname");
        assert_eq!(line.markdown(), "evil\u{FFFD}[2Jname");
    }

    #[test]
    fn a_fence_outlasts_backticks_inside() {
        let section = details("t", &[Line::heading("a ``` b".into())]);
        assert!(section.contains("\n````diff\na ``` b\n````\n"), "{section}");
    }

    #[test]
    fn escapes() {
        assert_eq!(md_escape("a|b<c>"), "a\\|b&lt;c&gt;");
        assert_eq!(html_escape("a|b<c>&"), "a&#124;b&lt;c&gt;&amp;");
    }
}
