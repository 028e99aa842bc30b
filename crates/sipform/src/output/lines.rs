//! The plan as structured lines, shared by the human and Markdown forms.
//!
//! A line keeps its indent, symbol and color apart until the end because the human form puts
//! the symbol after the indent and the Markdown form puts it first (GitHub colors a `diff` block
//! by a line's first character). Secrets never reach the plan model, but values of any field
//! flagged `sensitive` or named like a credential are redacted here anyway, so a mistake
//! upstream cannot leak one into a terminal or a PR comment.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;
use similar::{ChangeTag, DiffTag, TextDiff};

use crate::model::secret::REDACTED;
use crate::plan::{Action, ChangeGroup, FieldChange, Op, Plan, RestaurantPlan};

/// Field names whose values are credentials wherever they appear (last path segment,
/// compared without case): redacted even if the plan forgot `sensitive: true`.
const SECRET_FIELDS: &[&str] = &["apiToken", "publicToken", "sipPassword", "apiKey"];

/// Strings longer than this (in characters) are shown as a line diff, not inline.
const INLINE_MAX: usize = 60;

/// Unchanged lines kept around each change in a line diff; the rest are counted, not shown.
const DIFF_CONTEXT: usize = 3;

/// The message for a plan with nothing to do (also what `--detailed-exitcode` 0 means).
pub const NO_CHANGES: &str = "No changes. The server matches the configuration.";

/// The last line of every human plan: what `apply` would do, in numbers (Markdown shows it too).
pub(crate) fn summary_line(plan: &Plan) -> String {
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

/// A restaurant is shown apart when it has anything of its own to say: an action other than a
/// no-op that no group shows, or a note (adopts count, unlike
/// [`RestaurantPlan::has_changes`], because they write state). A restaurant whose every change
/// is shared appears only in the groups' lists.
pub(super) fn is_listed_apart(r: &RestaurantPlan, grouped: &dyn Fn(usize) -> bool) -> bool {
    !r.notes.is_empty()
        || r.actions
            .iter()
            .enumerate()
            .any(|(i, a)| a.op() != Op::NoOp && !grouped(i))
}

/// `1,000`: counts a reviewer reads at a glance.
pub(super) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `tool end_call on 1,000 agents (found by name)`: a group's heading, without its symbol.
pub(super) fn group_title(g: &ChangeGroup) -> String {
    let what = if g.count == 1 { "agent" } else { "agents" };
    let mut head = format!(
        "{} on {} {what}",
        g.resource.describe(&g.name),
        thousands(g.count)
    );
    if let Some(reason) = &g.reason {
        let _ = write!(head, " ({reason})");
    }
    head
}

/// A group's lines: its heading and field diffs, shown once whatever the count.
pub(super) fn group_lines(g: &ChangeGroup) -> Vec<Line> {
    let mut lines = vec![Line::op(0, g.op, group_title(g))];
    for change in &g.changes {
        field_lines_in(g.op, change, &mut lines);
    }
    lines
}

/// The fields a change touches, for a one-line summary (`description, sortOrder`).
pub(super) fn changed_fields(changes: &[FieldChange]) -> String {
    let mut fields: Vec<&str> = Vec::new();
    for c in changes {
        let top = c.path.split('.').next().unwrap_or(&c.path);
        if !fields.contains(&top) {
            fields.push(top);
        }
    }
    fields.join(", ")
}

/// One line of a plan, kept structured until the end because the human form puts the symbol
/// after the indent and the Markdown form puts it first (GitHub colors a `diff` block by a
/// line's first character), and only the symbol decides the color.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Line {
    pub(super) indent: usize,
    /// `+ ~ - <= !`, `" "` for an unchanged line of a text diff, empty for a heading.
    pub(super) sym: &'static str,
    pub(super) color: Option<Color>,
    /// Color the text too, not just the symbol (the lines of a text diff).
    pub(super) color_text: bool,
    pub(super) text: String,
    /// The text again, split into words a word diff marks as changed (`true`) or not: with
    /// color, the changed words of a replaced line are underlined. Empty when not a pair.
    pub(super) words: Vec<(bool, String)>,
    /// The human form of a replaced pair, on its `-` line: the new line's words with the
    /// removed and added ones marked (`[-old-]{+new+}`), long unchanged runs elided.
    pub(super) merged: Option<Vec<(ChangeTag, String)>>,
    /// The `+` half of a merged pair: the human form shows it on the `-` line instead.
    pub(super) human_hidden: bool,
}

impl Line {
    pub(super) fn heading(text: String) -> Line {
        Line {
            indent: 0,
            sym: "",
            color: None,
            color_text: false,
            text,
            words: Vec::new(),
            merged: None,
            human_hidden: false,
        }
    }

    pub(super) fn op(indent: usize, op: Op, text: String) -> Line {
        Line {
            indent,
            sym: op.symbol(),
            color: op_color(op),
            color_text: false,
            text,
            words: Vec::new(),
            merged: None,
            human_hidden: false,
        }
    }
}

/// Free text (names, notes, descriptions) as [`super::escape`] shows it, so an escape
/// sequence in a restaurant name cannot repaint or clear the terminal, nor a line break or a
/// bidi override fake or hide a line.
pub(super) fn printable(s: &str) -> String {
    super::escape(s).into_owned()
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

pub(super) fn account_lines(account: &Action) -> Vec<Line> {
    let mut lines = Vec::new();
    action_lines(account, &mut lines);
    lines
}

/// A restaurant's block: its heading, its actions but no-ops and those `grouped` says a group
/// shows (by action index), its notes.
pub(super) fn restaurant_lines(r: &RestaurantPlan, grouped: &dyn Fn(usize) -> bool) -> Vec<Line> {
    let mut lines = vec![Line::heading(format!(
        "restaurant {} ({})",
        r.name, r.restaurant_id
    ))];
    for (_, a) in r
        .actions
        .iter()
        .enumerate()
        .filter(|(i, a)| a.op() != Op::NoOp && !grouped(*i))
    {
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
            merged: None,
            human_hidden: false,
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
    for change in a.changes().iter() {
        field_lines_in(a.op(), change, lines);
    }
}

/// `tool check_availability`, `agent "Chez Marco"`: tool names are identifiers, the other
/// names are free text and so quoted.
fn describe(a: &Action) -> String {
    a.resource().describe(a.name())
}

/// Whether a field's values must not be printed: flagged by the plan, or named like a secret.
pub(crate) fn is_sensitive(change: &FieldChange) -> bool {
    change.sensitive || {
        let last = change.path.rsplit('.').next().unwrap_or(&change.path);
        SECRET_FIELDS.iter().any(|s| s.eq_ignore_ascii_case(last))
    }
}

const FIELD_INDENT: usize = 6;
const DIFF_INDENT: usize = 10;

#[cfg(test)]
pub(super) fn field_lines(c: &FieldChange, lines: &mut Vec<Line>) {
    field_lines_in(Op::Update, c, lines)
}

/// A field's lines within an action (or group) of op `parent`. A write-only field carries no
/// values at all: in a create it reads `+ sipPassword: (sensitive)`, in an update
/// `~ sipPassword: (sensitive, changed)`.
pub(super) fn field_lines_in(parent: Op, c: &FieldChange, lines: &mut Vec<Line>) {
    let op = match (&c.before, &c.after) {
        (None, Some(_)) => Op::Create,
        (Some(_), None) => Op::Delete,
        (None, None) if parent == Op::Create => Op::Create,
        _ => Op::Update,
    };
    if is_sensitive(c) && c.before.is_none() && c.after.is_none() && op == Op::Update {
        lines.push(Line::op(
            FIELD_INDENT,
            op,
            format!("{}: (sensitive, changed)", c.path),
        ));
        return;
    }
    if is_sensitive(c) {
        lines.push(Line::op(
            FIELD_INDENT,
            op,
            format!("{}: {REDACTED}", c.path),
        ));
        return;
    }
    let long = [c.before.as_deref(), c.after.as_deref()]
        .into_iter()
        .flatten()
        .any(is_long);
    if long {
        lines.push(Line::op(FIELD_INDENT, op, format!("{}:", c.path)));
        let before = c.before.as_deref().map(block_text).unwrap_or_default();
        let after = c.after.as_deref().map(block_text).unwrap_or_default();
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
                        let merged = merged_words(&r.text, &a.text);
                        a.merged = Some(merged.clone());
                        r.merged = Some(merged);
                        a.human_hidden = true;
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
        merged: None,
        human_hidden: false,
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

/// The words of a replaced line, tagged: what the human form prints as `[-old-]{+new+}`.
fn merged_words(old: &str, new: &str) -> Vec<(ChangeTag, String)> {
    let diff = TextDiff::configure()
        .timeout(DIFF_TIMEOUT)
        .diff_words(old, new);
    let mut out: Vec<(ChangeTag, String)> = Vec::new();
    for change in diff.iter_all_changes() {
        match out.last_mut() {
            Some((tag, text)) if *tag == change.tag() => text.push_str(change.value()),
            _ => out.push((change.tag(), change.value().to_string())),
        }
    }
    out
}

/// Words of unchanged text kept on each side of a change; the rest becomes `…`.
const WORD_CONTEXT: usize = 6;

/// `…context [-old-]{+new+} context…`: the changed words marked, long unchanged runs elided.
/// `paint` wraps the marked parts (colors, or nothing).
pub(super) fn render_merged(
    parts: &[(ChangeTag, String)],
    paint: &dyn Fn(ChangeTag, &str) -> String,
) -> String {
    let mut out = String::new();
    let last = parts.len().saturating_sub(1);
    for (i, (tag, text)) in parts.iter().enumerate() {
        match tag {
            ChangeTag::Delete => out.push_str(&paint(*tag, &format!("[-{text}-]"))),
            ChangeTag::Insert => out.push_str(&paint(*tag, &format!("{{+{text}+}}"))),
            ChangeTag::Equal => out.push_str(&elide(text, i > 0, i < last)),
        }
    }
    out
}

/// One side of a replaced line (`Delete`: the old one, `Insert`: the new one), unchanged runs
/// elided as in [`render_merged`]: what a Markdown `diff` block shows, so a long line changed
/// by one word is not printed whole twice.
pub(super) fn render_side(parts: &[(ChangeTag, String)], side: ChangeTag) -> String {
    let mut out = String::new();
    let last = parts.len().saturating_sub(1);
    for (i, (tag, text)) in parts.iter().enumerate() {
        if *tag == ChangeTag::Equal {
            out.push_str(&elide(text, i > 0, i < last));
        } else if *tag == side {
            out.push_str(text);
        }
    }
    out
}

/// Unchanged text cut to [`WORD_CONTEXT`] words next to each change (`after` a change, `before`
/// one).
fn elide(text: &str, after: bool, before: bool) -> String {
    let words: Vec<&str> = text.split_inclusive(char::is_whitespace).collect();
    let keep = |n: usize| n.min(words.len());
    let head = if after { keep(WORD_CONTEXT) } else { 0 };
    let tail = if before { keep(WORD_CONTEXT) } else { 0 };
    if head + tail + 2 >= words.len() {
        return text.to_string();
    }
    let start: String = words[..head].concat();
    let end: String = words[words.len() - tail..].concat();
    let lead = if start.ends_with(char::is_whitespace) || start.is_empty() {
        ""
    } else {
        " "
    };
    let trail = if end.starts_with(char::is_whitespace) || end.is_empty() {
        ""
    } else {
        " "
    };
    format!("{start}{lead}…{trail}{end}")
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
        merged: None,
        human_hidden: false,
    }
}

/// ANSI colors; a handful of escape codes does not need a crate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Color {
    Red,
    Green,
    Yellow,
    Cyan,
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    pub(in crate::output) fn change(
        path: &str,
        before: Option<Value>,
        after: Option<Value>,
    ) -> FieldChange {
        FieldChange {
            path: path.into(),
            before: before.map(Box::new),
            after: after.map(Box::new),
            sensitive: false,
        }
    }

    fn rendered(c: &FieldChange) -> Vec<String> {
        let mut lines = Vec::new();
        field_lines(c, &mut lines);
        lines
            .iter()
            .filter(|l| !l.human_hidden)
            .map(|l| l.human(false))
            .collect()
    }

    #[test]
    fn a_write_only_field_reads_sensitive_in_a_create_and_changed_in_an_update() {
        let c = FieldChange {
            sensitive: true,
            ..change("sipPassword", None, None)
        };
        let show = |op: Op| {
            let mut lines = Vec::new();
            field_lines_in(op, &c, &mut lines);
            lines.iter().map(|l| l.human(false)).collect::<Vec<_>>()
        };
        assert_eq!(show(Op::Create), ["      + sipPassword: (sensitive)"]);
        assert_eq!(
            show(Op::Update),
            ["      ~ sipPassword: (sensitive, changed)"]
        );
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
                "          ~ [-b-]{+B+}",
                "            c",
            ]
        );
    }

    /// A long one-line description: only the changed words are marked, the unchanged text
    /// far from them elided.
    #[test]
    fn long_lines_show_the_changed_words_with_context() {
        let start = "When the caller has nothing more to ask, thank them warmly, wish them a good \
                     day, remind them of the opening hours if they asked about them, and";
        let c = change(
            "description",
            Some(json!(format!("{start} Raccroche."))),
            Some(json!(format!("{start} Raccroche poliment."))),
        );
        assert_eq!(
            rendered(&c),
            vec![
                "      ~ description:",
                "          ~ … if they asked about them, and [-Raccroche.-]{+Raccroche poliment.+}",
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
}
