//! Template strictness beyond minijinja's strict undefined, which still lets an undefined
//! value through a filter: `[[ restaurant.phnoe | tojson ]]` rendered `null`, and a plan then
//! removed every final customer's phone. Every variable the template reads (found statically,
//! nested attribute lookups included, so a branch not taken for one restaurant is checked too)
//! must be in the context: `restaurant.<column>`, `account.name|email`, `app_url`. A name the
//! context does not have is allowed only where the template says so explicitly, each time it
//! is used: `| default(…)` right after it, or an `is defined` / `is undefined` test.

use std::collections::BTreeSet;

use minijinja::{Environment, Template};

use crate::model::spec::{AccountSpec, Restaurant};

/// An unknown variable at its template line (the render stage turns it into its own error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVariable {
    pub line: Option<usize>,
    pub message: String,
}

/// The context's top-level names (see `render::context`).
const TOP: &[&str] = &["restaurant", "app_url", "account"];

/// The first problem found: an unknown variable at its template line.
pub fn check(
    env: &Environment<'_>,
    tmpl: &Template<'_, '_>,
    source: &str,
    nullable: &[&str],
) -> Result<(), UnknownVariable> {
    let restaurant = fields(schemars::schema_for!(Restaurant).as_value(), nullable);
    let account = fields(schemars::schema_for!(AccountSpec).as_value(), &[]);
    let globals: BTreeSet<String> = env.globals().map(|(k, _)| k.to_string()).collect();
    let mut used: Vec<String> = tmpl.undeclared_variables(true).into_iter().collect();
    used.sort();
    for path in used {
        let mut parts = path.split('.');
        let top = parts.next().unwrap_or_default();
        let attr = parts.next();
        let (known, has) = match (top, attr) {
            ("restaurant", Some(a)) => (restaurant.contains(a), &restaurant),
            ("account", Some(a)) => (account.contains(a), &account),
            ("app_url", Some(_)) => (false, &BTreeSet::new()),
            (t, None) => (TOP.contains(&t) || globals.contains(t), &BTreeSet::new()),
            (t, Some(_)) => (globals.contains(t), &BTreeSet::new()),
        };
        if known {
            continue;
        }
        let shown = match attr {
            Some(a) => format!("{top}.{a}"),
            None => top.to_string(),
        };
        let Some(line) = unexcused_use(source, &shown) else {
            continue;
        };
        let hint = if has.is_empty() {
            format!("the context is {}", TOP.join(", "))
        } else {
            format!(
                "{top} has {}",
                has.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        return Err(UnknownVariable {
            line,
            message: format!(
                "undefined variable `{shown}` ({hint}); where a missing value is meant, write `| default(…)` after it"
            ),
        });
    }
    Ok(())
}

/// The property names of a schemars schema, plus `extra`.
fn fields(schema: &serde_json::Value, extra: &[&str]) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = schema
        .get("properties")
        .and_then(serde_json::Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    out.extend(extra.iter().map(|s| s.to_string()));
    out
}

/// The line of the first use of `path` in `source` not followed by `| default` or an
/// `is defined`/`is undefined` test; `None` when every use is excused. A use the text search
/// cannot find (written with brackets, say) is not excused: line unknown.
fn unexcused_use(source: &str, path: &str) -> Option<Option<usize>> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut found = false;
    let mut from = 0;
    while let Some(i) = source[from..].find(path) {
        let at = from + i;
        from = at + path.len();
        let before = source[..at].chars().next_back();
        let after = source[from..].chars().next();
        if before.is_some_and(|c| is_ident(c) || c == '.') || after.is_some_and(is_ident) {
            continue;
        }
        found = true;
        let rest = source[from..].trim_start();
        let excused = rest
            .strip_prefix('|')
            .map(|r| r.trim_start().starts_with("default"))
            .unwrap_or(false)
            || rest
                .strip_prefix("is")
                .map(|r| {
                    let r = r.trim_start();
                    let r = r.strip_prefix("not").map_or(r, str::trim_start);
                    r.starts_with("defined") || r.starts_with("undefined")
                })
                .unwrap_or(false);
        if !excused {
            return Some(Some(source[..at].matches('\n').count() + 1));
        }
    }
    if found {
        None
    } else {
        Some(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_are_excused_one_by_one() {
        let src = "a: [[ r.x | default(1) ]]\nb: [[ r.x | tojson ]]\n";
        assert_eq!(unexcused_use(src, "r.x"), Some(Some(2)));
        let src = "a: [[ r.x | default(1) ]]\n[% if r.x is defined %]\n";
        assert_eq!(unexcused_use(src, "r.x"), None);
        assert_eq!(unexcused_use("[[ r.xy ]]", "r.x"), Some(None));
    }
}
