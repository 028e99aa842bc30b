//! The contract check's waivers (`platform.waivers` in `sipform.yaml`), listed in every plan
//! so an accepted finding is never silent.

use crate::contract::Waiver;

use super::lines::printable;

/// `text` (a human or Markdown plan) with one line per waiver after its header (the first
/// line; in Markdown, the marker and the summary heading); unchanged without waivers.
pub fn with_waivers(text: String, waivers: &[Waiver], markdown: bool) -> String {
    if waivers.is_empty() {
        return text;
    }
    let mut lines = String::new();
    for w in waivers {
        let line = printable(&w.summary());
        if markdown {
            lines.push_str(&format!("> **Waived contract check**: {line}\n"));
        } else {
            lines.push_str(&format!("Waived contract check: {line}\n"));
        }
    }
    // Markdown: under the marker and the summary heading (`### Plan: …` and a blank line).
    let split = if markdown {
        text.split_once("\n\n")
            .map(|(head, rest)| (format!("{head}\n\n"), format!("\n{rest}")))
    } else {
        text.split_once('\n')
            .map(|(head, rest)| (format!("{head}\n"), rest.to_string()))
    };
    match split {
        Some((head, rest)) => format!("{head}{lines}{rest}"),
        None => format!("{text}\n{lines}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_waiver_is_a_line_under_the_header() {
        let w = vec![Waiver {
            tool: "log_new_faq".into(),
            check: Some(crate::contract::CheckKind::UnknownRoute),
            subject: None,
            reason: "route removed".into(),
        }];
        let out = with_waivers("sipform plan for x\nbody\n".into(), &w, false);
        assert_eq!(
            out,
            "sipform plan for x\nWaived contract check: log_new_faq (unknown-route): route removed\nbody\n"
        );
        assert_eq!(with_waivers("a\nb\n".into(), &[], false), "a\nb\n");
    }
}
