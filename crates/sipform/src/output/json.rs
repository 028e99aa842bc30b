//! The plan as JSON: the saved form (`plan --json`, `plan --out`), versioned and documented by
//! its JSON Schema (`schema/plan.schema.json`, docs/plan-format.md).

use serde_json::Value;

use crate::plan::{ChangeGroup, Plan};

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

/// The JSON Schema of the saved plan, committed as `schema/plan.schema.json`: [`Plan`]'s, with
/// the optional, derived `groups` array added.
pub fn plan_schema() -> schemars::Schema {
    let mut schema = schemars::schema_for!(Plan);
    let groups = schemars::schema_for!(Vec<ChangeGroup>);
    let (Some(plan), Some(groups)) = (schema.as_object_mut(), groups.as_object()) else {
        return schema;
    };
    if let Some(Value::Object(defs)) = groups.get("$defs") {
        if let Some(Value::Object(into)) = plan.get_mut("$defs") {
            for (name, def) in defs {
                into.entry(name.clone()).or_insert_with(|| def.clone());
            }
        }
    }
    let mut items = groups.clone();
    items.remove("$defs");
    items.remove("$schema");
    items.insert(
        "description".into(),
        Value::String(
            "Changes made identically in several restaurants, shown once: derived from the \
             actions (which stay complete), ignored when a saved plan is read. Absent when no \
             change repeats."
                .into(),
        ),
    );
    if let Some(Value::Object(props)) = plan.get_mut("properties") {
        props.insert("groups".into(), Value::Object(items));
    }
    schema
}

/// [`plan_schema`] as the committed file holds it: pretty JSON with a trailing newline.
pub fn plan_schema_json() -> String {
    let mut s =
        serde_json::to_string_pretty(&plan_schema()).expect("a schema always serializes to JSON");
    s.push('\n');
    s
}
