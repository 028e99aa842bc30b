//! The controller under a hardened service manager: systemd's `ProtectSystem=strict` without
//! `PrivateTmp` leaves the system's temporary folder read-only. The controller keeps its copy
//! of the configuration in its work folder, never there (issue 25 item 11).

mod common;
use common::*;

use std::path::{Path, PathBuf};

/// A TMPDIR nothing can create a file in. A folder of mode 0555 is read-only for everyone but
/// root; the tests may run as root, so when a write there still succeeds the folder is put
/// under a regular file, where no one can create anything.
fn unwritable_tmp(base: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let ro = base.join("ro-tmp");
    std::fs::create_dir_all(&ro).expect("ro-tmp");
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    if std::fs::write(ro.join("probe"), b"x").is_err() {
        return ro;
    }
    let file = base.join("a-file");
    std::fs::write(&file, b"not a folder").expect("file");
    file.join("tmp")
}

/// `controller --once` with TMPDIR unwritable provisions every restaurant and exits 0; its
/// copy is in the default work folder beside the state file and is gone when it exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_runs_with_a_read_only_tmpdir() {
    let emu = emulator().await;
    let dir = project_copy();
    generate_restaurants(dir.path(), 2);
    let scratch = tempfile::tempdir().expect("tempdir");
    let tmp = unwritable_tmp(scratch.path());
    let out = command(dir.path(), &emu.base_url(), &["controller", "--once"])
        .env("TMPDIR", &tmp)
        .output()
        .expect("run the controller");
    expect_code(&out, 0);
    assert_eq!(agents(&emu).len(), 2);
    assert_eq!(tool_count(&emu), 2 * bundled_tool_count());
    let work = dir.path().join(".sipform-controller");
    assert!(
        work.is_dir(),
        "the default work folder is beside the state file"
    );
    let left: Vec<_> = std::fs::read_dir(&work).expect("work dir").collect();
    assert!(left.is_empty(), "the copy is removed at exit: {left:?}");
}

/// An unwritable `--work-dir` stops the start with an error naming that folder (not `/tmp`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_work_dir_is_named() {
    let emu = emulator().await;
    let dir = project_copy();
    let scratch = tempfile::tempdir().expect("tempdir");
    let work = unwritable_tmp(scratch.path()).join("work");
    let work_arg = work.display().to_string();
    let out = sipform(
        dir.path(),
        &emu.base_url(),
        &["controller", "--once", "--work-dir", &work_arg],
    );
    assert_ne!(out.status.code(), Some(0), "{}", all_output(&out));
    let text = all_output(&out);
    assert!(
        text.contains(&work_arg),
        "the error names the folder: {text}"
    );
    assert!(!text.contains("/tmp\n"), "{text}");
}
