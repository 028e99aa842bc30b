//! Tenant values on their way to a terminal, a CI log or a pull request (issue 25 #7, #8):
//! a restaurant's name cannot drive the terminal, fake a line, issue a GitHub workflow
//! command, or become a link, a mention or an issue reference in the PR comment.

mod common;

use std::process::Output;

use common::db::{Engine, TestDb};
use common::*;

const ID: &str = "00000000-0000-4000-8000-00000000000a";

/// A name with every trick: a line break faking "No changes", workflow commands, a bidi
/// override, a zero-width space and an ANSI clear-screen.
const EVIL: &str = "Evil\r\nNo changes. ::add-mask::x\n::error::pwned ##[error]boom \u{202e}gpj.exe\u{200b}\u{1b}[2J";

async fn platform(name: &str) -> TestDb {
    let db = TestDb::new(Engine::Sqlite).await;
    db.create_restaurants("restaurants").await;
    db.exec(&format!(
        "INSERT INTO restaurants (id, name, sip_enabled) VALUES ('{ID}', '{}', true);",
        name.replace('\'', "''")
    ))
    .await;
    db
}

const ON_TABLE: TableProject = TableProject {
    timeout_sec: Some(3),
    state_in_db: false,
    extra: "",
};

/// Runs the binary as a GitHub Actions step would.
async fn in_actions(dir: &std::path::Path, url: &str, args: &[&str]) -> Output {
    let mut c = command(dir, url, args);
    c.env("GITHUB_ACTIONS", "true");
    tokio::task::spawn_blocking(move || c.output().expect("run sipform"))
        .await
        .expect("join")
}

/// Nothing of `out` lets the name drive the terminal or the runner (`json`: stdout is a JSON
/// document, which carries values exactly, in JSON's own escaping; only stderr is shown).
fn assert_inert(what: &str, out: &Output, json: bool) {
    let mut streams = vec![("stderr", stderr(out))];
    if !json {
        streams.push(("stdout", stdout(out)));
    }
    for (stream, text) in streams {
        for bad in ['\r', '\u{1b}', '\u{202e}', '\u{200b}'] {
            assert!(
                !text.contains(bad),
                "{what} {stream} holds {bad:?} unescaped:\n{text}"
            );
        }
        assert!(
            !text.contains("##["),
            "{what} {stream}: ##[ reached the log:\n{text}"
        );
        for line in text.lines() {
            assert!(
                !line.starts_with("::add-mask") && !line.starts_with("::error::pwned"),
                "{what} {stream}: a workflow command from the name:\n{text}"
            );
            assert!(
                !line.starts_with("No changes. ::"),
                "{what} {stream}: a line faked by the name:\n{text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_name_is_shown_escaped_in_plan_apply_and_the_word_diff() {
    let emu = emulator().await;
    let db = platform(EVIL).await;
    let dir = project_on_table(&db, ON_TABLE);
    let url = emu.base_url();

    let out = in_actions(dir.path(), &url, &["plan"]).await;
    assert_inert("plan", &out, false);
    assert!(
        stdout(&out).contains("Evil\\r\\nNo changes. ::add-mask::x\\n::error::pwned"),
        "{}",
        stdout(&out)
    );
    let out = in_actions(dir.path(), &url, &["apply", "--auto-approve"]).await;
    assert_inert("apply", &out, false);
    expect_code(&out, 0);

    // A rename: the word diff shows both names.
    db.exec(&format!(
        "UPDATE restaurants SET name = '{}' WHERE id = '{ID}';",
        format!("{EVIL} \u{2066}2\u{2069}").replace('\'', "''")
    ))
    .await;
    let out = in_actions(dir.path(), &url, &["plan"]).await;
    assert_inert("plan of a rename", &out, false);
    assert!(stdout(&out).contains("\\u{2066}2"), "{}", stdout(&out));
    let out = in_actions(dir.path(), &url, &["apply", "--auto-approve", "--json"]).await;
    assert_inert("apply --json", &out, true);
    expect_code(&out, 0);
}
