//! `sipform emulator`: run the sip-agent-server emulator until Ctrl-C.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use sipform_emulator::{Emulator, EmulatorConfig, ErrorRule, Faults, Latency};

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    /// Port to listen on; 0 picks a free one (the `listening on` line tells which).
    #[arg(long, default_value_t = 4000)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Require this `X-API-Key` on every /api call (401 otherwise).
    #[arg(long, env = "SIPFORM_EMULATOR_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Snapshot file: loaded at start if present, rewritten atomically after every write.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seed of the RNG behind random faults: the same seed replays the same faults.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Append this to every id made: ids longer than the platform's varchar(36), for testing
    /// that clients refuse them.
    #[arg(long, default_value = "")]
    id_suffix: String,
    /// Fault set as JSON (the body `POST /__emulator/faults` takes); the flags below override it.
    #[arg(long)]
    faults: Option<PathBuf>,
    /// Fixed latency added to every /api request, in milliseconds.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Random extra latency, uniform in 0..=N milliseconds.
    #[arg(long)]
    jitter_ms: Option<u64>,
    /// Probability (0..1) that any /api request answers 500, 502 or 503.
    #[arg(long)]
    error_rate: Option<f64>,
}

/// The fault set from `--faults` and the shorthand flags.
fn faults(args: &Args) -> anyhow::Result<Faults> {
    let mut faults = match &args.faults {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a fault set", path.display()))?
        }
        None => Faults::default(),
    };
    if args.latency_ms.is_some() || args.jitter_ms.is_some() {
        let mut latency = faults.latency.take().unwrap_or(Latency::default());
        latency.fixed_ms = args.latency_ms.unwrap_or(latency.fixed_ms);
        latency.jitter_ms = args.jitter_ms.unwrap_or(latency.jitter_ms);
        faults.latency = Some(latency);
    }
    if let Some(rate) = args.error_rate {
        faults.errors.push(ErrorRule {
            method: "*".into(),
            route: "*".into(),
            rate,
            statuses: vec![500, 502, 503],
        });
    }
    faults
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid fault set: {e}"))?;
    Ok(faults)
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let config = EmulatorConfig {
        bind: args.bind,
        port: args.port,
        api_key: args
            .api_key
            .clone()
            .filter(|k| !k.is_empty())
            .map(sipform_emulator::ApiKey::new),
        data: args.data.clone(),
        seed: args.seed,
        id_suffix: args.id_suffix.clone(),
        faults: faults(&args)?,
    };
    // The emulator needs no project: say so when asked for detail, so `-C` is not a mystery.
    if global.verbose > 0 {
        tracing::info!(target: sipform::LOG_TARGET, project = %global.project.display(), "the emulator ignores the project folder");
    }
    let handle = Emulator::start(config).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", handle.base_url())?;
        out.flush()?;
    }
    tracing::info!(target: sipform::LOG_TARGET, addr = %handle.addr(), "emulator started");
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    handle.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
