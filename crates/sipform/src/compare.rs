//! Field comparison as the server sees it: numbers by value, absent equals null, object key
//! order ignored; and the field-by-field changes a plan shows ([`FieldChange`], owned here and
//! re-exported by `plan`: plans use compare, never the other way). Pure, shared by diff and by
//! the resource kinds' adoption rules.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One field's change. `before` absent on a create, `after` absent on a delete. A sensitive
/// field carries no values, only `sensitive: true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldChange {
    /// Dotted path, e.g. `config.transferEnabled` or `http.bodyTemplate.partySize`.
    pub path: String,
    // Boxed, like `after`: a create lists every field with no `before`, and an unboxed
    // `Option<Value>` is 80 bytes (at 10,000 restaurants, 25 MB of nothing). Not a doc
    // comment: it would land in the published plan schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Box<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Box<Value>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

/// Every field of a new object, flattened one level into dotted paths for display.
pub(crate) fn create_changes(body: &Value) -> Vec<FieldChange> {
    let Value::Object(m) = body else {
        return Vec::new();
    };
    m.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| FieldChange {
            path: k.clone(),
            before: None,
            after: Some(Box::new(v.clone())),
            sensitive: false,
        })
        .collect()
}

/// Records where `desired` and `actual` differ, descending into objects.
pub(crate) fn diff_value(path: &str, desired: &Value, actual: &Value, out: &mut Vec<FieldChange>) {
    // Most fields of most objects are unchanged: checked first, without building a path.
    if same(desired, actual) {
        return;
    }
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => {
            let keys: BTreeSet<&String> = d.keys().chain(a.keys()).collect();
            for k in keys {
                diff_value(
                    &format!("{path}.{k}"),
                    d.get(k).unwrap_or(&Value::Null),
                    a.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ => {
            if !same(desired, actual) {
                out.push(FieldChange {
                    path: path.to_string(),
                    before: (!actual.is_null()).then(|| Box::new(actual.clone())),
                    after: (!desired.is_null()).then(|| Box::new(desired.clone())),
                    sensitive: false,
                });
            }
        }
    }
}

/// Equality as the server sees it: numbers by value, absent keys as null, object key order
/// ignored.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        // Every key of either side, an absent one as null; nothing allocated, as this runs
        // over every field a plan compares.
        (Value::Object(x), Value::Object(y)) => {
            x.iter()
                .all(|(k, v)| same(v, y.get(k).unwrap_or(&Value::Null)))
                && y.iter().all(|(k, v)| v.is_null() || x.contains_key(k))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value_and_null_equals_absent() {
        assert!(same(&json!(0.5), &json!(0.5)));
        assert!(same(&json!(600), &json!(600.0)));
        assert!(same(&json!({"a": 1}), &json!({"a": 1, "b": null})));
        assert!(same(&json!({"a": 1, "b": null}), &json!({"a": 1})));
        assert!(!same(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!same(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!same(&json!({"a": 1, "b": 2}), &json!({"a": 1})));
        assert!(!same(&json!([1, 2]), &json!([2, 1])));
    }

    #[test]
    fn nested_changes_have_dotted_paths() {
        let mut out = Vec::new();
        diff_value(
            "config",
            &json!({"transferEnabled": true, "restaurantId": "r"}),
            &json!({"transferEnabled": false, "restaurantId": "r", "old": 1}),
            &mut out,
        );
        let paths: Vec<&str> = out.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, vec!["config.old", "config.transferEnabled"]);
        assert_eq!(out[0].after, None);
    }
}
