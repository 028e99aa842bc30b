//! Issue 25, item 12: memory. An input file over the cap (a restaurant, tool or template
//! file) is refused before it is read, naming the file and the cap: a 1 GB sparse file costs
//! nothing.

mod common;

use common::*;

const GIB: u64 = 1024 * 1024 * 1024;

/// Makes `path` a 1 GiB sparse file (no block written).
fn sparse(path: &std::path::Path) {
    let f = std::fs::File::create(path).expect("create");
    f.set_len(GIB).expect("set_len");
}

#[test]
fn a_sparse_gigabyte_restaurant_file_is_refused_unread() {
    let dir = project_copy();
    let huge = dir.path().join("restaurants/huge.yaml");
    sparse(&huge);
    let out = sipform(dir.path(), "http://127.0.0.1:9", &["validate"]);
    let err = all_output(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("huge.yaml") && err.contains("over the 4194304 bytes an input file may have"),
        "names the file and the cap: {err}"
    );
}

#[test]
fn a_sparse_gigabyte_tool_or_template_is_refused_unread() {
    for file in ["tools/end_call.yaml", "templates/agent.yaml.j2"] {
        let dir = project_copy();
        let path = dir.path().join(file);
        assert!(path.exists(), "{file} is in the bundled project");
        sparse(&path);
        let out = sipform(dir.path(), "http://127.0.0.1:9", &["validate"]);
        let err = all_output(&out);
        assert_ne!(out.status.code(), Some(0), "{file}: {err}");
        let name = file.rsplit('/').next().unwrap_or(file);
        assert!(
            err.contains(name) && err.contains("over the 4194304 bytes"),
            "{file}: names the file and the cap: {err}"
        );
    }
}
