//! Fresh apply and no-change plan of N generated restaurants against the emulator with a fixed
//! injected latency, at the default parallelism, next to the floor (requests × latency ÷
//! parallelism). `cargo bench --bench apply_1000 -- [N] [LATENCY_MS] [PARALLELISM]`.

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
    let parallelism: usize = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(sipform::config::DEFAULT_PARALLELISM);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let faults: Faults = serde_json::from_value(
            serde_json::json!({"latency": {"fixedMs": latency, "jitterMs": 0}}),
        )?;
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
        println!("{n} restaurants, {latency} ms injected latency, parallelism {parallelism}");
        println!("validate + render: {:.2}s", validate_time.as_secs_f64());

        let floor = |requests: u64| requests as f64 * latency as f64 / 1000.0 / parallelism as f64;

        let before = client.stats.requests.load(std::sync::atomic::Ordering::Relaxed);
        let t = Instant::now();
        let state = ws.state().await?;
        let plan = ws.plan(&client, &state, &none).await?;
        let writer = ws.writer(state);
        let report = apply::apply(&plan, &client, &writer, &Silent).await;
        let took = t.elapsed();
        let requests = client.stats.requests.load(std::sync::atomic::Ordering::Relaxed) - before;
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
        drop(writer);

        let before = client.stats.requests.load(std::sync::atomic::Ordering::Relaxed);
        let t = Instant::now();
        let state = ws.state().await?;
        let again = ws.plan(&client, &state, &none).await?;
        let took = t.elapsed();
        let requests = client.stats.requests.load(std::sync::atomic::Ordering::Relaxed) - before;
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
