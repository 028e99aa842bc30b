//! Load and memory figures for the emulator, measured from a second process.
//!
//! Starts `sipform emulator --port 0` as a child, then:
//! 1. hammers `GET /api/accounts` for `EMU_BENCH_SECS` (5) with `EMU_BENCH_CONCURRENCY` (32)
//!    keep-alive connections and prints requests/s;
//! 2. creates `EMU_BENCH_AGENTS` (10,000) agents with the platform's tools each (the platform's tools, from
//!    `tests/fixtures/platform/platform-tools-facts.json`, or `EMU_BENCH_TOOLS` when set) and
//!    prints the child's resident memory (VmRSS, VmHWM from /proc);
//! 3. measures `GET /api/agents/:id/tools` on the full store.
//!
//! `EMU_BENCH_DATA=FILE` runs the emulator with `--data FILE` (the file is removed first).
//!
//! Run: `cargo bench --bench emulator_load` (release), or against any build with
//! `SIPFORM_BIN=target/debug/sipform cargo bench --bench emulator_load`; `cargo test --bench
//! emulator_load` runs it on the debug build.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn tools() -> Vec<Value> {
    let path = std::env::var("EMU_BENCH_TOOLS").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/platform/platform-tools-facts.json"
        )
        .into()
    });
    let description = "Outil utilise par l'agent pendant l'appel : verifie les informations donnees par le \
                       client, appelle le service du restaurant et lit la reponse avant de poursuivre."
        .repeat(2);
    let mut tools: Vec<Value> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if tools.is_empty() {
        // As many as the bundled project has.
        let bundled = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tools"))
            .map(|d| d.count())
            .unwrap_or(12);
        tools = (0..bundled)
            .map(|i| {
                json!({"name": format!("tool_{i}"), "sortOrder": i,
                       "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
                       "http": {"method": "POST", "url": "={{BASE_URL}}/api/x",
                                "bodyTemplate": {"restaurantId": "={{config.restaurantId}}", "q": "={{$ai.q}}"}}})
            })
            .collect();
    }
    for t in &mut tools {
        if let Some(o) = t.as_object_mut() {
            o.entry("description")
                .or_insert_with(|| Value::from(description.clone()));
        }
    }
    tools
}

fn rss(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn hammer(
    client: &reqwest::Client,
    url: String,
    secs: u64,
    concurrency: usize,
) -> (f64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, ok, failed) = (client.clone(), url.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let n = ok.load(Ordering::Relaxed);
    (
        n as f64 / start.elapsed().as_secs_f64(),
        failed.load(Ordering::Relaxed),
    )
}

async fn run(base: String, pid: u32) -> Result<(), Error> {
    let secs = env_or("EMU_BENCH_SECS", 5u64);
    let concurrency = env_or("EMU_BENCH_CONCURRENCY", 32usize);
    let agents = env_or("EMU_BENCH_AGENTS", 10_000usize);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;

    let (rps, failed) = hammer(&client, format!("{base}/api/accounts"), secs, concurrency).await;
    println!("GET /api/accounts (empty): {rps:.0} req/s over {secs}s, {concurrency} connections, {failed} failed");
    println!("memory at start: {}", rss(pid));

    let acc: Value = client
        .post(format!("{base}/api/accounts"))
        .json(&json!({"name": "AlloResto"}))
        .send()
        .await?
        .json()
        .await?;
    let fc: Value = client
        .post(format!("{base}/api/final-customers"))
        .json(&json!({"accountId": acc["id"], "name": "Bench"}))
        .send()
        .await?
        .json()
        .await?;
    let tools = Arc::new(tools());
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (client, base, tools, next) =
            (client.clone(), base.clone(), tools.clone(), next.clone());
        let (acc, fc) = (acc["id"].clone(), fc["id"].clone());
        tasks.push(tokio::spawn(async move {
            let mut last = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= agents {
                    return Ok::<_, Error>(last);
                }
                let body = json!({"accountId": acc, "finalCustomerId": fc, "name": format!("Restaurant {i}"),
                    "basePrompt": "={{data.systemPrompt}}", "aiModel": "gpt-realtime", "aiVoice": "sage",
                    "vadThreshold": 0.5, "vadSilenceMs": 500, "vadPrefixPaddingMs": 300, "temperature": 0.7,
                    "transportType": "sip_bridge", "timezone": "Europe/Paris", "apiBaseUrl": "http://localhost:3000",
                    "maxCallDurationSec": 600, "onCallEndWebhook": "={{BASE_URL}}/api/calls",
                    "externalSessionUrl": "=http://localhost:3000/api/ai?restaurantId={{config.restaurantId}}&callerPhone={{callerPhone}}",
                    "chatEnabled": false, "chatMode": "text", "chatTitle": null, "chatOpenOnLoad": false,
                    "config": {"restaurantId": format!("r{i}"), "deliveryEnabled": true, "reservationEnabled": true,
                               "orderStatusEnabled": true, "transferEnabled": false},
                    "isActive": true});
                let agent: Value = client.post(format!("{base}/api/agents")).json(&body).send().await?.json().await?;
                let id = agent["id"].as_str().unwrap_or_default().to_string();
                let brain = json!({"prompt": "={{data.systemPrompt}}", "version": 1, "tools": &*tools});
                let r = client.put(format!("{base}/api/agents/{id}/brain")).json(&brain).send().await?;
                if !r.status().is_success() {
                    return Err(format!("brain: {}", r.status()).into());
                }
                last = Some(id);
            }
        }));
    }
    let mut some_agent = None;
    for t in tasks {
        if let Some(id) = t.await?? {
            some_agent = Some(id);
        }
    }
    println!(
        "created {agents} agents x {} tools in {:.1}s; memory: {}",
        tools.len(),
        started.elapsed().as_secs_f64(),
        rss(pid)
    );
    if let Some(id) = some_agent {
        let (rps, failed) = hammer(
            &client,
            format!("{base}/api/agents/{id}/tools"),
            secs,
            concurrency,
        )
        .await;
        println!(
            "GET /api/agents/:id/tools ({} tools, full store): {rps:.0} req/s, {failed} failed",
            tools.len()
        );
        let (rps, failed) = hammer(
            &client,
            format!("{base}/api/agents/{id}"),
            secs,
            concurrency,
        )
        .await;
        println!("GET /api/agents/:id (full store): {rps:.0} req/s, {failed} failed");
    }
    println!("memory at end: {}", rss(pid));
    Ok(())
}

fn main() -> Result<(), Error> {
    let bin = std::env::var("SIPFORM_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_sipform").into());
    let mut args = vec!["emulator".to_string(), "--port".into(), "0".into()];
    if let Ok(data) = std::env::var("EMU_BENCH_DATA") {
        let _ = std::fs::remove_file(&data);
        args.extend(["--data".into(), data]);
    }
    let mut child = Kill(
        Command::new(&bin)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or("no listening line")?
        .to_string();
    println!("emulator {bin} at {base}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(base, child.0.id()))
}
