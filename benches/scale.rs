//! The scale figures of issue 13, measured on the real binary against the emulator, each as a
//! child process: wall time, CPU (user+sys) and peak RSS (`getrusage` of the waited child),
//! requests counted by the emulator, and the floor (requests × latency ÷ 64).
//!
//! `cargo bench --bench scale` runs every scenario; choose with environment variables:
//! - `SCALE=apply1k,fresh,nochange,validate,ratelimited,huge` (default: all but `huge`);
//! - `SCALE_N` (10,000: fresh apply, no-change plan, validate), `SCALE_N_SMALL` (1,000: the
//!   default-settings apply and the rate-limited apply), `SCALE_N_HUGE` (100,000, at 0 ms);
//! - `SCALE_LATENCY_MS` (20), `SIPFORM_BIN` (the release binary `cargo bench` builds).
//!
//! Quick run: `SCALE_N=500 SCALE_N_SMALL=200 SCALE=apply1k,fresh,nochange cargo bench --bench scale`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error>;

const REFERENCE_PARALLELISM: f64 = 64.0;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn bin() -> String {
    std::env::var("SIPFORM_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_sipform").into())
}

/// The emulator, stopped when dropped.
struct Emulator {
    child: Child,
    addr: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    fn start(latency_ms: u64, faults: Option<&str>) -> Result<Emulator, Error> {
        let mut cmd = Command::new(bin());
        cmd.args(["emulator", "--port", "0", "--latency-ms"])
            .arg(latency_ms.to_string());
        let file = tempfile::NamedTempFile::new()?;
        if let Some(f) = faults {
            std::fs::write(file.path(), f)?;
            cmd.arg("--faults").arg(file.path());
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or("no listening line")?
            .to_string();
        let addr = base
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        Ok(Emulator { child, addr })
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests served so far, and how many were answered 429: one admin GET over a plain
    /// HTTP/1.0 connection (no client library needed), its body read as a stream that skips
    /// the request log. Parsed whole, the log (up to 100,000 entries) grew this process past
    /// 100 MB, and a child's peak RSS counts its parent's from before `exec`: every later
    /// row would have shown this process's memory, not sipform's.
    fn requests(&self) -> Result<(u64, u64), Error> {
        #[derive(serde::Deserialize)]
        struct Requests {
            counts: std::collections::HashMap<String, u64>,
            statuses: std::collections::HashMap<String, u64>,
        }
        let mut s = TcpStream::connect(&self.addr)?;
        write!(
            s,
            "GET /__emulator/requests HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.addr
        )?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        while r.read_line(&mut line)? > 0 && line.trim_end() != "" {
            line.clear();
        }
        let v: Requests = serde_json::from_reader(r)?;
        let throttled = v.statuses.get("429").copied().unwrap_or(0);
        Ok((v.counts.values().sum(), throttled))
    }

    /// The emulator's own peak memory (VmHWM), in MB.
    fn peak_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

/// What one sipform child cost.
struct Run {
    wall: Duration,
    cpu: Duration,
    peak_mb: f64,
    ok: bool,
}

/// Runs sipform to completion, stdout and stderr to files, and reads its rusage.
fn sipform(project: &Path, args: &[&str], server: Option<&str>) -> Result<Run, Error> {
    let out = std::fs::File::create(project.join("out.txt"))?;
    let err = std::fs::File::create(project.join("err.txt"))?;
    let mut cmd = Command::new(bin());
    cmd.arg("-C").arg(project).args(args);
    cmd.env_remove("NEXT_PUBLIC_APP_URL")
        .env_remove("DATABASE_URL")
        .env_remove("SIP_ACCOUNT_API_KEY")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if let Some(url) = server {
        cmd.env("SIP_AGENT_SERVER_URL", url);
    }
    let start = Instant::now();
    let child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child, the pointers are valid for the call.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    if r != pid {
        return Err("wait4 failed".into());
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok {
        let tail = std::fs::read_to_string(project.join("err.txt")).unwrap_or_default();
        let tail: String = tail
            .chars()
            .rev()
            .take(1500)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        eprintln!("sipform {args:?} failed:\n{tail}");
    }
    Ok(Run {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        peak_mb: usage.ru_maxrss as f64 / 1024.0,
        ok,
    })
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest)?;
        } else {
            std::fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}

/// One restaurant file; the flags cycle so every template branch is exercised.
fn restaurant(i: usize) -> String {
    format!(
        "id: 00000000-0000-4000-8000-{i:012}\nname: Restaurant {i}\nphone: \"+3314{i:07}\"\n\
         contact_email: r{i}@example.fr\ndelivery_enabled: {}\nreservation_enabled: {}\n\
         order_status_enabled: {}\ntransfer_enabled: {}\ntransfer_phone_number: \"+3399{i:07}\"\n\
         chat_enabled: {}\nsip_enabled: true\n",
        i.is_multiple_of(2),
        i.is_multiple_of(3),
        i.is_multiple_of(5),
        i.is_multiple_of(7),
        i.is_multiple_of(4),
    )
}

/// The bundled project's tools and template with `n` generated restaurants and its own state.
fn project(n: usize) -> Result<tempfile::TempDir, Error> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir()?;
    // docs/: sipform.yaml's platform.openapi, the contract validate checks the tools against.
    for d in ["tools", "templates", "docs"] {
        copy_dir(&root.join(d), &tmp.path().join(d))?;
    }
    // The bundled settings as they are: the default answer cap holds 100,000 agents.
    std::fs::copy(root.join("sipform.yaml"), tmp.path().join("sipform.yaml"))?;
    let dir = tmp.path().join("restaurants");
    std::fs::create_dir_all(&dir)?;
    for i in 0..n {
        std::fs::write(dir.join(format!("r{i:06}.yaml")), restaurant(i))?;
    }
    Ok(tmp)
}

fn row(what: &str, n: usize, run: &Run, requests: u64, latency_ms: u64, extra: &str) {
    let floor = requests as f64 * latency_ms as f64 / 1000.0 / REFERENCE_PARALLELISM;
    let per_request = if requests > 0 {
        format!("{:.0} µs", run.cpu.as_secs_f64() * 1e6 / requests as f64)
    } else {
        "-".into()
    };
    let vs_floor = if floor > 0.0 {
        format!("{:.2}×", run.wall.as_secs_f64() / floor)
    } else {
        "-".into()
    };
    println!(
        "| {what} | {n} | {:.2} s | {floor:.2} s | {vs_floor} | {:.2} s | {per_request} | {:.0} MB | {requests} | {extra}{} |",
        run.wall.as_secs_f64(),
        run.cpu.as_secs_f64(),
        run.peak_mb,
        if run.ok { "" } else { " FAILED" },
    );
}

/// A fresh apply of `n` restaurants then, optionally, a no-change plan.
fn apply_then_plan(
    label: &str,
    n: usize,
    latency_ms: u64,
    faults: Option<&str>,
    then_plan: bool,
) -> Result<(), Error> {
    let emu = Emulator::start(latency_ms, faults)?;
    let dir = project(n)?;
    let url = emu.url();
    let (before, _) = emu.requests()?;
    let run = sipform(dir.path(), &["apply", "--auto-approve"], Some(&url))?;
    let (after, throttled) = emu.requests()?;
    let requests = after - before;
    let extra = if faults.is_some() {
        let limit = requests as f64 / 500.0;
        format!(
            "429: {:.1}%, {:.2}× (requests ÷ 500/s = {limit:.1} s)",
            100.0 * throttled as f64 / requests.max(1) as f64,
            run.wall.as_secs_f64() / limit
        )
    } else {
        String::new()
    };
    let out = std::fs::metadata(dir.path().join("out.txt")).map_or(0, |m| m.len());
    row(
        &format!("{label} fresh apply"),
        n,
        &run,
        requests,
        latency_ms,
        &format!("{extra} stdout {:.1} KB", out as f64 / 1024.0),
    );
    if then_plan {
        let (before, _) = emu.requests()?;
        let run = sipform(dir.path(), &["plan", "--detailed-exitcode"], Some(&url));
        let (after, _) = emu.requests()?;
        // --detailed-exitcode: 0 = no changes (anything else is shown FAILED).
        let run = run?;
        row(
            &format!("{label} no-change plan"),
            n,
            &run,
            after - before,
            latency_ms,
            "",
        );
    }
    println!(
        "|   emulator peak RSS | {n} | | | | | | {:.0} MB | | |",
        emu.peak_mb()
    );
    Ok(())
}

fn validate(n: usize) -> Result<(), Error> {
    let dir = project(n)?;
    let run = sipform(dir.path(), &["validate"], None)?;
    row("validate", n, &run, 0, 0, "");
    Ok(())
}

fn main() -> Result<(), Error> {
    let all = "apply1k,fresh,nochange,validate,ratelimited";
    let chosen = std::env::var("SCALE").unwrap_or_else(|_| all.into());
    let want = |s: &str| chosen.split(',').any(|c| c.trim() == s);
    let n = env_or("SCALE_N", 10_000usize);
    let small = env_or("SCALE_N_SMALL", 1_000usize);
    let huge = env_or("SCALE_N_HUGE", 100_000usize);
    let latency = env_or("SCALE_LATENCY_MS", 20u64);
    println!(
        "sipform {}: {} cores",
        bin(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| scenario | N | wall | floor (req × latency ÷ 64) | wall ÷ floor | CPU (user+sys) | CPU per request | peak RSS | requests | notes |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    if want("apply1k") {
        apply_then_plan(
            &format!("{latency} ms, defaults:"),
            small,
            latency,
            None,
            false,
        )?;
    }
    if want("fresh") || want("nochange") {
        apply_then_plan(
            &format!("{latency} ms:"),
            n,
            latency,
            None,
            want("nochange"),
        )?;
    }
    if want("validate") {
        validate(n)?;
    }
    if want("ratelimited") {
        let faults = r#"{"rateLimit": {"burst": 50, "perSecond": 500}}"#;
        apply_then_plan("500 req/s limit:", small, 0, Some(faults), false)?;
    }
    if want("huge") {
        apply_then_plan("0 ms:", huge, 0, None, true)?;
    }
    Ok(())
}
