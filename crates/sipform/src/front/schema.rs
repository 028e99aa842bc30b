//! JSON Schemas generated from the Rust types, and validators compiled from them once.
//!
//! The committed `schema/*.schema.json` files are for editors (yaml-language-server); validation
//! uses the schemas generated in-process, so the binary never depends on files at run time.

use std::sync::OnceLock;

use jsonschema::Validator;
use schemars::Schema;

use crate::model::spec::{Project, RenderedAgent, Restaurant, ToolSpec};

/// One generated schema file.
pub struct SchemaFile {
    /// File name under `schema/`.
    pub file_name: &'static str,
    pub generate: fn() -> Schema,
}

/// Every schema `sipform schema` writes. Add a line here to publish another.
pub const SCHEMA_FILES: &[SchemaFile] = &[
    SchemaFile {
        file_name: "tool.schema.json",
        generate: || schemars::schema_for!(ToolSpec),
    },
    SchemaFile {
        file_name: "agent.schema.json",
        generate: || schemars::schema_for!(RenderedAgent),
    },
    SchemaFile {
        file_name: "restaurant.schema.json",
        generate: || schemars::schema_for!(Restaurant),
    },
    SchemaFile {
        file_name: "project.schema.json",
        generate: || schemars::schema_for!(Project),
    },
    // Not a validator (index past `Kind`): the saved-plan format, for readers of `plan --json`.
    // Generated from the plan's own types, not through a renderer.
    SchemaFile {
        file_name: "plan.schema.json",
        generate: crate::plan::file::schema,
    },
    SchemaFile {
        file_name: "tool-test.schema.json",
        generate: || schemars::schema_for!(crate::model::spec::ToolTestFile),
    },
];

/// The text written to disk: pretty JSON and a trailing newline.
pub fn to_text(schema: &Schema) -> String {
    let mut s = serde_json::to_string_pretty(schema).unwrap_or_else(|_| "{}".to_string());
    s.push('\n');
    s
}

/// What a document is, so the right validator checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tool,
    Agent,
    Restaurant,
    Project,
}

impl Kind {
    fn index(self) -> usize {
        match self {
            Kind::Tool => 0,
            Kind::Agent => 1,
            Kind::Restaurant => 2,
            Kind::Project => 3,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the generated {file} schema does not compile: {message}")]
pub struct SchemaError {
    pub file: &'static str,
    pub message: String,
}

static VALIDATORS: [OnceLock<Result<Validator, String>>; 4] = [
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
];

/// The validator for `kind`, compiled on first use and kept for the process.
pub fn validator(kind: Kind) -> Result<&'static Validator, SchemaError> {
    let i = kind.index();
    let file = SCHEMA_FILES[i].file_name;
    VALIDATORS[i]
        .get_or_init(|| {
            let schema = (SCHEMA_FILES[i].generate)();
            jsonschema::validator_for(schema.as_value()).map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|m| SchemaError {
            file,
            message: m.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles() {
        for k in [Kind::Tool, Kind::Agent, Kind::Restaurant, Kind::Project] {
            validator(k).unwrap();
        }
    }

    #[test]
    fn tool_schema_refuses_unknown_keys() {
        let v = validator(Kind::Tool).unwrap();
        let bad = serde_json::json!({"name": "x", "description": "d",
            "parameters": {"type": "object"}, "sortOrder": 1, "sortOrdre": 1});
        assert!(!v.is_valid(&bad));
        let good = serde_json::json!({"name": "x", "description": "d",
            "parameters": {"type": "object"}, "sortOrder": 1});
        assert!(v.is_valid(&good));
    }
}
