//! Revisions of a project in a throwaway git repository.

use std::path::Path;
use std::process::Command;

use super::*;
use crate::config::Overrides;

fn sh_git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A minimal project: settings, one tool, the template, one restaurant.
fn project(dir: &Path) {
    let write = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "sipform.yaml",
        "account:\n  name: A\n  email: a@example.com\n",
    );
    write("tools/end_call.yaml", "name: end_call\n");
    write("templates/agent.yaml.j2", "name: {{ restaurant.name }}\n");
    write("restaurants/one.yaml", "name: one\n");
}

fn settings(dir: &Path) -> Settings {
    Settings::load(dir, &Overrides::default()).unwrap()
}

fn revision(dir: &Path) -> Revision {
    Revision::of(dir, &settings(dir)).unwrap()
}

#[test]
fn outside_git_there_is_no_commit_and_the_digest_is_stable() {
    let tmp = tempfile::tempdir().unwrap();
    project(tmp.path());
    let r = revision(tmp.path());
    assert_eq!(r.commit, None);
    assert!(!r.dirty);
    assert_eq!(r.short(), "no-git");
    assert_eq!(revision(tmp.path()).digest, r.digest);
}

#[test]
fn the_digest_follows_tools_template_and_settings_not_restaurants() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    project(dir);
    let base = revision(dir).digest;
    std::fs::write(dir.join("restaurants/two.yaml"), "name: two\n").unwrap();
    assert_eq!(
        revision(dir).digest,
        base,
        "the inventory is not part of it"
    );
    std::fs::write(dir.join("tools/end_call.yaml"), "name: end_call\n# x\n").unwrap();
    let tool = revision(dir).digest;
    assert_ne!(tool, base);
    std::fs::write(dir.join("templates/agent.yaml.j2"), "name: x\n").unwrap();
    let template = revision(dir).digest;
    assert_ne!(template, tool);
    let mut s = settings(dir);
    s.app_url = "https://other.example".into();
    assert_ne!(Revision::of(dir, &s).unwrap().digest, template);
}

#[test]
fn in_git_the_commit_is_head_and_config_edits_are_dirty() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    project(dir);
    sh_git(dir, &["init", "-q"]);
    let unborn = revision(dir);
    assert_eq!((unborn.commit.clone(), unborn.dirty), (None, true));
    sh_git(dir, &["add", "."]);
    sh_git(dir, &["commit", "-qm", "a"]);
    let head = sh_git(dir, &["rev-parse", "HEAD"]);
    let r = revision(dir);
    assert_eq!(
        r.commit.as_ref().map(GitCommit::as_str),
        Some(head.as_str())
    );
    assert!(!r.dirty);
    assert_eq!(r.short(), &head[..7]);
    std::fs::write(dir.join("restaurants/two.yaml"), "name: two\n").unwrap();
    assert!(
        !revision(dir).dirty,
        "a new restaurant does not dirty the configuration"
    );
    std::fs::write(dir.join("tools/new.yaml"), "name: new\n").unwrap();
    let dirty = revision(dir);
    assert!(dirty.dirty, "an untracked tool does");
    assert_eq!(dirty.short(), format!("{}+dirty", &head[..7]));
}

#[test]
fn relations_between_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    project(dir);
    sh_git(dir, &["init", "-q"]);
    sh_git(dir, &["add", "."]);
    sh_git(dir, &["commit", "-qm", "a"]);
    let a = GitCommit::parse(&sh_git(dir, &["rev-parse", "HEAD"])).unwrap();
    sh_git(dir, &["commit", "-q", "--allow-empty", "-m", "b"]);
    let b = GitCommit::parse(&sh_git(dir, &["rev-parse", "HEAD"])).unwrap();
    sh_git(dir, &["checkout", "-q", "-b", "side", a.as_str()]);
    sh_git(dir, &["commit", "-q", "--allow-empty", "-m", "c"]);
    let c = GitCommit::parse(&sh_git(dir, &["rev-parse", "HEAD"])).unwrap();
    let stranger = GitCommit::parse(&"f".repeat(40)).unwrap();
    assert_eq!(relation(dir, &a, &a).unwrap(), Relation::Same);
    assert_eq!(relation(dir, &a, &b).unwrap(), Relation::Ahead);
    assert_eq!(relation(dir, &b, &a).unwrap(), Relation::Behind);
    assert_eq!(relation(dir, &b, &c).unwrap(), Relation::Diverged);
    assert_eq!(relation(dir, &stranger, &a).unwrap(), Relation::Unknown);
}

#[test]
fn an_unknown_commit_in_a_shallow_clone_says_to_fetch_the_history() {
    let tmp = tempfile::tempdir().unwrap();
    let (origin, clone) = (tmp.path().join("origin"), tmp.path().join("clone"));
    std::fs::create_dir_all(&origin).unwrap();
    project(&origin);
    sh_git(&origin, &["init", "-q"]);
    sh_git(&origin, &["add", "."]);
    sh_git(&origin, &["commit", "-qm", "a"]);
    let a = GitCommit::parse(&sh_git(&origin, &["rev-parse", "HEAD"])).unwrap();
    sh_git(&origin, &["commit", "-q", "--allow-empty", "-m", "b"]);
    let url = format!("file://{}", origin.display());
    sh_git(tmp.path(), &["clone", "-q", "--depth", "1", &url, "clone"]);
    let own = revision(&clone);
    let recorded = Revision {
        commit: Some(a.clone()),
        dirty: false,
        digest: own.digest.clone(),
    }
    .applied(chrono::Utc::now(), None);
    let mut guard = Guard::new(&clone, &own, Allow::default());
    match guard.judge(Some(&recorded)).unwrap() {
        Verdict::Refuse(why) => {
            assert!(
                why.contains("does not have") && why.contains("fetch-depth: 0"),
                "{why}"
            );
            assert!(why.contains(a.short()), "{why}");
        }
        other => panic!("{other:?}"),
    }
    let mut allowed = Guard::new(
        &clone,
        &own,
        Allow {
            rollback: true,
            dirty: false,
        },
    );
    assert_eq!(
        allowed.judge(Some(&recorded)).unwrap(),
        Verdict::Rollback { from: a }
    );
}
