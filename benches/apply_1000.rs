//! Fresh apply and no-change plan of N generated restaurants against the emulator with a fixed
//! injected latency, at the default parallelism (`auto`), next to the floor (requests ×
//! latency ÷ parallelism, 64 for `auto`); optionally with the emulator's token bucket on
//! (RATE requests/s, burst 50), next to requests ÷ RATE and with the share of 429 answers; and
//! the bytes written to the state file and its journal next to the final state's size.
//! `cargo bench --bench apply_1000 -- [N] [LATENCY_MS] [auto|PARALLELISM] [RATE]`.

use std::path::PathBuf;
use std::time::Instant;

use sipform::apply::{self, Silent};
use sipform::config::{Overrides, Settings};
use sipform::front::diagnostics::{Origin, Sourced};
use sipform::model::ids::RestaurantId;
use sipform::model::spec::{Restaurant, StateConfig};
use sipform::ops::plan::PlanOptions;
use sipform::ops::Workspace;
use sipform_emulator::{Emulator, EmulatorConfig, Faults};

fn restaurants(n: usize) -> Vec<Sourced<Restaurant>> {
    (0..n)
        .map(|i| Sourced {
            origin: Origin::Row {
                table: "bench".into(),
                key: i.to_string(),
            },
            value: Restaurant {
                id: RestaurantId::new(format!("00000000-0000-4000-8000-{i:012}")),
                name: format!("Restaurant {i}"),
                phone: Some(format!("+3314{i:08}")),
                contact_email: Some(format!("r{i}@example.com")),
                ai_voice: None,
                timezone: None,
                delivery_enabled: i % 2 == 0,
                reservation_enabled: i % 3 == 0,
                order_status_enabled: i % 5 == 0,
                transfer_enabled: i % 7 == 0,
                transfer_automatic: false,
                transfer_phone_number: Some("+33600000000".into()),
                chat_enabled: false,
                chat_mode: None,
                chat_title: None,
                chat_open_on_load: false,
                sip_enabled: true,
                is_active: true,
                max_call_duration_sec: None,
                phone_line: None,
                platform: Default::default(),
            },
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let latency: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let parallelism = match args.get(2).and_then(|s| s.parse::<usize>().ok()) {
        Some(n) => sipform::config::Parallelism::Fixed(n),
        None => sipform::config::DEFAULT_PARALLELISM,
    };
    let rate: Option<f64> = args.get(3).and_then(|s| s.parse().ok());
    // SIPFORM_LOG=sip-provisioning=debug shows the limiter's decisions.
    if let Ok(filter) = std::env::var("SIPFORM_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut faults = serde_json::json!({"latency": {"fixedMs": latency, "jitterMs": 0}});
        if let Some(r) = rate {
            faults["rateLimit"] =
                serde_json::json!({"burst": 50, "perSecond": r, "retryAfterSec": 1});
        }
        let faults: Faults = serde_json::from_value(faults)?;
        let emu = Emulator::start(EmulatorConfig {
            faults,
            ..EmulatorConfig::default()
        })
        .await?;
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let scratch = tempfile::tempdir()?;
        let settings = Settings::load(
            &root,
            &Overrides {
                server_url: Some(emu.base_url()),
                api_key: Some(None),
                parallelism: Some(parallelism),
                state: Some(StateConfig::File {
                    path: scratch.path().join("state.json"),
                    store_tokens: false,
                }),
                ..Overrides::default()
            },
        )?;
        let env = settings.render_env();
        let t = Instant::now();
        let v = sipform::front::validate::desired_with(&root, &env, restaurants(n))?;
        let validate_time = t.elapsed();
        let ws = Workspace::new(settings, v.desired)?;
        let client = ws.client()?;
        let none = PlanOptions::default();
        let rate_text = rate.map_or(String::new(), |r| format!(", rate-limited to {r} requests/s"));
        println!("{n} restaurants, {latency} ms injected latency{rate_text}, parallelism {parallelism}");
        println!("validate + render: {:.2}s", validate_time.as_secs_f64());

        let width = parallelism.max();
        let floor = |requests: u64| requests as f64 * latency as f64 / 1000.0 / width as f64;

        let before = client.requests();
        let t = Instant::now();
        let lock = ws.lock("apply").await?;
        let written_before = sipform::state::file::bytes_written();
        let state = ws.state().await?;
        let plan = ws.plan(&client, &state, &none).await?;
        let writer = ws.writer(state);
        let report = apply::apply(&plan, &client, &writer, &Silent).await;
        let took = t.elapsed();
        drop(writer);
        drop(lock); // the end of the run: the journal is folded into the state file
        let written = sipform::state::file::bytes_written() - written_before;
        let state_size = std::fs::metadata(scratch.path().join("state.json"))?.len();
        let requests = client.requests() - before;
        if report.failed() {
            eprint!("{}", sipform::output::report(&report));
        }
        println!(
            "fresh plan+apply: {} requests ({} writes), {} retries, {:.2}s; floor {:.2}s ({:.0}% of floor)",
            requests,
            report.requests,
            report.retries,
            took.as_secs_f64(),
            floor(requests),
            100.0 * floor(requests) / took.as_secs_f64()
        );
        if let Some(p) = &report.parallelism {
            let share = 100.0 * p.throttled as f64 / requests.max(1) as f64;
            println!(
                "parallelism settled at {} (auto: {}); {} answers 429 ({share:.2}% of requests); paced at {:?} requests/s",
                p.parallelism, p.auto, p.throttled, p.paced_per_second
            );
        }
        if let Some(r) = rate {
            let ideal = requests as f64 / r;
            println!(
                "rate floor (requests / {r}): {ideal:.2}s; wall / floor: {:.2}",
                took.as_secs_f64() / ideal
            );
        }
        println!(
            "state: {written} bytes written for a final state of {state_size} bytes ({:.2}x)",
            written as f64 / state_size.max(1) as f64
        );

        let before = client.requests();
        let t = Instant::now();
        let state = ws.state().await?;
        let again = ws.plan(&client, &state, &none).await?;
        let took = t.elapsed();
        let requests = client.requests() - before;
        println!(
            "no-change plan: {} requests, {:.2}s; floor {:.2}s; changes: {}",
            requests,
            took.as_secs_f64(),
            floor(requests),
            again.has_changes()
        );
        emu.shutdown().await;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
