//! The saved-plan file: `plan --out FILE` writes it, `apply FILE` reads it back.
//!
//! The file is exactly the plan's serde form (the same document `plan --json` prints), written
//! atomically and owner-readable only; a file of another format version is refused rather than
//! guessed at.

use std::path::Path;

use super::{Plan, PLAN_FORMAT_VERSION, PLAN_FORMAT_VERSION_MIN};

/// A saved plan that cannot be read or written; always names the file.
#[derive(Debug, thiserror::Error)]
#[error("saved plan {path}: {message}")]
pub struct PlanFileError {
    pub path: String,
    pub message: String,
}

impl PlanFileError {
    fn new(path: &Path, message: impl Into<String>) -> Self {
        PlanFileError {
            path: path.display().to_string(),
            message: message.into(),
        }
    }
}

/// Reads a plan saved with `plan --out` (this format version or an older one it still reads),
/// refusing any other.
pub fn read_plan(path: &Path) -> Result<Plan, PlanFileError> {
    let err = |message: String| PlanFileError::new(path, message);
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(format!("not valid JSON: {e}")))?;
    match value.get("formatVersion").and_then(|v| v.as_u64()) {
        Some(v)
            if (u64::from(PLAN_FORMAT_VERSION_MIN)..=u64::from(PLAN_FORMAT_VERSION)).contains(&v) => {}
        Some(v) => {
            return Err(err(format!(
                "format version {v}; this sipform reads versions {PLAN_FORMAT_VERSION_MIN} to {PLAN_FORMAT_VERSION}"
            )))
        }
        None if value.get("formatVersion").is_some() => {
            return Err(err("\"formatVersion\" is not a whole number".into()))
        }
        None => return Err(err("missing \"formatVersion\": not a sipform plan".into())),
    }
    // The groups are derived from the actions and recomputed whenever needed: a file's own
    // cannot steer apply, so they are dropped, not trusted.
    let mut value = value;
    if let Some(object) = value.as_object_mut() {
        object.remove("groups");
    }
    serde_path_to_error::deserialize(value).map_err(|e| err(with_field(&e)))
}

/// Writes a plan for `apply FILE`, owner-readable only (it names ids, never secrets). The
/// server URL is saved redacted whatever the caller passed: a plan file is shared, attached to
/// CI runs, and must never carry a password.
pub fn write_plan(path: &Path, plan: &Plan) -> Result<(), PlanFileError> {
    let mut value = document(plan).map_err(|e| PlanFileError::new(path, e.to_string()))?;
    if let Some(url) = value.get_mut("serverUrl") {
        if let Some(s) = url.as_str() {
            *url = serde_json::Value::String(crate::model::secret::redact_url(s));
        }
    }
    let mut bytes =
        serde_json::to_vec_pretty(&value).map_err(|e| PlanFileError::new(path, e.to_string()))?;
    bytes.push(b'\n');
    crate::fsio::write_atomic(path, &bytes).map_err(|e| PlanFileError::new(path, e.to_string()))
}

/// The saved document as a value: the plan's fields, then `groups` (see [`super::groups`])
/// when some change repeats across restaurants. `plan --json` prints the same document.
pub fn document(plan: &Plan) -> Result<serde_json::Value, serde_json::Error> {
    let mut value = serde_json::to_value(plan)?;
    let groups = super::groups(plan).groups;
    if !groups.is_empty() {
        if let Some(object) = value.as_object_mut() {
            object.insert("groups".into(), serde_json::to_value(groups)?);
        }
    }
    Ok(value)
}

/// The JSON Schema of the saved plan, committed as `schema/plan.schema.json`: [`Plan`]'s, with
/// the optional, derived `groups` array added.
pub fn schema() -> schemars::Schema {
    let mut schema = schemars::schema_for!(Plan);
    let groups = schemars::schema_for!(Vec<super::ChangeGroup>);
    let (Some(plan), Some(groups)) = (schema.as_object_mut(), groups.as_object()) else {
        return schema;
    };
    if let Some(serde_json::Value::Object(defs)) = groups.get("$defs") {
        if let Some(serde_json::Value::Object(into)) = plan.get_mut("$defs") {
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
        serde_json::Value::String(
            "Changes made identically in several restaurants, shown once: derived from the \
             actions (which stay complete), ignored when a saved plan is read. Absent when no \
             change repeats."
                .into(),
        ),
    );
    if let Some(serde_json::Value::Object(props)) = plan.get_mut("properties") {
        props.insert("groups".into(), serde_json::Value::Object(items));
    }
    schema
}

/// `field: message` from a serde path error (`message` alone at the root).
fn with_field(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    if path == "." {
        e.inner().to_string()
    } else {
        format!("{path}: {}", e.inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    /// Built from its JSON form, so the fixture does not depend on how actions are stored.
    fn plan() -> Plan {
        serde_json::from_value(serde_json::json!({
            "formatVersion": PLAN_FORMAT_VERSION,
            "sipformVersion": "0.0.0",
            "createdAt": "2020-01-01T00:00:00Z",
            "serverUrl": "http://localhost:4000",
            "lineage": "00000000-0000-0000-0000-000000000000",
            "stateSerial": 3,
            "remoteFingerprint": "f",
            "account": {"op": "noOp", "resource": "account", "name": "A", "remoteId": "acc-1"},
            "restaurants": [],
            "summary": {"add": 0, "change": 0, "delete": 0, "adopt": 0}
        }))
        .unwrap()
    }

    #[test]
    fn a_written_plan_reads_back_equal_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        write_plan(&path, &plan()).unwrap();
        assert_eq!(read_plan(&path).unwrap(), plan());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn the_revision_is_saved_and_a_version_1_plan_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let mut p = plan();
        p.revision = Some(crate::model::revision::Revision {
            commit: Some(crate::model::revision::GitCommit::parse(&"ab".repeat(20)).unwrap()),
            dirty: true,
            digest: crate::model::revision::ConfigDigest::from_sha256([7; 32]),
        });
        write_plan(&path, &p).unwrap();
        assert_eq!(read_plan(&path).unwrap().revision, p.revision);
        let mut v1 = serde_json::to_value(plan()).unwrap();
        v1["formatVersion"] = serde_json::json!(1);
        std::fs::write(&path, v1.to_string()).unwrap();
        assert_eq!(read_plan(&path).unwrap().revision, None);
    }

    #[test]
    fn a_saved_plan_names_the_server_without_user_info() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let mut p = plan();
        p.server_url = "http://user:pw@127.0.0.1:4000".into();
        write_plan(&path, &p).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("pw") && !text.contains("user"), "{text}");
        assert_eq!(
            read_plan(&path).unwrap().server_url,
            "http://***@127.0.0.1:4000"
        );
    }

    #[test]
    fn another_version_or_shape_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let mut v = serde_json::to_value(plan()).unwrap();
        v["formatVersion"] = serde_json::json!(PLAN_FORMAT_VERSION + 1);
        std::fs::write(&path, v.to_string()).unwrap();
        let e = read_plan(&path).unwrap_err().to_string();
        let expected = format!("format version {}", PLAN_FORMAT_VERSION + 1);
        assert!(e.contains("plan.json") && e.contains(&expected), "{e}");

        std::fs::write(&path, r#"{"formatVersion": 1, "serverUrl": 3}"#).unwrap();
        let e = read_plan(&path).unwrap_err().to_string();
        assert!(e.contains("plan.json"), "{e}");

        std::fs::write(&path, "{}").unwrap();
        let e = read_plan(&path).unwrap_err().to_string();
        assert!(e.contains("not a sipform plan"), "{e}");
    }
}
