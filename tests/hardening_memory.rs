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

/// Two list answers, each over half of `server.max_answer_bytes`, read in one run: the run's
/// answer budget (that many bytes held at once) makes one wait for the other to be dropped,
/// never refuses either, and the plan is the one without padding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_large_answers_fit_the_runs_budget_one_after_the_other() {
    use common::hostile::{Hostile, Reply};
    let emu = emulator().await;
    let dir = project_copy();
    apply_ok(dir.path(), &emu.base_url()).await;
    let p = dir.path().join("sipform.yaml");
    let text = std::fs::read_to_string(&p).expect("sipform.yaml");
    std::fs::write(
        &p,
        text.replace("server:\n", "server:\n  max_answer_bytes: 1048576\n"),
    )
    .expect("write");
    let pad = "x".repeat(600 * 1024);
    let proxy = Hostile::proxy(&emu.base_url(), move |s| {
        let route = s.route().to_string();
        if s.is("GET") && (route == "/api/agents" || route == "/api/final-customers") {
            let pad = pad.clone();
            Reply::edit(move |v| {
                if let Some(first) = v.as_array_mut().and_then(|a| a.first_mut()) {
                    first["padding"] = serde_json::json!(pad);
                }
            })
        } else {
            Reply::Pass
        }
    })
    .await;
    let out = sipform(
        dir.path(),
        &proxy.base_url(),
        &["plan", "--detailed-exitcode"],
    );
    expect_code(&out, 0);
    assert!(stdout(&out).contains("No changes"), "{}", stdout(&out));
    emu.shutdown().await;
}
