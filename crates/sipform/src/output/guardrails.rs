//! The guardrails a plan goes over (see [`crate::plan::Plan::guardrails`]): which limit, by how
//! much, and the flag that lets it through. Shown on every format, above the changes.

use crate::plan::Plan;

/// One line per limit exceeded, then what `apply` needs; empty when within every limit.
pub fn lines(plan: &Plan) -> Vec<String> {
    if plan.guardrails.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<String> = plan
        .guardrails
        .iter()
        .map(|b| format!("Over guardrails: {b}"))
        .collect();
    let needed = plan.guardrails.iter().map(|b| b.count).max().unwrap_or(0);
    out.push(format!(
        "apply refuses this plan unless given --allow-changes {needed} (the controller holds it)"
    ));
    out
}
