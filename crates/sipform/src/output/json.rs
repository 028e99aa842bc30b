//! The plan as JSON: the saved form (`plan --json`, `plan --out`), versioned and documented by
//! its JSON Schema (`schema/plan.schema.json`, docs/plan-format.md).

use crate::plan::Plan;

/// The saved form: the serde form of [`Plan`] plus, when some change repeats across
/// restaurants, its `groups` (derived from the actions; readers ignore them), pretty, with a
/// trailing newline, so `plan --json` and `plan --out` are the same document and `apply FILE`
/// reads either.
pub fn json(plan: &Plan) -> String {
    // A Plan serializes infallibly: every map key is a string and no type has a failing
    // Serialize impl.
    let value = crate::plan::file::document(plan).expect("a Plan always serializes to JSON");
    let mut s = serde_json::to_string_pretty(&value).expect("a Value always serializes");
    s.push('\n');
    s
}

/// The JSON Schema of the saved plan, committed as `schema/plan.schema.json` (see
/// [`crate::plan::file::schema`]).
pub(crate) fn plan_schema() -> schemars::Schema {
    crate::plan::file::schema()
}

/// [`plan_schema`] as the committed file holds it: pretty JSON with a trailing newline.
pub fn plan_schema_json() -> String {
    let mut s =
        serde_json::to_string_pretty(&plan_schema()).expect("a schema always serializes to JSON");
    s.push('\n');
    s
}
