//! The one escaping function for tenant values (restaurant names, notes, ids, error texts that
//! quote them) on their way to a terminal or a CI log.
//!
//! A control character (ESC, CR, LF, NUL, DEL…), a bidirectional override or isolate (U+202E
//! and friends) and a zero-width character are shown escaped as `\u{…}` (`\n`, `\r`, `\t` by
//! name), so a value can neither repaint the terminal, hide text, fake a line ("No changes")
//! nor reorder what is shown. A tab stays a tab.
//! Under GitHub Actions (`GITHUB_ACTIONS=true`) a value also cannot issue a workflow command:
//! `::` at the start and `##[` anywhere are shown with their second character escaped.

use std::borrow::Cow;

/// Whether `c` is shown escaped: control, bidi and invisible formatting characters.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}'                  // Arabic letter mark
            | '\u{115F}' | '\u{1160}'   // Hangul fillers
            | '\u{180E}'                // Mongolian vowel separator
            | '\u{200B}'..='\u{200F}'   // zero-width space/joiners, LRM, RLM
            | '\u{2028}' | '\u{2029}'   // line and paragraph separators
            | '\u{202A}'..='\u{202E}'   // bidi embeddings and overrides
            | '\u{2060}'..='\u{206F}'   // word joiner, invisible operators, bidi isolates
            | '\u{3164}'                // Hangul filler
            | '\u{FE00}'..='\u{FE0F}'   // variation selectors
            | '\u{FEFF}'                // zero-width no-break space
            | '\u{FFF9}'..='\u{FFFB}'   // interlinear annotations
            | '\u{E0000}'..='\u{E007F}' // tags
        )
}

/// Whether this process runs as a GitHub Actions step.
fn in_github_actions() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("GITHUB_ACTIONS").is_some_and(|v| v == "true"))
}

/// `s` safe to print: see the module's comment. Borrowed when nothing needed escaping.
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_for(s, in_github_actions())
}

/// [`escape`], with GitHub Actions' workflow commands neutralised when `github` is set.
pub(crate) fn escape_for(s: &str, github: bool) -> Cow<'_, str> {
    let workflow = github && (s.starts_with("::") || s.contains("##["));
    if !workflow && !s.chars().any(|c| hidden(c) && c != '\t') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut prev = None;
    for (i, c) in s.char_indices() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push('\t'),
            c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            ':' if github && i == 1 && prev == Some(':') => out.push_str("\\u{3a}"),
            '#' if github && prev == Some('#') && s[i + 1..].starts_with('[') => {
                out.push_str("\\u{23}")
            }
            c => out.push(c),
        }
        prev = Some(c);
    }
    Cow::Owned(out)
}

/// Appends `line`, escaped, and a line break: a line made of sipform's words and tenant values
/// stays one line.
pub(crate) fn push_line(out: &mut String, line: &str) {
    out.push_str(&escape(line));
    out.push('\n');
}

/// A tenant value quoted in an error: its first 40 characters, quoted with control characters
/// escaped (`Debug`), `…` when cut, so a hostile cell cannot flood a terminal or an annotation.
pub fn excerpt(s: &str) -> String {
    let head: String = s.chars().take(40).collect();
    if head.len() < s.len() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_bidi_and_zero_width_are_shown_escaped() {
        assert_eq!(escape_for("Chez Léon", false), "Chez Léon");
        assert_eq!(
            escape_for("a\u{1b}[2Jb\r\nNo changes", false),
            "a\\u{1b}[2Jb\\r\\nNo changes"
        );
        assert_eq!(escape_for("abc\u{202e}fed", false), "abc\\u{202e}fed");
        assert_eq!(
            escape_for("a\u{200b}b\u{feff}", false),
            "a\\u{200b}b\\u{feff}"
        );
        assert_eq!(escape_for("\t\0\u{7f}", false), "\t\\u{0}\\u{7f}");
    }

    #[test]
    fn workflow_commands_are_neutralised_under_github_actions() {
        assert_eq!(escape_for("::error::x", false), "::error::x");
        assert_eq!(escape_for("::error::x", true), ":\\u{3a}error::x");
        assert_eq!(
            escape_for("a ##[error]b ##x", true),
            "a #\\u{23}[error]b ##x"
        );
        assert_eq!(escape_for("a::b", true), "a::b");
        // A line break cannot start a new line with `::` either.
        assert_eq!(escape_for("x\n::add-mask::y", true), "x\\n::add-mask::y");
    }
}
