//! The restaurants a run left out because their own input is invalid.

use std::fmt::Write as _;

use crate::front::diagnostics::Skipped;
use crate::front::validate::skipped_diagnostics;

/// How many skipped restaurants the header names before "and N more".
const NAMED: usize = 10;

/// Nothing when none was skipped; else a header naming them (by id, or by file when no id
/// could be read), then every problem with its place, folded when many restaurants share one.
/// Ends with the line CI reads: the run goes on for the others but fails.
pub fn skipped(skipped: &[Skipped]) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    let names: Vec<String> = skipped
        .iter()
        .take(NAMED)
        .map(|s| match &s.id {
            Some(id) => format!("{id:?}"),
            None => s.origin.to_string(),
        })
        .collect();
    let more = skipped.len().saturating_sub(NAMED);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "error: {} skipped, its input is invalid: {}{}",
        restaurants(skipped.len()),
        names.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
    for d in skipped_diagnostics(skipped).iter() {
        let _ = writeln!(out, "  {d}");
    }
    let _ = writeln!(
        out,
        "error: {} skipped; the others went on, the skipped were left as they are: fix the input and run again",
        restaurants(skipped.len())
    );
    out
}

fn restaurants(n: usize) -> String {
    if n == 1 {
        "1 restaurant".into()
    } else {
        format!("{n} restaurants")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::diagnostics::{Diagnostic, Origin};

    #[test]
    fn names_each_restaurant_and_its_problem() {
        let origin = Origin::Row {
            table: "restaurants".into(),
            key: "=1+1".into(),
        };
        let s = Skipped::new(
            Some("=1+1".into()),
            origin.clone(),
            Diagnostic::new(origin, "id", "not a UUID"),
        );
        let text = skipped(&[s]);
        assert!(text.starts_with("error: 1 restaurant skipped"), "{text}");
        assert!(text.contains("\"=1+1\""), "{text}");
        assert!(
            text.contains("  table restaurants, row id==1+1: id: not a UUID"),
            "{text}"
        );
        assert_eq!(skipped(&[]), "");
    }
}
