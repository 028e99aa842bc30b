//! The plan as a person reads it on a terminal, Terraform-like: `+ ~ - <=` per action, field
//! diffs below, ANSI colors only when asked.

use std::fmt::Write as _;

use super::lines::{
    account_lines, is_listed, printable, restaurant_lines, summary_line, Color, Line,
};
use crate::plan::{Op, Plan};

/// The plan as a person reads it on a terminal. `color` adds ANSI colors (callers pass whether
/// stdout is a terminal and `NO_COLOR` is unset).
pub fn human(plan: &Plan, color: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sipform plan for {}",
        printable(&crate::config::redact_url(&plan.server_url))
    );
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

impl Line {
    /// The symbol after the indent; with `color`, the symbol (or, in a text diff, the whole
    /// line) painted and the changed words of a replaced line underlined.
    pub(super) fn human(&self, color: bool) -> String {
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
}
