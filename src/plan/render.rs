//! SHIM (replaced by the planout branch).
use super::Plan;

pub fn human(plan: &Plan, _color: bool) -> String {
    format!("{:?}\n", plan.summary)
}
pub fn markdown(plan: &Plan) -> String {
    human(plan, false)
}
pub fn json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).unwrap_or_default() + "\n"
}
