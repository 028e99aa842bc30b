//! Issue 24's figures for a held fleet, against PostgreSQL with the trigger and the emulator.
//! Two modes (`FLEET_BENCH`):
//!
//! `scenarios` (the default): N restaurants held (`FLEET_N`, 1,000; the figure 10,000),
//! the emulator at `FLEET_LATENCY_MS` (20), the controller at `FLEET_PARALLELISM` (10), each
//! scenario timing `FLEET_INSERTS` (20) single inserts (insert → agent + every tool live):
//! - `storm`: while every row is updated (`UPDATE restaurants SET name = …`, as the platform's
//!   settings page or a migration would);
//! - `restart`: right after the controller is stopped (SIGTERM) and started again;
//! - `fault`: with one restaurant whose agent answers 500 forever, `/readyz` polled every 25 ms
//!   meanwhile (its non-200 answers counted);
//! - `failover`: a standby beside the leader, the leader killed (`kill -9`), inserts once the
//!   standby leads (and how long it took to lead);
//! - `sweep`: one resync sweep (`POST /v1/reconcile`): reads per restaurant beyond the
//!   account-wide lists.
//!
//! `FLEET_SCENARIOS=storm,restart` picks some (in this order; all by default).
//!
//! `sweep`: the emulator at 0 ms, fleets of `FLEET_SIZES` (`2000`; the figures
//! `25000,50000,100000`), each grown from the one before by `apply`; for each, one full sweep
//! (`POST /v1/reconcile`): its wall time (within the 10-minute interval?), the controller's CPU
//! over it (and that CPU over the default 10-minute interval: the share of a core a timed
//! sweep costs), its peak RSS, and reads per restaurant.
//!
//! `cargo bench --bench controller_fleet`; needs PostgreSQL at `SIPFORM_TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`).

#[path = "../tests/common/db.rs"]
mod db_support;
#[path = "../tests/common/hostile.rs"]
mod hostile;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use db_support::{Engine, TestDb};
use hostile::Hostile;
use sipform_emulator::{Emulator, EmulatorConfig, EmulatorHandle, Faults};

const BIN: &str = env!("CARGO_BIN_EXE_sipform");
const TOKEN: &str = "fleet-bench-token";

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rid(i: u64) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn rows(range: std::ops::Range<u64>) -> String {
    range
        .map(|i| format!(
            "INSERT INTO restaurants (id, name, contact_email, sip_enabled, chat_enabled) VALUES ('{}'::uuid, 'Restaurant {i}', 'r{i}@example.com', true, false);\n",
            rid(i)
        ))
        .collect()
}

fn count(h: &EmulatorHandle, route: &str) -> u64 {
    h.request_counts().get(route).copied().unwrap_or(0)
}

/// Reads naming one restaurant's objects (by id, or a list under one of them).
fn per_restaurant_reads(h: &EmulatorHandle) -> u64 {
    h.request_counts()
        .iter()
        .filter(|(k, _)| k.starts_with("GET ") && k.contains(":id"))
        .map(|(_, v)| *v)
        .sum()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
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

/// utime + stime (seconds), RSS and peak RSS (MB) of `pid`, from /proc.
fn cpu_rss_peak(pid: u32) -> (f64, f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        ticks as f64 / hz,
        kb("VmRSS:") / 1024.0,
        kb("VmHWM:") / 1024.0,
    )
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default()
}

async fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A project on the platform's table, state in the same PostgreSQL.
struct Fleet {
    db: TestDb,
    dir: tempfile::TempDir,
    emu: EmulatorHandle,
    tools: u64,
    /// The next row's number.
    next: u64,
}

impl Fleet {
    async fn new() -> Fleet {
        let emu = Emulator::start(EmulatorConfig::default())
            .await
            .expect("emulator");
        let db = TestDb::new(Engine::Postgres).await;
        db.create_restaurants("restaurants").await;
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        copy_tree(&repo.join("tools"), &dir.path().join("tools"));
        copy_tree(&repo.join("templates"), &dir.path().join("templates"));
        let tools = std::fs::read_dir(repo.join("tools"))
            .expect("tools/")
            .count() as u64;
        std::fs::write(
            dir.path().join("sipform.yaml"),
            format!(
                "account:\n  name: AlloResto\n  email: tech@alloresto.fr\ninventory:\n  source: database\n  url: \"{0}\"\nstate:\n  backend: postgres\n  url: \"{0}\"\n",
                db.url
            ),
        )
        .expect("sipform.yaml");
        Fleet {
            db,
            dir,
            emu,
            tools,
            next: 0,
        }
    }

    /// Grows the fleet to `n` restaurants, provisioned by `apply` (at the emulator's current
    /// latency: keep it at 0 for the setup).
    async fn grow_to(&mut self, n: u64) {
        if n <= self.next {
            return;
        }
        let t = Instant::now();
        for chunk in (self.next..n).step_by(5000) {
            self.db.exec(&rows(chunk..(chunk + 5000).min(n))).await;
        }
        let out = self.sipform(&["apply", "--auto-approve", "--parallelism", "32"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "setup: {} → {n} restaurants provisioned by apply in {:.1?}",
            self.next,
            t.elapsed()
        );
        self.next = n;
    }

    fn sipform(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .current_dir(self.dir.path())
            .args(args)
            .env("SIP_AGENT_SERVER_URL", self.emu.base_url())
            .env_remove("SIP_ACCOUNT_API_KEY")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run sipform")
    }

    fn latency(&self, ms: u64) {
        let faults: Faults =
            serde_json::from_value(serde_json::json!({"latency": {"fixedMs": ms, "jitterMs": 0}}))
                .expect("faults");
        self.emu.set_faults(faults);
    }

    /// One insert after the other, each timed until its agent and tools are made.
    async fn inserts(&mut self, k: u64) -> Vec<Duration> {
        let mut lat = Vec::new();
        for _ in 0..k {
            let i = self.next;
            self.next += 1;
            let posts = count(&self.emu, "POST /api/agents/:id/tools");
            let t = Instant::now();
            self.db.exec(&rows(i..i + 1)).await;
            let tools = self.tools;
            let emu = &self.emu;
            wait_until("a single insert provisioned", 120, || {
                count(emu, "POST /api/agents/:id/tools") >= posts + tools
            })
            .await;
            lat.push(t.elapsed());
        }
        lat.sort();
        lat
    }
}

/// `sipform controller` as a child, with its listener's port and its log.
struct Ctl {
    child: Child,
    port: u16,
}

impl Ctl {
    fn start(fleet: &Fleet, url: &str, name: &str, extra: &[&str]) -> Ctl {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let parallelism = env_or("FLEET_PARALLELISM", 10).to_string();
        let log_dir = std::env::var("FLEET_LOG_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| fleet.dir.path().to_path_buf());
        let log =
            std::fs::File::create(log_dir.join(format!("controller-{name}.log"))).expect("log");
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![
            "controller",
            "-v",
            "--listen",
            &listen,
            "--parallelism",
            &parallelism,
            "--leader-retry",
            "1s",
        ];
        args.extend_from_slice(extra);
        let child = Command::new(BIN)
            .current_dir(fleet.dir.path())
            .args(&args)
            .env("SIP_AGENT_SERVER_URL", url)
            .env("SIPFORM_CONTROLLER_TOKEN", TOKEN)
            .env_remove("SIP_ACCOUNT_API_KEY")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("controller");
        Ctl { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    async fn leads(&self) -> bool {
        self.metric("sipform_controller_leader").await == Some(1.0)
    }

    async fn wait_leading(&self, secs: u64) -> Duration {
        let t = Instant::now();
        while !self.leads().await {
            assert!(t.elapsed() < Duration::from_secs(secs), "never led");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        t.elapsed()
    }

    fn signal(&self, sig: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: a signal to our own child, not yet reaped.
        unsafe { libc::kill(pid, sig) };
    }

    fn stop(mut self) {
        self.signal(libc::SIGTERM);
        let _ = self.child.wait();
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn report(what: &str, lat: &[Duration]) {
    println!(
        "{what}: insert → agent + tools p50 {:.0?} p99 {:.0?} max {:.0?} ({} inserts; load {})",
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        lat.last().copied().unwrap_or_default(),
        lat.len(),
        load().trim()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    match std::env::var("FLEET_BENCH").as_deref() {
        Ok("sweep") => sweeps().await,
        _ => scenarios().await,
    }
}

/// The scenarios at N held, through a proxy that makes one agent fail when told.
async fn scenarios() {
    let n = env_or("FLEET_N", 1000);
    let k = env_or("FLEET_INSERTS", 20);
    let latency = env_or("FLEET_LATENCY_MS", 20);
    let picked = std::env::var("FLEET_SCENARIOS")
        .unwrap_or_else(|_| "storm,restart,fault,failover,sweep".into());
    let on = |s: &str| picked.split(',').any(|p| p.trim() == s);
    let mut fleet = Fleet::new().await;
    fleet.grow_to(n).await;
    let out = fleet.sipform(&["controller", "install-trigger"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fleet.latency(latency);
    let (proxy, bad) = Hostile::failing_for(&fleet.emu.base_url()).await;
    let url = proxy.base_url();
    let mut ctl = Ctl::start(&fleet, &url, "a", &[]);
    let took = ctl.wait_leading(600).await;
    eprintln!(
        "controller leading {took:.1?} after start, N = {n}, {latency} ms, load {}",
        load().trim()
    );
    if on("storm") {
        storm(&mut fleet, &ctl, n, k).await;
    }
    if on("restart") {
        ctl.stop();
        ctl = Ctl::start(&fleet, &url, "a2", &[]);
        let took = ctl.wait_leading(600).await;
        let lat = fleet.inserts(k).await;
        report(
            &format!("right after a restart (leading {took:.1?} after start)"),
            &lat,
        );
    }
    if on("fault") {
        fault(&mut fleet, &ctl, &bad, k).await;
    }
    if on("failover") {
        let standby = Ctl::start(&fleet, &url, "b", &[]);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut old = std::mem::replace(&mut ctl, standby);
        let _ = old.child.kill();
        let _ = old.child.wait();
        let took = ctl.wait_leading(120).await;
        let lat = fleet.inserts(k).await;
        report(
            &format!("right after a failover (the standby led {took:.1?} after the kill -9)"),
            &lat,
        );
    }
    if on("sweep") {
        *bad.lock().unwrap_or_else(|e| e.into_inner()) = None;
        // The first sweep of a leadership also fills the cache's subscriptions; the next ones
        // are what every interval costs.
        for which in ["first sweep after a start", "next sweep"] {
            let (reads, secs) = sweep(&fleet, &ctl, fleet.next).await;
            println!(
                "{which}, {} restaurants: {:.2} reads per restaurant beyond the account-wide lists, {secs:.1} s (load {})",
                fleet.next,
                reads as f64 / fleet.next as f64,
                load().trim()
            );
        }
    }
}

/// Inserts while every row is updated.
async fn storm(fleet: &mut Fleet, ctl: &Ctl, n: u64, k: u64) {
    let puts = count(&fleet.emu, "PUT /api/agents/:id");
    fleet
        .db
        .exec("UPDATE restaurants SET name = name || ' (renamed)'")
        .await;
    let t = Instant::now();
    let lat = fleet.inserts(k).await;
    let during = count(&fleet.emu, "PUT /api/agents/:id") - puts;
    report(
        &format!(
            "while {n} rows are updated ({during} of their agents updated by the last insert)"
        ),
        &lat,
    );
    let emu = &fleet.emu;
    wait_until("the storm done", 1800, || {
        count(emu, "PUT /api/agents/:id") >= puts + n
    })
    .await;
    let _ = ctl;
    println!("the storm of {n} updates done in {:.1?}", t.elapsed());
}

/// Inserts while one restaurant's agent answers 500 forever; `/readyz` polled every 25 ms.
async fn fault(fleet: &mut Fleet, ctl: &Ctl, bad: &Arc<Mutex<Option<String>>>, k: u64) {
    let agent = fleet
        .db
        .text(&format!(
            "SELECT agent_id FROM restaurants WHERE id = '{}'::uuid",
            rid(0)
        ))
        .await
        .expect("restaurant 0's agent");
    *bad.lock().unwrap_or_else(|e| e.into_inner()) = Some(agent);
    fleet
        .db
        .exec(&format!(
            "UPDATE restaurants SET name = 'Broken' WHERE id = '{}'::uuid",
            rid(0)
        ))
        .await;
    let readyz = ctl.url("/readyz");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let polling = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut polls, mut not_ready) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                polls += 1;
                let ok = reqwest::get(&readyz)
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 200);
                not_ready += u64::from(!ok);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            (polls, not_ready)
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let lat = fleet.inserts(k).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (polls, not_ready) = polling.await.unwrap_or((0, 0));
    report("with one restaurant answering 500 forever", &lat);
    println!("/readyz polled every 25 ms meanwhile: {not_ready} of {polls} answers not 200");
}

/// One full sweep (`POST /v1/reconcile`) of `n` converged restaurants: reads beyond the
/// account-wide lists, and its wall time.
async fn sweep(fleet: &Fleet, ctl: &Ctl, n: u64) -> (u64, f64) {
    let before = reconciles(ctl).await;
    let reads = per_restaurant_reads(&fleet.emu);
    let t = Instant::now();
    let r = reqwest::Client::new()
        .post(ctl.url("/v1/reconcile"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("POST /v1/reconcile");
    assert_eq!(r.status().as_u16(), 202);
    loop {
        // Every restaurant but one still backing off (the fault scenario's) reconciled.
        if reconciles(ctl).await + 1.0 >= before + n as f64 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3600),
            "the sweep never ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (
        per_restaurant_reads(&fleet.emu) - reads,
        t.elapsed().as_secs_f64(),
    )
}

/// Reconciles so far, whatever their result.
async fn reconciles(ctl: &Ctl) -> f64 {
    let Ok(r) = reqwest::get(ctl.url("/metrics")).await else {
        return 0.0;
    };
    let text = r.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("sipform_controller_reconciles_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One sweep per fleet size, at 0 ms: wall time, CPU, peak RSS, reads per restaurant.
async fn sweeps() {
    let sizes: Vec<u64> = std::env::var("FLEET_SIZES")
        .unwrap_or_else(|_| "2000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut fleet = Fleet::new().await;
    let mut feed = false;
    for n in sizes {
        fleet.grow_to(n).await;
        if !feed {
            // Installed, so the controller's feed check queues no full reconcile of its own.
            let out = fleet.sipform(&["controller", "install-trigger"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            feed = true;
        }
        let ctl = Ctl::start(&fleet, &fleet.emu.base_url(), &format!("sweep-{n}"), &[]);
        let took = ctl.wait_leading(3600).await;
        // Settled: the start's lists read and nothing due.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let pid = ctl.child.id();
        // The first sweep of a start also fills the cache's subscriptions: the second is
        // what every interval costs.
        let (first, first_secs) = sweep(&fleet, &ctl, n).await;
        println!(
            "first sweep of {n} after a start: {first_secs:.1} s, {:.2} reads per restaurant",
            first as f64 / n as f64
        );
        let (cpu0, _, _) = cpu_rss_peak(pid);
        let (reads, secs) = sweep(&fleet, &ctl, n).await;
        let (cpu1, rss, peak) = cpu_rss_peak(pid);
        let cpu = cpu1 - cpu0;
        println!(
            "sweep of {n} (0 ms): {secs:.1} s wall (interval 600 s), {cpu:.1} s of CPU = {:.3} of a core over the 10-minute interval ({:.2} ms per restaurant), RSS {rss:.0} MB (peak {peak:.0} MB), {:.2} reads per restaurant; leading {took:.1?} after start; load {}",
            cpu / 600.0,
            cpu * 1000.0 / n as f64,
            reads as f64 / n as f64,
            load().trim()
        );
        ctl.stop();
    }
}
