//! Rendered specs (`sipform render`) as YAML documents or one JSON array.

use serde::Serialize;

/// A value that does not fit the format (not expected from the spec types; reported, not
/// unwrapped, all the same).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the rendered specs as {format}: {message}")]
pub struct SpecsError {
    format: &'static str,
    message: String,
}

/// One YAML document per spec, separated by `---`.
pub fn yaml<T: Serialize>(specs: &[T]) -> Result<String, SpecsError> {
    let err = |message: String| SpecsError {
        format: "YAML",
        message,
    };
    let mut out = String::new();
    for (i, s) in specs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        // Through a JSON value, so the YAML says exactly what `--json` says.
        let value = serde_json::to_value(s).map_err(|e| err(e.to_string()))?;
        out.push_str(&serde_saphyr::to_string(&value).map_err(|e| err(e.to_string()))?);
    }
    Ok(out)
}

/// All specs as one pretty JSON array, with a trailing newline.
pub fn json<T: Serialize>(specs: &[T]) -> Result<String, SpecsError> {
    let mut s = serde_json::to_string_pretty(specs).map_err(|e| SpecsError {
        format: "JSON",
        message: e.to_string(),
    })?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn documents_are_separated_and_json_is_one_array() {
        let specs = [json!({"restaurantId": "a"}), json!({"restaurantId": "b"})];
        assert_eq!(
            yaml(&specs).unwrap(),
            "restaurantId: a\n---\nrestaurantId: b\n"
        );
        assert_eq!(yaml::<serde_json::Value>(&[]).unwrap(), "");
        assert_eq!(
            json(&specs).unwrap(),
            "[\n  {\n    \"restaurantId\": \"a\"\n  },\n  {\n    \"restaurantId\": \"b\"\n  }\n]\n"
        );
    }
}
