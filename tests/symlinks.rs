//! Symbolic links in the project's folders (issue 25, items 1 and 6): every reader (validate,
//! plan, apply, the controller's copy of the configuration) follows a link whose real path stays
//! inside the project, and refuses one that leaves it, naming the link and printing nothing of
//! what it points to.

mod common;

use std::path::Path;

use common::*;

/// A private key outside the project: its body must never be printed.
const SECRET_LINE: &str = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAABlwAAAAdzc2gtcn";

fn write_key(dir: &Path) -> std::path::PathBuf {
    let key = dir.join("id_ed25519");
    std::fs::write(
        &key,
        format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{SECRET_LINE}\n-----END OPENSSH PRIVATE KEY-----\n"),
    )
    .expect("write the key");
    key
}

fn link(target: &Path, at: &Path) {
    std::os::unix::fs::symlink(target, at).expect("symlink");
}

/// A tool file linked from elsewhere inside the project is one of the tools for every path:
/// the controller's copy has it too, so no agent loses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_symlinked_inside_the_project_is_kept_by_the_controller() {
    let emu = emulator().await;
    let dir = project_copy();
    generate_restaurants(dir.path(), 2);
    let shared = dir.path().join("common-tools");
    std::fs::create_dir_all(&shared).expect("mkdir");
    std::fs::rename(
        dir.path().join("tools/end_call.yaml"),
        shared.join("end_call.yaml"),
    )
    .expect("move");
    link(
        Path::new("../common-tools/end_call.yaml"),
        &dir.path().join("tools/end_call.yaml"),
    );
    let out = sipform(dir.path(), &emu.base_url(), &["controller", "--once"]);
    expect_code(&out, 0);
    assert_eq!(agents(&emu).len(), 2);
    assert_eq!(
        tool_count(&emu),
        2 * bundled_tool_count(),
        "{}",
        all_output(&out)
    );
    // `plan` reads the same tools: nothing to change.
    expect_no_changes(dir.path(), &emu.base_url()).await;
}

/// A tool, template or restaurant file linked to a file outside the project is refused by
/// validate, plan and the controller, naming the link, and the target's text is never printed
/// (neither in the message nor in the GitHub annotation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlink_leaving_the_project_is_refused_and_never_printed() {
    let emu = emulator().await;
    let outside = tempfile::tempdir().expect("tempdir");
    let key = write_key(outside.path());
    for (at, name) in [
        ("restaurants/key.yaml", "key.yaml"),
        ("tools/key.yaml", "key.yaml"),
        ("templates/agent.yaml.j2", "agent.yaml.j2"),
    ] {
        let dir = project_copy();
        let path = dir.path().join(at);
        let _ = std::fs::remove_file(&path);
        link(&key, &path);
        let mut runs = vec![
            (
                "validate",
                sipform(dir.path(), &emu.base_url(), &["validate"]),
            ),
            ("plan", sipform(dir.path(), &emu.base_url(), &["plan"])),
            (
                "controller",
                sipform(dir.path(), &emu.base_url(), &["controller", "--once"]),
            ),
        ];
        let gha = command(dir.path(), &emu.base_url(), &["validate"])
            .env("GITHUB_ACTIONS", "true")
            .output()
            .expect("run");
        runs.push(("validate under GitHub Actions", gha));
        for (what, out) in runs {
            let text = all_output(&out);
            // A restaurant file is one restaurant: the controller skips it and serves the
            // others (validate and plan still fail on it).
            let skipped_alone = at.starts_with("restaurants/") && what == "controller";
            assert!(
                !text.contains(SECRET_LINE) && !text.contains("PRIVATE KEY"),
                "{at}, {what}: the target is printed: {text}"
            );
            if skipped_alone {
                continue;
            }
            assert_ne!(out.status.code(), Some(0), "{at}, {what}: {text}");
            assert!(
                text.contains(name) && text.contains("outside the project"),
                "{at}, {what}: the refusal names the link: {text}"
            );
        }
    }
}

/// A value quoted in a message is shortened: a file that is one long string (a `.env`, a
/// token) is never printed whole.
#[test]
fn long_values_are_quoted_shortened() {
    let dir = project_copy();
    let long = format!("TOKEN={}", "x".repeat(500));
    std::fs::write(dir.path().join("restaurants/env.yaml"), &long).expect("write");
    let out = sipform(dir.path(), "http://127.0.0.1:9", &["validate"]);
    let text = all_output(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("env.yaml"), "{text}");
    assert!(!text.contains(&"x".repeat(100)), "printed whole: {text}");
}
