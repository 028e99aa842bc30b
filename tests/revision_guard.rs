//! No writer goes backwards (issue 26): two local repositories stand for CI and an older
//! checkout, both applying to one server and one state. An apply from a commit older than the
//! one state records for a restaurant, or unknown to its repository, or diverged from it, or
//! with uncommitted changes over a committed revision, is refused naming both revisions;
//! `--allow-rollback` and `--allow-dirty` make it explicit, and state records it.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn head(dir: &Path) -> String {
    git(dir, &["rev-parse", "HEAD"])
}

fn short(commit: &str) -> &str {
    &commit[..7]
}

/// Gives `end_call` another description in the project at `dir`.
fn edit_end_call(dir: &Path, words: &str) {
    edit_yaml(&dir.join("tools/end_call.yaml"), |v| {
        v["description"] = Value::String(format!("Raccroche ({words})."));
    });
}

/// The revision state records for each restaurant: (commit, dirty, rollbackFrom).
fn recorded(state_dir: &Path) -> Vec<(String, bool, Option<String>)> {
    let state = read_state(state_dir);
    let restaurants = state["restaurants"].as_object().expect("restaurants");
    assert!(!restaurants.is_empty());
    restaurants
        .values()
        .map(|r| {
            let rev = &r["revision"];
            (
                rev["commit"].as_str().unwrap_or("none").to_string(),
                rev["dirty"].as_bool().unwrap_or(false),
                rev["rollbackFrom"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn all_at(state_dir: &Path, commit: &str, dirty: bool, from: Option<&str>) {
    for (c, d, f) in recorded(state_dir) {
        assert_eq!(
            (c.as_str(), d, f.as_deref()),
            (commit, dirty, from),
            "recorded revision"
        );
    }
}

/// Asserts a refused apply: exit 1, the reason and both short commits named, nothing written.
async fn expect_refused(
    dir: &Path,
    emu_url: &str,
    emu: &sipform_emulator::EmulatorHandle,
    why: &str,
    ours: &str,
    theirs: &str,
) {
    let mark = writes(emu);
    let out = run(dir, emu_url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 1);
    let text = all_output(&out);
    assert!(text.contains(why), "{why:?} in\n{text}");
    assert!(
        text.contains(short(ours)) && text.contains(short(theirs)),
        "{text}"
    );
    assert!(
        writes_since(emu, &mark).is_empty(),
        "nothing is written: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_writer_goes_backwards() {
    let emu = emulator().await;
    let url = emu.base_url();
    let state = tempfile::tempdir().expect("tempdir");
    let state_file = state.path().join("sipform.state.json");

    // CI's repository at A, with the state both checkouts share.
    let ci = project_copy();
    edit_yaml(&ci.path().join("sipform.yaml"), |v| {
        v["state"]["path"] = Value::String(state_file.display().to_string());
    });
    git(ci.path(), &["init", "-q"]);
    git(ci.path(), &["add", "."]);
    git(ci.path(), &["commit", "-qm", "A"]);
    let a = head(ci.path());
    // The older checkout: a clone at A.
    let old = tempfile::tempdir().expect("tempdir");
    let ci_path = ci.path().display().to_string();
    git(old.path(), &["clone", "-q", &ci_path, "."]);

    // CI applies B.
    edit_end_call(ci.path(), "B");
    git(ci.path(), &["commit", "-qam", "B"]);
    let b = head(ci.path());
    let out = apply_ok(ci.path(), &url).await;
    assert!(
        stdout(&out).contains(&format!("Revision: {}", short(&b))),
        "{}",
        stdout(&out)
    );
    all_at(state.path(), &b, false, None);

    // The old checkout does not even have B: unknown history, refused.
    expect_refused(
        old.path(),
        &url,
        &emu,
        "a commit this repository does not have",
        &a,
        &b,
    )
    .await;
    // Fetched, B is known and newer: going back is refused, naming both.
    git(old.path(), &["fetch", "-q", "origin"]);
    expect_refused(old.path(), &url, &emu, "applying would go back", &a, &b).await;
    all_at(state.path(), &b, false, None);

    // Explicitly: planned and shown as a rollback, applied, recorded.
    let plan = run(old.path(), &url, &["plan", "--allow-rollback"]).await;
    let rollback = format!("rollback from {} to {}", short(&b), short(&a));
    assert!(stdout(&plan).contains(&rollback), "{}", stdout(&plan));
    let out = run(
        old.path(),
        &url,
        &["apply", "--auto-approve", "--allow-rollback"],
    )
    .await;
    expect_code(&out, 0);
    all_at(state.path(), &a, false, Some(&b));
    // Status shows the rollback, for people and machines.
    let status = run(old.path(), &url, &["status", "--json"]).await;
    expect_code(&status, 0);
    let report: Value = serde_json::from_str(&stdout(&status)).expect("status JSON");
    let rows = report["restaurants"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!rows.is_empty(), "{report}");
    for r in &rows {
        assert_eq!(r["revision"], short(&a), "{r}");
        assert_eq!(r["rolledBackFrom"], short(&b), "{r}");
    }
    let status = run(old.path(), &url, &["status"]).await;
    let shown = format!("{} (rollback from {})", short(&a), short(&b));
    assert!(stdout(&status).contains(&shown), "{}", stdout(&status));
    // Seen from CI's checkout (at B), those restaurants are out of sync: B is not applied.
    let status = run(ci.path(), &url, &["status", "--json"]).await;
    let report: Value = serde_json::from_str(&stdout(&status)).expect("status JSON");
    assert_eq!(report["revision"], short(&b), "{report}");
    assert_eq!(report["counts"]["out_of_sync"], rows.len(), "{report}");

    // Uncommitted changes over a committed revision: only with --allow-dirty.
    edit_end_call(ci.path(), "B, edited");
    expect_refused(ci.path(), &url, &emu, "uncommitted changes", &b, &a).await;
    let out = run(
        ci.path(),
        &url,
        &["apply", "--auto-approve", "--allow-dirty"],
    )
    .await;
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains(&format!("{}+dirty", short(&b))),
        "{}",
        stdout(&out)
    );
    all_at(state.path(), &b, true, None);

    // A commit of the old checkout's own, beside B: diverged, refused.
    edit_end_call(old.path(), "C");
    git(old.path(), &["commit", "-qam", "C"]);
    let c = head(old.path());
    expect_refused(old.path(), &url, &emu, "diverged", &c, &b).await;
    all_at(state.path(), &b, true, None);
}

/// A plan with nothing to change still records the revision it checked, so an older writer
/// is refused even where the newer commit changed nothing the server holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_change_apply_records_the_revision_it_checked() {
    let emu = emulator().await;
    let url = emu.base_url();
    let dir = project_copy();
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "."]);
    git(dir.path(), &["commit", "-qm", "A"]);
    apply_ok(dir.path(), &url).await;
    git(dir.path(), &["commit", "-q", "--allow-empty", "-m", "B"]);
    let b = head(dir.path());
    let out = apply_ok(dir.path(), &url).await;
    assert!(stdout(&out).contains("No changes"), "{}", stdout(&out));
    all_at(dir.path(), &b, false, None);
}

/// The controller goes through the same apply: from an older checkout it writes nothing to a
/// restaurant CI applied at a newer commit, and says why, naming both; it logs its revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_never_goes_back_either() {
    let emu = emulator().await;
    let url = emu.base_url();
    let state = tempfile::tempdir().expect("tempdir");
    let state_file = state.path().join("sipform.state.json");
    let ci = project_copy();
    edit_yaml(&ci.path().join("sipform.yaml"), |v| {
        v["state"]["path"] = Value::String(state_file.display().to_string());
    });
    git(ci.path(), &["init", "-q"]);
    git(ci.path(), &["add", "."]);
    git(ci.path(), &["commit", "-qm", "A"]);
    let a = head(ci.path());
    let old = tempfile::tempdir().expect("tempdir");
    let ci_path = ci.path().display().to_string();
    git(old.path(), &["clone", "-q", &ci_path, "."]);
    edit_end_call(ci.path(), "B");
    git(ci.path(), &["commit", "-qam", "B"]);
    let b = head(ci.path());
    apply_ok(ci.path(), &url).await;
    git(old.path(), &["fetch", "-q", "origin"]);

    let mark = writes(&emu);
    let out = run(old.path(), &url, &["controller", "--once", "-v"]).await;
    let text = all_output(&out);
    expect_code(&out, 1);
    assert!(
        writes_since(&emu, &mark).is_empty(),
        "nothing written:\n{text}"
    );
    assert!(
        text.contains(&format!("configuration at revision {}", short(&a))),
        "{text}"
    );
    assert!(text.contains("applying would go back"), "{text}");
    assert!(
        text.contains(short(&a)) && text.contains(short(&b)),
        "{text}"
    );
    all_at(state.path(), &b, false, None);
}

/// CI plans a pull request at its merge ref and applies the saved plan on the branch, which
/// holds another commit: the revision recorded is the applying checkout's, so the next apply
/// on the branch goes ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_records_the_revision_of_the_checkout_that_applies_it() {
    let emu = emulator().await;
    let url = emu.base_url();
    let state = tempfile::tempdir().expect("tempdir");
    let state_file = state.path().join("sipform.state.json");
    let main = project_copy();
    edit_yaml(&main.path().join("sipform.yaml"), |v| {
        v["state"]["path"] = Value::String(state_file.display().to_string());
    });
    git(main.path(), &["init", "-q"]);
    git(main.path(), &["add", "."]);
    git(main.path(), &["commit", "-qm", "A"]);
    apply_ok(main.path(), &url).await;

    // The pull request's merge ref: a commit only the planning checkout has.
    let pr = tempfile::tempdir().expect("tempdir");
    let main_path = main.path().display().to_string();
    git(pr.path(), &["clone", "-q", &main_path, "."]);
    edit_end_call(pr.path(), "PR");
    git(pr.path(), &["commit", "-qam", "merge ref"]);
    let plan_file = state.path().join("plan.json");
    let plan_path = plan_file.display().to_string();
    let out = run(pr.path(), &url, &["plan", "--out", &plan_path]).await;
    expect_code(&out, 0);

    // The branch gets the same change as another commit, and applies the saved plan.
    edit_end_call(main.path(), "PR");
    git(main.path(), &["commit", "-qam", "squashed"]);
    let merged = head(main.path());
    let out = run(main.path(), &url, &["apply", &plan_path]).await;
    expect_code(&out, 0);
    all_at(state.path(), &merged, false, None);
    git(
        main.path(),
        &["commit", "-q", "--allow-empty", "-m", "next"],
    );
    let next = head(main.path());
    apply_ok(main.path(), &url).await;
    all_at(state.path(), &next, false, None);
}
