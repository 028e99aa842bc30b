//! The restaurants a plan holds (change windows): a few named with until when, the rest
//! counted. Shown in the human plan's header and in the pull-request comment.

use super::lines::thousands;
use crate::plan::Plan;

/// Restaurants named; the rest are counted.
const HOLDS_SHOWN: usize = 5;

/// `Held: restaurant Le Bistrot (id): in a change window at 12:00 Europe/Paris: held until …`,
/// then how to override. Empty without holds.
pub(super) fn lines(plan: &Plan) -> Vec<String> {
    if plan.holds.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<String> = plan
        .holds
        .iter()
        .take(HOLDS_SHOWN)
        .map(|h| {
            format!(
                "Held: restaurant {} ({}): {}",
                h.name, h.restaurant_id, h.message
            )
        })
        .collect();
    if plan.holds.len() > HOLDS_SHOWN {
        out.push(format!(
            "Held: and {} more restaurants",
            thousands(plan.holds.len() - HOLDS_SHOWN)
        ));
    }
    out.push(format!(
        "Held: {} restaurant(s) wait for their change window: apply leaves them as they are (`--ignore-windows` overrides)",
        thousands(plan.holds.len())
    ));
    out
}
