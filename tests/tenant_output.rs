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

/// The comment's text as GitHub sees it once references are decoded, without the code blocks
/// and code spans (where GitHub links and mentions nothing).
fn linkable_text(md: &str) -> String {
    let mut text = String::new();
    let mut fence: Option<String> = None;
    for line in md.lines() {
        let ticks: String = line.chars().take_while(|c| *c == '`').collect();
        match &fence {
            Some(f) if ticks.len() >= f.len() && line.trim_end() == ticks => fence = None,
            Some(_) => {}
            None if ticks.len() >= 3 => fence = Some(ticks),
            None => {
                // Outside code spans only: the even parts between backticks.
                for (i, part) in line.split('`').enumerate() {
                    if i % 2 == 0 {
                        text.push_str(part);
                    }
                }
                text.push('\n');
            }
        }
    }
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest.find(';').unwrap_or(0);
        let entity = &rest[..=end];
        let decoded = match entity {
            "&lt;" => Some('<'),
            "&gt;" => Some('>'),
            "&amp;" => Some('&'),
            e if e.starts_with("&#") => e[2..e.len() - 1]
                .parse::<u32>()
                .ok()
                .and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A name full of what GitHub links or pings becomes none of it in the PR comment
/// (issue 25 #8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_in_the_pr_comment_links_and_mentions_nothing() {
    let emu = emulator().await;
    let name = "Team @team www.evil.example a@b.example #1 :tada: https://x.example/p";
    let db = platform(name).await;
    let dir = project_on_table(&db, ON_TABLE);
    let url = emu.base_url();
    let out = in_actions(dir.path(), &url, &["plan", "--markdown"]).await;
    let md = stdout(&out);
    assert!(md.contains("Team"), "{md}");
    let text = linkable_text(&md);
    for pattern in ["@team", "www.evil", "a@b", "#1", ":tada:", "https://x"] {
        assert!(
            !text.contains(pattern),
            "{pattern:?} is linkable in the comment:\n{text}"
        );
    }
    // Renamed: the name also shows in the change's summary and its word diff.
    apply_ok(dir.path(), &url).await;
    db.exec(&format!(
        "UPDATE restaurants SET name = '{name} v2' WHERE id = '{ID}';"
    ))
    .await;
    let out = in_actions(dir.path(), &url, &["plan", "--markdown"]).await;
    let text = linkable_text(&stdout(&out));
    for pattern in ["@team", "www.evil", "a@b", "#1", ":tada:", "https://x"] {
        assert!(
            !text.contains(pattern),
            "{pattern:?} is linkable in the comment of a rename:\n{text}"
        );
    }
}
