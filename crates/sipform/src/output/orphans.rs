//! The orphans a plan lists (see [`crate::plan::Orphan`]): agents of the account that no
//! restaurant of the inventory or state claims. Not changes, so they never change the exit
//! code, but shown on every full plan until someone deletes them or gives them a restaurant.

use super::lines::{printable, thousands};
use crate::plan::Plan;

/// Orphans listed one by one before "and N more" (`plan --json` lists them all).
const SHOWN: usize = 20;

/// `2 agents of this account belong to no restaurant …`; `None` without any.
pub fn summary(plan: &Plan) -> Option<String> {
    let n = plan.orphans.len();
    (n > 0).then(|| {
        format!(
            "{} {} of this account {} to no restaurant of the inventory or state (orphans, left untouched): delete {} on the server, or add {} restaurant back",
            thousands(n),
            if n == 1 { "agent" } else { "agents" },
            if n == 1 { "belongs" } else { "belong" },
            if n == 1 { "it" } else { "them" },
            if n == 1 { "its" } else { "their" },
        )
    })
}

/// One line per orphan (the first [`SHOWN`]), then the summary; empty without any.
pub fn lines(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = plan
        .orphans
        .iter()
        .take(SHOWN)
        .map(|o| {
            format!(
                "! orphan agent {} ({}): restaurantId {}",
                o.id,
                printable(&o.name),
                o.restaurant_id
                    .as_deref()
                    .map_or_else(|| "absent".to_string(), printable),
            )
        })
        .collect();
    if plan.orphans.len() > SHOWN {
        out.push(format!(
            "! … and {} more orphan agents (`sipform plan --json` lists them all)",
            thousands(plan.orphans.len() - SHOWN)
        ));
    }
    out.extend(summary(plan));
    out
}
