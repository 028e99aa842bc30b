//! Names the commit the binary is built from, for `sipform --version`: `git rev-parse --short
//! HEAD`, or `SIPFORM_BUILD_COMMIT` when set (a build without `.git`, such as the container
//! image's, passes it in), else `unknown` (a source tarball, no git installed).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SIPFORM_BUILD_COMMIT");
    let commit = std::env::var("SIPFORM_BUILD_COMMIT")
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    // Build again when HEAD moves (a commit, a checkout): HEAD itself, the branch it points
    // at, and packed refs. In a worktree these live in two folders; git says where.
    for path in ["HEAD", "packed-refs"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(p) = git(&["rev-parse", "--git-path", &branch]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rustc-env=SIPFORM_COMMIT={commit}");
}

/// One line of git's output, or None when git is missing, fails or says nothing.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}
