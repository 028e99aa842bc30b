//! The duplicates a plan lists (see [`crate::plan::Duplicates`]): not changes, so they never
//! change the exit code, but shown on every plan until `sipform dedupe` removes them.

use std::fmt::Write as _;

use super::lines::{printable, thousands};
use crate::plan::{Duplicates, Plan};

/// Restaurants listed one by one before "and N more" (`plan --json` lists them all).
const SHOWN: usize = 20;

/// `5 restaurants have duplicates: …`; `None` without any.
pub fn summary(plan: &Plan) -> Option<String> {
    let n = plan.duplicates.len();
    (n > 0).then(|| {
        let objects: usize = plan.duplicates.iter().map(Duplicates::count).sum();
        format!(
            "{} {} duplicates ({} extra {} on the server): `sipform dedupe` deactivates them, with `--allow-destroy` deletes them",
            thousands(n),
            if n == 1 { "restaurant has" } else { "restaurants have" },
            thousands(objects),
            if objects == 1 { "object" } else { "objects" },
        )
    })
}

/// One line per restaurant with duplicates (the first [`SHOWN`]), then the summary; empty
/// without any.
pub fn lines(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for d in plan.duplicates.iter().take(SHOWN) {
        let mut line = format!(
            "! duplicates of {} ({}):",
            printable(&d.name),
            d.restaurant_id
        );
        let ids = |v: Vec<&str>| v.join(", ");
        let mut parts = Vec::new();
        if !d.agents.is_empty() {
            parts.push(format!(
                "agents {}",
                ids(d.agents.iter().map(|i| i.as_str()).collect())
            ));
        }
        if !d.final_customers.is_empty() {
            parts.push(format!(
                "final customers {}",
                ids(d.final_customers.iter().map(|i| i.as_str()).collect())
            ));
        }
        if !d.phone_lines.is_empty() {
            parts.push(format!(
                "phone lines {}",
                ids(d.phone_lines.iter().map(|c| c.id.as_str()).collect())
            ));
        }
        if !d.subscriptions.is_empty() {
            parts.push(format!(
                "subscriptions {}",
                ids(d.subscriptions.iter().map(|c| c.id.as_str()).collect())
            ));
        }
        let _ = write!(line, " {}", parts.join("; "));
        out.push(line);
    }
    if plan.duplicates.len() > SHOWN {
        out.push(format!(
            "! … and {} more restaurants with duplicates (`sipform plan --json` lists them all)",
            thousands(plan.duplicates.len() - SHOWN)
        ));
    }
    out.extend(summary(plan));
    out
}

/// What `sipform dedupe` did: one line per call, then a count.
pub fn dedupe(report: &crate::ops::dedupe::DedupeReport) -> String {
    let mut out = String::new();
    if report.found.is_empty() {
        out.push_str("No duplicates: every restaurant has one agent and one final customer.\n");
        return out;
    }
    let (mut deactivated, mut deleted, mut failed) = (0usize, 0usize, 0usize);
    for s in &report.steps {
        let verb = if s.deleted { "delete" } else { "deactivate" };
        match &s.error {
            None => {
                let _ = writeln!(
                    out,
                    "{verb}d {} {} (restaurant {})",
                    s.resource.label(),
                    s.id,
                    s.restaurant
                );
                if s.deleted {
                    deleted += 1;
                } else {
                    deactivated += 1;
                }
            }
            Some(e) => {
                failed += 1;
                let _ = writeln!(
                    out,
                    "error: could not {verb} {} {} (restaurant {}): {}",
                    s.resource.label(),
                    s.id,
                    s.restaurant,
                    printable(e)
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "Dedupe: {} restaurants, {} deactivated, {} deleted, {} failed.{}",
        thousands(report.found.len()),
        thousands(deactivated),
        thousands(deleted),
        thousands(failed),
        if report.steps.iter().any(|s| s.deleted) {
            ""
        } else {
            " Run again with --allow-destroy to delete them."
        }
    );
    out
}
