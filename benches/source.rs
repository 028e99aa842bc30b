//! The controller following a git repository (`controller.source`, issue 26), N restaurants
//! from files, the emulator at a fixed latency:
//! - a commit pushed to the followed branch (a tool's description edited), then
//!   `POST /v1/reload` as CI does on merge → every agent's tool updated (the time from the
//!   push, and the requests it took);
//! - the same commit found by the fetch interval alone (no reload);
//! - the idle cost of following the repository: the controller's CPU (with its `git`
//!   children) and RSS over IDLE_SECS at the default 30 s interval, and the CPU one fetch
//!   costs (measured at a 1 s interval).
//!
//! `cargo bench --bench source`; sizes from the environment: `SRC_BENCH_N` (1000),
//! `SRC_BENCH_LATENCY_MS` (20), `SRC_BENCH_PARALLELISM` (10), `SRC_BENCH_IDLE_SECS` (60).
//! Local repositories only (no network).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sipform_emulator::{Emulator, EmulatorConfig, EmulatorHandle, Faults};

const BIN: &str = env!("CARGO_BIN_EXE_sipform");
const TOKEN: &str = "source-bench-token";

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.com",
        ])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        if e.path().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

/// origin (bare) and CI's clone holding the bundled tools, template and settings.
struct Repos {
    origin: PathBuf,
    ci: PathBuf,
}

impl Repos {
    fn new(root: &Path) -> Repos {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        git(root, &["init", "--quiet", "--bare", "origin.git"]);
        git(root, &["init", "--quiet", "-b", "main", "ci"]);
        let ci = root.join("ci");
        for part in ["tools", "templates"] {
            copy_tree(&repo.join(part), &ci.join(part));
        }
        std::fs::create_dir_all(ci.join("docs")).expect("docs");
        std::fs::copy(
            repo.join("docs/platform.openapi.yaml"),
            ci.join("docs/platform.openapi.yaml"),
        )
        .expect("openapi");
        std::fs::copy(repo.join("sipform.yaml"), ci.join("sipform.yaml")).expect("settings");
        let repos = Repos {
            origin: root.join("origin.git"),
            ci,
        };
        repos.push("the bundled project");
        repos
    }

    fn push(&self, message: &str) -> String {
        git(&self.ci, &["add", "-A"]);
        git(&self.ci, &["commit", "--quiet", "-m", message]);
        let origin = self.origin.display().to_string();
        git(&self.ci, &["push", "--quiet", &origin, "main"]);
        git(&self.ci, &["rev-parse", "HEAD"])
    }

    /// Edits `end_call`'s description (a one-tool change on every agent) and pushes it.
    fn edit_end_call(&self, text: &str) -> String {
        let path = self.ci.join("tools/end_call.yaml");
        let yaml = std::fs::read_to_string(&path).expect("end_call.yaml");
        let mut doc: serde_json::Value = serde_saphyr::from_str(&yaml).expect("yaml");
        doc["description"] = serde_json::Value::String(text.into());
        // JSON is YAML.
        std::fs::write(&path, serde_json::to_string_pretty(&doc).expect("json")).expect("write");
        self.push(&format!("end_call: {text}"))
    }
}

/// The controller's folder: N restaurant files and settings naming origin's branch.
fn controller_project(root: &Path, repos: &Repos, n: u64, interval: &str) -> PathBuf {
    let dir = root.join(format!("controller-{interval}"));
    let r = dir.join("restaurants");
    std::fs::create_dir_all(&r).expect("mkdir");
    for i in 0..n {
        let text = format!(
            "id: 00000000-0000-4000-8000-{i:012}\nname: Restaurant {i}\nphone: \"+3314{i:07}\"\ncontact_email: r{i}@example.com\ndelivery_enabled: {}\nreservation_enabled: {}\nsip_enabled: true\n",
            i % 2 == 0,
            i % 3 == 0,
        );
        std::fs::write(r.join(format!("r{i:06}.yaml")), text).expect("restaurant");
    }
    let settings = std::fs::read_to_string(repos.ci.join("sipform.yaml")).expect("settings");
    std::fs::write(
        dir.join("sipform.yaml"),
        format!(
            "{settings}\ncontroller:\n  source:\n    git: {}\n    branch: main\n    interval: {interval}\n",
            repos.origin.display()
        ),
    )
    .expect("sipform.yaml");
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn start(dir: &Path, url: &str, port: u16, parallelism: u64) -> Child {
    let log = std::fs::File::create(dir.join("controller.log")).expect("log");
    Command::new(BIN)
        .current_dir(dir)
        .args([
            "controller",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--parallelism",
            &parallelism.to_string(),
            "--batch-size",
            "500",
        ])
        .env("SIP_AGENT_SERVER_URL", url)
        .env("SIPFORM_CONTROLLER_TOKEN", TOKEN)
        .env_remove("SIP_ACCOUNT_API_KEY")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("controller")
}

fn tool_puts(h: &EmulatorHandle) -> u64 {
    h.request_counts()
        .get("PUT /api/agents/:id/tools/:toolId")
        .copied()
        .unwrap_or(0)
}

fn total(h: &EmulatorHandle) -> u64 {
    h.request_counts().values().sum()
}

/// How many end_call tools on the server say `text`.
fn saying(h: &EmulatorHandle, text: &str) -> u64 {
    h.snapshot()["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["tools"].as_array().cloned().unwrap_or_default())
        .filter(|t| t["name"] == "end_call" && t["description"] == text)
        .count() as u64
}

/// utime + stime of the process and of its waited-for children (`git`), in clock ticks, and
/// its RSS in kB, from /proc.
fn cpu_and_rss(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ticks = field(11) + field(12) + field(13) + field(14);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (ticks, rss)
}

fn cpu_seconds(ticks: u64) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

async fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

async fn reload(port: u16) {
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("reload");
    assert!(r.status().is_success(), "reload: {}", r.status());
}

fn set_latency(emu: &EmulatorHandle, ms: u64) {
    let faults: Faults =
        serde_json::from_value(serde_json::json!({"latency": {"fixedMs": ms, "jitterMs": 0}}))
            .expect("faults");
    emu.set_faults(faults);
}

/// A controller following `repos` at `interval`, its N restaurants provisioned (no latency).
async fn provisioned(
    root: &Path,
    repos: &Repos,
    emu: &EmulatorHandle,
    n: u64,
    interval: &str,
    parallelism: u64,
) -> (Child, u16) {
    set_latency(emu, 0);
    let dir = controller_project(root, repos, n, interval);
    let port = free_port();
    let ctl = start(&dir, &emu.base_url(), port, parallelism);
    let t = wait_until("every agent provisioned", 900, || count_end_calls(emu) >= n).await;
    // The first resync's write-backs and trailing reads done.
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("{n} restaurants provisioned by the controller in {t:.1?}");
    (ctl, port)
}

fn count_end_calls(h: &EmulatorHandle) -> u64 {
    h.snapshot()["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["tools"].as_array().cloned().unwrap_or_default())
        .filter(|t| t["name"] == "end_call")
        .count() as u64
}

/// Pushes a one-tool edit (then reloads when asked) and waits for every agent to have it.
async fn roll(emu: &EmulatorHandle, repos: &Repos, n: u64, text: &str, port: Option<u16>) {
    let (puts, requests) = (tool_puts(emu), total(emu));
    let t = Instant::now();
    repos.edit_end_call(text);
    if let Some(port) = port {
        reload(port).await;
    }
    wait_until("the edit on every agent", 1800, || {
        tool_puts(emu) >= puts + n
    })
    .await;
    let took = t.elapsed();
    assert_eq!(saying(emu, text), n, "every end_call says the new text");
    let how = if port.is_some() {
        "push + POST /v1/reload"
    } else {
        "push, found by the 1 s fetch interval"
    };
    println!(
        "commit → {n} agents updated ({how}): {took:.2?}, {} tool PUTs, {} requests in all",
        tool_puts(emu) - puts,
        total(emu) - requests
    );
}

async fn idle(pid: u32, secs: u64) -> (f64, f64) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (t0, _) = cpu_and_rss(pid);
    let w = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (t1, rss) = cpu_and_rss(pid);
    let cpu = cpu_seconds(t1.saturating_sub(t0));
    (cpu / w.elapsed().as_secs_f64() * 100.0, rss as f64 / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env_or("SRC_BENCH_N", 1000);
    let latency = env_or("SRC_BENCH_LATENCY_MS", 20);
    let parallelism = env_or("SRC_BENCH_PARALLELISM", 10);
    let idle_secs = env_or("SRC_BENCH_IDLE_SECS", 60);
    let root = tempfile::tempdir().expect("tempdir");
    let repos = Repos::new(root.path());

    // 1. The default interval (30 s): a reload as CI sends, then the idle cost.
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let (mut ctl, port) = provisioned(root.path(), &repos, &emu, n, "30s", parallelism).await;
    set_latency(&emu, latency);
    roll(&emu, &repos, n, "Raccroche (reload).", Some(port)).await;
    let (cpu, rss) = idle(ctl.id(), idle_secs).await;
    println!(
        "idle, following the repository every 30 s, {n} restaurants: {cpu:.2}% of a core (git included), RSS {rss:.1} MB over {idle_secs} s"
    );
    let _ = ctl.kill();
    let _ = ctl.wait();

    // 2. A 1 s interval: the commit found without a reload, and what one fetch costs.
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let (mut ctl, _) = provisioned(root.path(), &repos, &emu, n, "1s", parallelism).await;
    set_latency(&emu, latency);
    roll(&emu, &repos, n, "Raccroche (interval).", None).await;
    let secs = 20;
    let (cpu, _) = idle(ctl.id(), secs).await;
    println!(
        "one fetch of an unchanged branch: at most {:.1} ms of CPU (the controller's whole idle second, git included; {cpu:.2}% of a core at a 1 s interval)",
        cpu / 100.0 * 1000.0
    );
    let _ = ctl.kill();
    let _ = ctl.wait();
}
