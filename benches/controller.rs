//! `sipform controller` against PostgreSQL with the trigger and the emulator at a fixed
//! latency, N restaurants already provisioned:
//! - insert one row → its agent and its tools exist (p50/p99 over INSERTS single inserts);
//! - requests per new restaurant, and what a rename costs;
//! - BULK rows inserted in one transaction, next to the floor (BULK × 14 × latency ÷
//!   parallelism);
//! - the idle controller's CPU and RSS over IDLE_SECS.
//!
//! `cargo bench --bench controller`; sizes from the environment: `CTL_BENCH_N` (1000),
//! `CTL_BENCH_INSERTS` (200), `CTL_BENCH_BULK` (500), `CTL_BENCH_LATENCY_MS` (20),
//! `CTL_BENCH_PARALLELISM` (10), `CTL_BENCH_IDLE_SECS` (10), `CTL_BENCH_WRITER_SECS` (0: the
//! platform writing beside the controller, see below). Needs PostgreSQL at
//! `SIPFORM_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`), unless
//! `CTL_BENCH_ENGINE=sqlite`: the platform's table and state in SQLite files instead (the
//! platform's production engine; the controller is woken by `PRAGMA data_version`).
//!
//! With `CTL_BENCH_WRITER_SECS` > 0, the platform's own process is played by a second
//! connection inserting `CTL_BENCH_WRITER_RATE` rows/s (50) for that long while the controller
//! provisions them, with a busy timeout of `CTL_BENCH_WRITER_BUSY_MS` (1000; 0 = none, as a
//! platform connection that sets none): its failed writes and insert latencies are printed
//! (issue 23: "the platform's writes never slowed or failed").

#[path = "../tests/common/db.rs"]
mod db_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use db_support::{Engine, TestDb};
use sipform_emulator::{Emulator, EmulatorConfig, EmulatorHandle, Faults};

const BIN: &str = env!("CARGO_BIN_EXE_sipform");

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rid(i: u64) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn row(i: u64) -> String {
    format!(
        "INSERT INTO restaurants (id, name, contact_email, sip_enabled, chat_enabled, delivery_enabled) VALUES ('{}'::uuid, 'Restaurant {i}', 'r{i}@example.com', true, false, {});\n",
        rid(i),
        i.is_multiple_of(2)
    )
}

fn total(h: &EmulatorHandle) -> u64 {
    h.request_counts().values().sum()
}

fn tool_posts(h: &EmulatorHandle) -> u64 {
    h.request_counts()
        .get("POST /api/agents/:id/tools")
        .copied()
        .unwrap_or(0)
}

fn sipform(dir: &Path, url: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .env("SIP_AGENT_SERVER_URL", url)
        .env_remove("SIP_ACCOUNT_API_KEY")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run sipform")
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// utime + stime (clock ticks) and RSS (kB) of `pid`, from /proc.
fn cpu_and_rss(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (ticks, rss)
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

/// The platform's process inserting rows at a steady rate from its own connection while the
/// controller provisions them: the platform's failed writes and its insert latencies.
async fn platform_writer(db: &TestDb, emu: &EmulatorHandle, first: u64, secs: u64, tools: u64) {
    let rate = env_or("CTL_BENCH_WRITER_RATE", 50).max(1);
    let busy = Duration::from_millis(env_or("CTL_BENCH_WRITER_BUSY_MS", 1000));
    let rows = rate * secs;
    let posts = tool_posts(emu);
    let mut lat = Vec::new();
    let mut failed = Vec::new();
    let mut conn = db_support::platform_connection(db, busy).await;
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    for k in 0..rows {
        let due = start + period * k as u32;
        tokio::time::sleep_until(due.into()).await;
        let t = Instant::now();
        if let Err(e) = conn.exec(&row(first + k).replace("'::uuid", "'")).await {
            failed.push(e);
        }
        lat.push(t.elapsed());
    }
    let written = rows - failed.len() as u64;
    wait_until("the writer's rows provisioned", 900, || {
        tool_posts(emu) >= posts + tools * written
    })
    .await;
    lat.sort();
    println!(
        "platform writer beside the controller ({rows} inserts at {rate}/s, busy timeout {busy:?}): {} failed{}, insert p50 {:.1?} p99 {:.1?} max {:.1?}; every written row provisioned {:.1?} after the last",
        failed.len(),
        failed.first().map(|e| format!(" (first: {e})")).unwrap_or_default(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or_default(),
        start.elapsed().saturating_sub(Duration::from_secs(secs)),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env_or("CTL_BENCH_N", 1000);
    let inserts = env_or("CTL_BENCH_INSERTS", 200);
    let bulk = env_or("CTL_BENCH_BULK", 500);
    let latency = env_or("CTL_BENCH_LATENCY_MS", 20);
    let parallelism = env_or("CTL_BENCH_PARALLELISM", 10);
    let idle_secs = env_or("CTL_BENCH_IDLE_SECS", 10);

    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let url = emu.base_url();
    let engine = match std::env::var("CTL_BENCH_ENGINE").as_deref() {
        Ok("sqlite") => Engine::Sqlite,
        _ => Engine::Postgres,
    };
    let db = TestDb::new(engine).await;
    db.create_restaurants("restaurants").await;
    // SQLite has no uuid type: the ids are plain text there.
    let row = |i: u64| match engine {
        Engine::Sqlite => row(i).replace("'::uuid", "'"),
        Engine::Postgres => row(i),
    };
    let state = match engine {
        Engine::Sqlite => format!(
            "state:\n  backend: sqlite\n  url: \"sqlite://{}\"\n",
            db.dir.path().join("state.db").display()
        ),
        Engine::Postgres => format!("state:\n  backend: postgres\n  url: \"{}\"\n", db.url),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_tree(&repo.join("tools"), &dir.path().join("tools"));
    // Each restaurant gets one of each bundled tool.
    let tools = std::fs::read_dir(repo.join("tools"))
        .expect("tools/")
        .count() as u64;
    copy_tree(&repo.join("templates"), &dir.path().join("templates"));
    std::fs::write(
        dir.path().join("sipform.yaml"),
        format!(
            "account:\n  name: AlloResto\n  email: tech@alloresto.fr\ninventory:\n  source: database\n  url: \"{}\"\n{state}",
            db.url
        ),
    )
    .expect("sipform.yaml");

    // N already provisioned (no latency for the setup).
    let mut sql = String::new();
    for i in 0..n {
        sql.push_str(&row(i));
    }
    if n > 0 {
        db.exec(&sql).await;
        let t = Instant::now();
        let out = sipform(
            dir.path(),
            &url,
            &["apply", "--auto-approve", "--parallelism", "32"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("setup: {n} restaurants provisioned in {:.1?}", t.elapsed());
    }
    let out = sipform(dir.path(), &url, &["controller", "install-trigger"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let faults: Faults =
        serde_json::from_value(serde_json::json!({"latency": {"fixedMs": latency, "jitterMs": 0}}))
            .expect("faults");
    emu.set_faults(faults);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    // CTL_BENCH_LOG=path keeps the controller's log (with SIPFORM_LOG=sip-provisioning=debug:
    // where each reconcile's time goes).
    let log_path = std::env::var("CTL_BENCH_LOG")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| dir.path().join("controller.log"));
    let log = std::fs::File::create(log_path).expect("log");
    let mut ctl = Command::new(BIN)
        .current_dir(dir.path())
        .args([
            "controller",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--parallelism",
            &parallelism.to_string(),
            "--batch-size",
            "500",
        ])
        .env("SIP_AGENT_SERVER_URL", &url)
        .env_remove("SIP_ACCOUNT_API_KEY")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("controller");
    // Ready: leading, the account-wide lists read. The N restaurants `apply` just checked are
    // fresh: the controller goes on with their sweep (each due one interval after its check)
    // instead of re-reading them at start.
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let t = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(&metrics).await {
            let text = r.text().await.unwrap_or_default();
            if text.contains("sipform_controller_leader 1") {
                break;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "controller not ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    eprintln!(
        "controller leading, {n} restaurants held, in {:.1?}",
        t.elapsed()
    );

    // Single inserts.
    let mut lat = Vec::new();
    let before_all = total(&emu);
    for k in 0..inserts {
        let i = n + k;
        let posts = tool_posts(&emu);
        let t = Instant::now();
        db.exec(&row(i)).await;
        wait_until("a single insert provisioned", 60, || {
            tool_posts(&emu) >= posts + tools
        })
        .await;
        lat.push(t.elapsed());
    }
    // Let the write-backs and any trailing request finish before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_restaurant = (total(&emu) - before_all) as f64 / inserts.max(1) as f64;
    lat.sort();
    println!(
        "insert → agent + {tools} tools ({engine:?}, {inserts} single inserts, {latency} ms latency, N = {n}): p50 {:.0?} p99 {:.0?} max {:.0?}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or_default()
    );
    println!("requests per new restaurant: {per_restaurant:.1}");

    // A rename.
    let counts_before: BTreeMap<String, u64> = emu.request_counts();
    let puts = counts_before
        .get("PUT /api/agents/:id")
        .copied()
        .unwrap_or(0);
    db.exec(&format!(
        "UPDATE restaurants SET name = 'Renamed' WHERE id = {}",
        db.id_literal(&rid(0))
    ))
    .await;
    wait_until("the rename", 30, || {
        emu.request_counts()
            .get("PUT /api/agents/:id")
            .copied()
            .unwrap_or(0)
            > puts
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = emu.request_counts();
    let delta: BTreeMap<&String, u64> = after
        .iter()
        .map(|(k, v)| (k, v - counts_before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect();
    println!(
        "rename: {} requests {:?}",
        delta.values().sum::<u64>(),
        delta
    );

    // BULK rows in one transaction.
    if bulk > 0 {
        let start = n + inserts;
        let mut sql = String::from("BEGIN;\n");
        for i in start..start + bulk {
            sql.push_str(&row(i));
        }
        sql.push_str("COMMIT;\n");
        let posts = tool_posts(&emu);
        let t = Instant::now();
        db.exec(&sql).await;
        wait_until("the bulk insert provisioned", 900, || {
            tool_posts(&emu) >= posts + tools * bulk
        })
        .await;
        let took = t.elapsed();
        let floor = Duration::from_millis(bulk * 14 * latency / parallelism.max(1));
        println!(
            "{bulk} rows in one transaction: {took:.1?} (floor {floor:.1?}, {:.2}× the floor; target ≤ 1.3×)",
            took.as_secs_f64() / floor.as_secs_f64().max(1e-9)
        );
    }

    let writer_secs = env_or("CTL_BENCH_WRITER_SECS", 0);
    if writer_secs > 0 {
        let first = n + inserts + bulk;
        platform_writer(&db, &emu, first, writer_secs, tools).await;
    }

    // Idle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = ctl.id();
    let (t0, _) = cpu_and_rss(pid);
    let w = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let (t1, rss) = cpu_and_rss(pid);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu = (t1 - t0) as f64 / hz / w.elapsed().as_secs_f64() * 100.0;
    println!(
        "idle with {} restaurants: {cpu:.2}% of a core, RSS {:.1} MB",
        n + inserts + bulk,
        rss as f64 / 1024.0
    );
    let _ = ctl.kill();
    let _ = ctl.wait();
}
