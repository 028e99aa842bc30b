//! The command line around the engine: `--version` with the commit, `completions`, `man`,
//! `init`, `probe`, `--color`, what `-vv` shows, and the notice when the server is retried.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sipform_emulator::{Emulator, EmulatorConfig, EmulatorHandle};

const BIN: &str = env!("CARGO_BIN_EXE_sipform");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary in `dir`, with no server, key or log filter inherited.
fn sipform(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(dir)
        .env_remove("SIP_AGENT_SERVER_URL")
        .env_remove("SIP_AGENT_INTERNAL_URL")
        .env_remove("SIPFORM_LOG")
        .env_remove("NO_COLOR")
        .env_remove("DATABASE_URL")
        .env_remove("GITHUB_ACTIONS")
        .env("SIP_ACCOUNT_API_KEY", "");
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    sipform(dir, args).output().expect("run sipform")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn emulator(rt: &tokio::runtime::Runtime) -> EmulatorHandle {
    rt.block_on(Emulator::start(EmulatorConfig::default()))
        .expect("emulator starts")
}

/// A new project made by `sipform init`, in a fresh folder.
fn new_project() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(dir.path(), &["init", "p"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let p = dir.path().join("p");
    (dir, p)
}

#[test]
fn version_names_the_package_version_and_the_commit() {
    let out = run(&repo(), &["--version"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let expected_prefix = format!("sipform {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&expected_prefix), "{text}");
    let commit = text
        .trim()
        .strip_prefix(&expected_prefix)
        .and_then(|r| r.strip_suffix(')'))
        .expect("(commit …)");
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| stdout(&o).trim().to_string());
    match head {
        Some(head) => assert_eq!(commit, head),
        None => assert!(!commit.is_empty()),
    }
}

#[test]
fn completions_for_each_shell_name_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&repo(), &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let text = stdout(&out);
        for cmd in ["validate", "plan", "apply", "controller", "init"] {
            assert!(text.contains(cmd), "{shell} completions lack {cmd}");
        }
    }
    let out = run(&repo(), &["completions", "powershell-7"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn the_man_page_covers_the_program_and_each_command() {
    let out = run(&repo(), &["man"]);
    assert!(out.status.success());
    let page = stdout(&out);
    assert!(page.contains(".TH sipform 1"), "{page}");
    assert!(page.contains("controller"));
    let out = run(&repo(), &["man", "plan"]);
    let page = stdout(&out);
    assert!(page.contains(".TH sipform-plan 1"), "{page}");
    assert!(page.contains("detailed\\-exitcode"), "{page}");
    assert_eq!(run(&repo(), &["man", "nosuch"]).status.code(), Some(1));
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(dir.path(), &["man", "--dir", "pages"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for f in ["sipform.1", "sipform-plan.1", "sipform-controller.1"] {
        assert!(dir.path().join("pages").join(f).exists(), "{f}");
    }
}

#[test]
fn init_makes_a_project_that_validates_and_never_overwrites() {
    let (dir, p) = new_project();
    let out = run(&p, &["validate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "ok: 12 tools, 1 restaurants, 1 agents rendered"
    );
    assert_eq!(
        std::fs::read_dir(p.join("tools")).expect("tools/").count(),
        12
    );
    // A folder holding one of its files: nothing is written, that file is untouched.
    let q = dir.path().join("q");
    std::fs::create_dir_all(&q).expect("mkdir");
    std::fs::write(q.join("sipform.yaml"), "mine\n").expect("write");
    let out = run(dir.path(), &["init", "q"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already holds sipform.yaml"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(q.join("sipform.yaml")).expect("read"),
        "mine\n"
    );
    assert!(!q.join("tools").exists(), "nothing else may be written");
    // -C names where a folder without DIR goes.
    let out = run(
        dir.path(),
        &["-C", "r", "init", "--account", "Chez \"Nous\": 2"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let settings = std::fs::read_to_string(dir.path().join("r/sipform.yaml")).expect("read");
    assert!(
        settings.contains("name: \"Chez \\\"Nous\\\": 2\""),
        "{settings}"
    );
    assert!(run(&dir.path().join("r"), &["validate"]).status.success());
}

#[test]
fn color_follows_the_flag_and_no_color() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let emu = emulator(&rt);
    let (_dir, p) = new_project();
    let url = emu.base_url().to_string();
    let plan = |extra: &[&str], no_color: bool| {
        let mut args = extra.to_vec();
        args.extend(["plan", "--server-url", url.as_str()]);
        let mut c = sipform(&p, &args);
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let out = c.output().expect("run");
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).contains('\u{1b}')
    };
    assert!(!plan(&[], false), "a pipe gets no colour by default");
    assert!(plan(&["--color", "always"], false));
    assert!(
        plan(&["--color", "always"], true),
        "the flag wins over NO_COLOR"
    );
    assert!(!plan(&["--color", "never"], false));
    assert!(!plan(&["--color", "auto"], true));
    let out = run(&p, &["--color", "sometimes", "validate"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn verbose_logs_show_sipform_lines_only_unless_sipform_log_says_otherwise() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let emu = emulator(&rt);
    let (_dir, p) = new_project();
    let url = emu.base_url().to_string();
    let out = run(&p, &["-vv", "plan", "--server-url", &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let debug: Vec<&str> = err.lines().filter(|l| l.contains(" DEBUG ")).collect();
    assert!(!debug.is_empty(), "-vv shows sipform's debug lines: {err}");
    for line in &debug {
        assert!(
            line.contains(" sip-provisioning:") || line.contains(" sipform"),
            "a dependency's line at -vv: {line}"
        );
    }
    // The filter is what keeps them out: SIPFORM_LOG=debug lets the HTTP client's in.
    let out = sipform(&p, &["plan", "--server-url", &url])
        .env("SIPFORM_LOG", "debug")
        .output()
        .expect("run");
    let err = stderr(&out);
    assert!(
        err.lines().any(|l| l.contains(" DEBUG ")
            && !l.contains(" sip-provisioning:")
            && !l.contains(" sipform")),
        "{err}"
    );
}

#[test]
fn probe_says_whether_an_endpoint_answers_2xx() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let emu = emulator(&rt);
    let base = emu.base_url().trim_end_matches('/').to_string();
    let out = run(&repo(), &["probe", &format!("{base}/api/accounts")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&repo(), &["probe", &format!("{base}/no/such/route")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));
    let closed = closed_port();
    let out = run(
        &repo(),
        &["probe", &format!("http://127.0.0.1:{closed}/healthz")],
    );
    assert_eq!(out.status.code(), Some(1));
    let out = run(&repo(), &["probe", "https://example.com/healthz"]);
    assert_eq!(out.status.code(), Some(1));
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn a_server_that_does_not_answer_is_said_at_once_not_after_the_retries() {
    let (_dir, p) = new_project();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let started = std::time::Instant::now();
    let mut child = sipform(&p, &["plan", "--server-url", &url])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run");
    // The first line of stderr after the key warning comes long before the retries end.
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut first_notice = None;
    let mut all = String::new();
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        if first_notice.is_none() && line.contains("waiting for sip-agent-server") {
            first_notice = Some(started.elapsed());
        }
        all.push_str(&line);
        line.clear();
    }
    let status = child.wait().expect("wait");
    let total = started.elapsed();
    assert_eq!(status.code(), Some(1), "{all}");
    let notice = first_notice.unwrap_or_else(|| panic!("no notice: {all}"));
    assert_eq!(
        all.matches("waiting for sip-agent-server").count(),
        1,
        "{all}"
    );
    // The cause is said once, by the final error.
    assert_eq!(all.matches("connection failed").count(), 1, "{all}");
    // Not a timing target: the notice comes with the first retry, the error after the last.
    assert!(
        notice < total / 2,
        "notice at {notice:?} of {total:?}: {all}"
    );
}
