//! `schema/` must be exactly what the types generate (run `sipform schema` after changing them).

use std::path::Path;

use sipform::front::schema::{to_text, SCHEMA_FILES};

#[test]
fn committed_schemas_equal_the_generated_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
    for f in SCHEMA_FILES {
        let committed = std::fs::read_to_string(dir.join(f.file_name))
            .unwrap_or_else(|e| panic!("schema/{}: {e}", f.file_name));
        assert!(
            committed == to_text(&(f.generate)()),
            "schema/{} is stale: run `cargo run -- schema`",
            f.file_name
        );
    }
}

#[test]
fn schema_check_command_agrees() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipform"))
        .args(["-C", root, "schema", "--check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("tool.schema.json"), "{}\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipform"))
        .args(["schema", "--check", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tool.schema.json"));
}
