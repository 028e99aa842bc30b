//! The plan as JSON: the saved form (`plan --json`, `plan --out`), versioned and documented by
//! its JSON Schema (`schema/plan.schema.json`, docs/plan-format.md).

use crate::plan::Plan;

/// The saved form: exactly the serde form of [`Plan`], pretty, with a trailing newline, so
/// `plan --json` and `plan --out` are the same document and `apply FILE` reads either.
pub fn json(plan: &Plan) -> String {
    // A Plan serializes infallibly: every map key is a string and no type has a failing
    // Serialize impl.
    let mut s = serde_json::to_string_pretty(plan).expect("a Plan always serializes to JSON");
    s.push('\n');
    s
}

/// The JSON Schema of the saved plan, committed as `schema/plan.schema.json`.
pub fn plan_schema() -> schemars::Schema {
    schemars::schema_for!(Plan)
}

/// [`plan_schema`] as the committed file holds it: pretty JSON with a trailing newline.
pub fn plan_schema_json() -> String {
    let mut s =
        serde_json::to_string_pretty(&plan_schema()).expect("a schema always serializes to JSON");
    s.push('\n');
    s
}
