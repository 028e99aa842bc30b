//! The composite action's download path: `scripts/install-sipform.sh` against a fake release
//! served on 127.0.0.1 (a tarball and its `SHA256SUMS`, laid out as GitHub serves a release's
//! assets: `$BASE/download/$TAG/<file>`). A good download installs a binary that runs; a
//! checksum mismatch fails and installs nothing; a missing release or asset says "compile
//! instead" (exit 3), which action.yml turns into the build from source.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

const TARGET: &str = "x86_64-unknown-linux-gnu";
const TAG: &str = "v0.2.0";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tiny HTTP/1.0 file server: path → body, anything else 404. Counts the requests.
struct FakeRelease {
    base: String,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    requests: Arc<AtomicUsize>,
}

impl FakeRelease {
    fn start() -> FakeRelease {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}/releases", listener.local_addr().expect("addr"));
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let requests = Arc::new(AtomicUsize::new(0));
        let (f, r) = (files.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                r.fetch_add(1, Ordering::SeqCst);
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                // The rest of the head, up to the blank line.
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let body = f.lock().expect("lock").get(&path).cloned();
                let (status, body) = match body {
                    Some(b) => ("200 OK", b),
                    None => ("404 Not Found", b"Not Found".to_vec()),
                };
                let head = format!(
                    "HTTP/1.0 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        FakeRelease {
            base,
            files,
            requests,
        }
    }

    fn serve(&self, file: &str, body: Vec<u8>) {
        self.files
            .lock()
            .expect("lock")
            .insert(format!("/releases/download/{TAG}/{file}"), body);
    }
}

/// A release tarball holding a stand-in `sipform` that prints its version.
fn tarball(dir: &Path) -> Vec<u8> {
    let content = dir.join("content");
    std::fs::create_dir_all(&content).expect("mkdir");
    let bin = content.join("sipform");
    std::fs::write(&bin, "#!/bin/sh\necho \"sipform 0.2.0 (commit fake123)\"\n").expect("write");
    let mut perms = std::fs::metadata(&bin).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&bin, perms).expect("chmod");
    std::fs::write(content.join("LICENSE-MIT"), "MIT\n").expect("write");
    let archive = dir.join("release.tar.gz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(&content)
        // The members the release workflow packs, by name (release.yml's Pack step).
        .args(["sipform", "LICENSE-MIT"])
        .status()
        .expect("tar");
    assert!(status.success());
    std::fs::read(&archive).expect("read tarball")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn asset() -> String {
    format!("sipform-{TARGET}.tar.gz")
}

/// Runs the install script against `release`, installing into `dest`.
fn install(release: &FakeRelease, version: &str, dest: &Path) -> Output {
    Command::new("bash")
        .arg(repo().join("scripts/install-sipform.sh"))
        .env_remove("GITHUB_ACTION_REF")
        .env_remove("GITHUB_ACTION_REPOSITORY")
        .env("SIPFORM_VERSION", version)
        .env("SIPFORM_RELEASE_BASE_URL", &release.base)
        .env("SIPFORM_INSTALL_DIR", dest)
        .env("SIPFORM_TARGET", TARGET)
        .output()
        .expect("run the install script")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn a_release_with_a_matching_checksum_installs_a_binary_that_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let release = FakeRelease::start();
    let tar = tarball(dir.path());
    let sums = format!(
        "{}  sipform-aarch64-apple-darwin.tar.gz\n{}  {}\n",
        "0".repeat(64),
        sha256_hex(&tar),
        asset()
    );
    release.serve(&asset(), tar);
    release.serve("SHA256SUMS", sums.into_bytes());
    let dest = dir.path().join("bin");
    let out = install(&release, TAG, &dest);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run = Command::new(dest.join("sipform"))
        .arg("--version")
        .output()
        .expect("the installed binary runs");
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "sipform 0.2.0 (commit fake123)"
    );
    assert!(stderr(&out).contains("installed sipform v0.2.0"));
}

#[test]
fn a_checksum_mismatch_fails_and_installs_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let release = FakeRelease::start();
    let tar = tarball(dir.path());
    // The checksum of other bytes: what a tampered or truncated download looks like.
    let sums = format!("{}  {}\n", sha256_hex(b"something else"), asset());
    release.serve(&asset(), tar);
    release.serve("SHA256SUMS", sums.into_bytes());
    let dest = dir.path().join("bin");
    let out = install(&release, TAG, &dest);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("checksum mismatch"),
        "{}",
        stderr(&out)
    );
    assert!(!dest.join("sipform").exists(), "nothing may be installed");
}

#[test]
fn no_release_for_the_tag_or_the_target_means_compile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let release = FakeRelease::start();
    let dest = dir.path().join("bin");
    // No release at all for this tag: 404 on SHA256SUMS.
    let out = install(&release, TAG, &dest);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("compiled"), "{}", stderr(&out));
    // A release without this target's archive.
    release.serve(
        "SHA256SUMS",
        format!("{}  sipform-aarch64-apple-darwin.tar.gz\n", "0".repeat(64)).into_bytes(),
    );
    let out = install(&release, TAG, &dest);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!dest.join("sipform").exists());
}

#[test]
fn a_branch_or_commit_ref_asks_nothing_and_means_compile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let release = FakeRelease::start();
    for r in ["main", "0d88199a", ""] {
        let out = install(&release, r, &dir.path().join("bin"));
        assert_eq!(out.status.code(), Some(3), "{r}: {}", stderr(&out));
    }
    assert_eq!(release.requests.load(Ordering::SeqCst), 0);
}

/// action.yml runs the script first, compiles only on its exit 3, and fails on any other.
#[test]
fn the_action_downloads_before_it_compiles() {
    let action = std::fs::read_to_string(repo().join("action.yml")).expect("action.yml");
    let download = action
        .find("scripts/install-sipform.sh")
        .expect("action.yml runs the install script");
    let build = action.find("cargo install").expect("and can still build");
    assert!(download < build);
    assert!(action.contains("3) echo \"installed=false\""));
    assert!(action.contains("*) exit \"$code\""));
    assert!(action.contains(
        "if: steps.download.outputs.installed != 'true' && steps.cache.outputs.cache-hit != 'true'"
    ));
}
