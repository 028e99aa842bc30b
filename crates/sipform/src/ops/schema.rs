//! `schema`: write (or check) the JSON Schemas generated from the types.

use std::path::PathBuf;

use crate::front::schema::{to_text, SCHEMA_FILES};

use super::OpsError;

/// Where the schemas go, and whether to only compare.
#[derive(Debug, Clone)]
pub struct SchemaOptions {
    /// The folder (the project's `schema/` by default).
    pub dir: PathBuf,
    /// Write nothing; report the files that differ from what the types generate.
    pub check: bool,
}

/// What `schema` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaOutcome {
    /// Files written (not in check mode).
    pub written: Vec<PathBuf>,
    /// Files that differ from the types (check mode); a missing file differs.
    pub stale: Vec<PathBuf>,
    /// How many schemas there are.
    pub total: usize,
}

pub fn schema(opts: &SchemaOptions) -> Result<SchemaOutcome, OpsError> {
    let io = |what, path: &PathBuf| {
        let path = path.display().to_string();
        move |source| OpsError::Io { what, path, source }
    };
    if !opts.check {
        std::fs::create_dir_all(&opts.dir).map_err(io("creating", &opts.dir))?;
    }
    let mut outcome = SchemaOutcome {
        total: SCHEMA_FILES.len(),
        ..SchemaOutcome::default()
    };
    for f in SCHEMA_FILES {
        let text = to_text(&(f.generate)());
        let path = opts.dir.join(f.file_name);
        if opts.check {
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if current != text {
                outcome.stale.push(path);
            }
        } else {
            std::fs::write(&path, text).map_err(io("writing", &path))?;
            outcome.written.push(path);
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_schemas_then_check_clean_and_a_changed_one_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let write = SchemaOptions {
            dir: dir.path().join("schema"),
            check: false,
        };
        let out = schema(&write).unwrap();
        assert_eq!(out.written.len(), SCHEMA_FILES.len());
        let check = SchemaOptions {
            check: true,
            ..write
        };
        assert!(schema(&check).unwrap().stale.is_empty());
        std::fs::write(check.dir.join("tool.schema.json"), "{}\n").unwrap();
        let out = schema(&check).unwrap();
        assert_eq!(out.stale, vec![check.dir.join("tool.schema.json")]);
        assert!(out.written.is_empty());
    }
}
