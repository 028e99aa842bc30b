//! A one-tool edit on N agents at a fixed injected latency, applied in waves (a canary of 1%
//! of the fleet, then 10%, then 100%, no pause, no health gate) next to the same edit applied
//! without a rollout policy, each on its own freshly provisioned fleet. The target:
//! waves take at most 1.3x the plain apply.
//! `cargo bench --bench rollout -- [N] [LATENCY_MS]` (defaults 10000 and 20).

use std::path::Path;
use std::time::{Duration, Instant};

use sipform::apply::Silent;
use sipform::config::{Overrides, Settings};
use sipform::front::diagnostics::{Origin, Sourced};
use sipform::model::ids::RestaurantId;
use sipform::model::spec::{Canary, Restaurant, RolloutPolicy, StateConfig, WaveSize};
use sipform::ops::plan::PlanOptions;
use sipform::ops::Workspace;
use sipform_emulator::{Emulator, EmulatorConfig, EmulatorHandle, Faults};

type Error = Box<dyn std::error::Error>;

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

/// The bundled project's files in `dir` (its restaurants come from [`restaurants`]).
fn project(dir: &Path) -> Result<(), Error> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["tools", "templates", "docs"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    for sub in ["tools", "templates"] {
        for e in std::fs::read_dir(root.join(sub))? {
            let e = e?;
            std::fs::copy(e.path(), dir.join(sub).join(e.file_name()))?;
        }
    }
    std::fs::copy(root.join("sipform.yaml"), dir.join("sipform.yaml"))?;
    std::fs::copy(
        root.join("docs/platform.openapi.yaml"),
        dir.join("docs/platform.openapi.yaml"),
    )?;
    Ok(())
}

/// A workspace over `dir`'s files and `n` restaurants, against `emu`, with `policy`.
fn workspace(
    dir: &Path,
    emu: &EmulatorHandle,
    n: usize,
    policy: Option<RolloutPolicy>,
) -> Result<Workspace, Error> {
    let mut settings = Settings::load(
        dir,
        &Overrides {
            server_url: Some(emu.base_url()),
            api_key: Some(None),
            state: Some(StateConfig::File {
                path: dir.join("state.json"),
                store_tokens: false,
            }),
            ..Overrides::default()
        },
    )?;
    settings.rollout = policy;
    let env = settings.render_env();
    let v = sipform::front::validate::desired_with(dir, &env, restaurants(n))?;
    Ok(Workspace::new(settings, v.desired)?)
}

/// Plan and apply of `ws` (in waves when it has a policy); the time and how it ended.
async fn plan_apply(ws: &Workspace) -> Result<(Duration, String, usize), Error> {
    let client = ws.client()?;
    let t = Instant::now();
    let lock = ws.lock("apply").await?;
    let state = ws.state().await?;
    let plan = ws.plan(&client, &state, &PlanOptions::default()).await?;
    let run = sipform::ops::rollout::apply_in_waves(ws, &client, &plan, state, &Silent).await?;
    drop(lock);
    let failed = run
        .report
        .outcomes
        .iter()
        .filter(|o| o.error.is_some())
        .count();
    Ok((t.elapsed(), format!("{:?}", run.verdict), failed))
}

/// A fleet of `n` provisioned (untimed), then the one-tool edit applied (timed).
async fn one_edit(
    n: usize,
    latency: u64,
    policy: Option<RolloutPolicy>,
) -> Result<Duration, Error> {
    let faults: Faults = serde_json::from_value(
        serde_json::json!({"latency": {"fixedMs": latency, "jitterMs": 0}}),
    )?;
    let emu = Emulator::start(EmulatorConfig {
        faults,
        ..EmulatorConfig::default()
    })
    .await?;
    let scratch = tempfile::tempdir()?;
    project(scratch.path())?;
    plan_apply(&workspace(scratch.path(), &emu, n, None)?).await?;
    let end_call = scratch.path().join("tools/end_call.yaml");
    let text = std::fs::read_to_string(&end_call)?;
    std::fs::write(&end_call, text.replacen("Raccroche.", "Raccroche (v2).", 1))?;
    let label = if policy.is_some() {
        "waves 1%/10%/100%"
    } else {
        "no waves"
    };
    let ws = workspace(scratch.path(), &emu, n, policy)?;
    let (took, verdict, failed) = plan_apply(&ws).await?;
    println!(
        "one-tool edit, {label}: {:.2}s ({verdict}, {failed} failed)",
        took.as_secs_f64()
    );
    emu.shutdown().await;
    Ok(took)
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let latency: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("{n} agents, {latency} ms injected latency");
    let policy = RolloutPolicy {
        canary: Canary::Count((n / 100).max(1) as u32),
        waves: vec![
            WaveSize::Percent("10%".into()),
            WaveSize::Percent("100%".into()),
        ],
        pause: "0s".into(),
        max_failures: 0,
        health: None,
        rollback: None,
    };
    let plain = rt.block_on(one_edit(n, latency, None))?;
    let waves = rt.block_on(one_edit(n, latency, Some(policy)))?;
    println!(
        "waves / no waves: {:.2}x (target: at most 1.3x)",
        waves.as_secs_f64() / plain.as_secs_f64()
    );
    Ok(())
}
