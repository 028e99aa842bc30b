//! Fault-injection soak: generated restaurants against an emulator that answers 10% of every
//! route with 500/502/503, stores 5% of creates and then answers 500, resets 2% of connections,
//! rate-limits with 429 + Retry-After bursts, and adds 5–50 ms of latency, all seeded.
//!
//! One `apply` converges (or two, when a restaurant exhausted its retries); then, faults off,
//! the server holds exactly one agent, one final customer and each bundled tool per restaurant, no
//! duplicate and no orphan, state names exactly the server's objects, and `plan` is empty.
//!
//! CI runs five seeds at [`CI_RESTAURANTS`] restaurants; `cargo bench --bench soak` runs the
//! full 200 (`SOAK_RESTAURANTS` overrides the size here too).

mod common;

use common::*;
use serde_json::json;
use sipform_emulator::Faults;

/// Restaurants per seed in CI (debug build, shared 2-core runner); the bench runs 200.
const CI_RESTAURANTS: usize = 60;

/// The fault mix. The token bucket refills slower than an unthrottled apply asks, so
/// 429 bursts with `Retry-After: 1` come and go all through the run.
pub fn soak_faults() -> Faults {
    serde_json::from_value(json!({
        "latency": {"fixedMs": 5, "jitterMs": 45},
        "errors": [{"method": "*", "route": "*", "rate": 0.10, "statuses": [500, 502, 503]}],
        "commitThenFail": [{"method": "POST", "route": "*", "rate": 0.05, "mode": "error"}],
        "resets": [{"method": "*", "route": "*", "rate": 0.02}],
        "rateLimit": {"burst": 40, "perSecond": 200, "retryAfterSec": 1}
    }))
    .expect("fault set")
}

pub fn size() -> usize {
    std::env::var("SOAK_RESTAURANTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CI_RESTAURANTS)
}

/// One soak run; panics on any broken invariant. Returns the figures it printed.
pub async fn soak(seed: u64, n: usize) -> SoakFigures {
    let emu = emulator_with(soak_faults(), seed).await;
    let url = emu.base_url();
    let dir = project_copy();
    generate_restaurants(dir.path(), n);
    // A stalled request must not dominate the run (no hang faults here, but be explicit).
    set_timeout(dir.path(), 2);

    let started = std::time::Instant::now();
    let mut applies = Vec::new();
    let mut last_failed = false;
    for _ in 0..2 {
        let out = run(dir.path(), &url, &["apply", "--auto-approve"]).await;
        let code = out.status.code();
        let text = stdout(&out);
        let figures = apply_figures(&text).unwrap_or_else(|| {
            panic!(
                "seed {seed}: no apply summary (exit {code:?})\n--- stdout tail\n{}\n--- stderr tail\n{}",
                tail(&text),
                tail(&stderr(&out))
            )
        });
        let failures: Vec<String> = text
            .lines()
            .filter(|l| l.contains("FAILED"))
            .take(5)
            .map(str::to_string)
            .collect();
        applies.push((code, figures, failures));
        last_failed = code != Some(0);
        if !last_failed {
            break;
        }
        // Only a restaurant that exhausted its retries may leave work for a second apply.
        assert!(
            text.contains("FAILED after"),
            "seed {seed}: apply failed without naming a restaurant\n{}",
            tail(&text)
        );
    }
    let wall = started.elapsed();
    assert!(
        !last_failed,
        "seed {seed}: two applies did not converge: {applies:?}"
    );

    // What the faults did, from the emulator's own log.
    let by_status = statuses(&url).await;
    let posts: u64 = emu
        .request_counts()
        .iter()
        .filter(|(k, _)| k.starts_with("POST "))
        .map(|(_, v)| v)
        .sum();
    let creates = 1 + 14 * n as u64;
    let s = |c: u16| by_status.get(&c).copied().unwrap_or(0);
    assert!(s(429) > 0, "seed {seed}: no 429 burst: {by_status:?}");
    assert!(
        s(500) + s(502) + s(503) > 0,
        "seed {seed}: no 5xx: {by_status:?}"
    );
    assert!(s(0) > 0, "seed {seed}: no connection reset: {by_status:?}");
    assert!(
        posts > creates,
        "seed {seed}: faults must have cost extra POSTs ({posts} for {creates} creates)"
    );
    let retries: u64 = applies.iter().map(|(_, f, _)| f.retries).sum();
    assert!(retries > 0, "seed {seed}: no retries reported");

    // Faults off: exact counts, no duplicate, no orphan, state = server, plan empty.
    emu.set_faults(Faults::default());
    assert_converged(dir.path(), &emu.snapshot(), n);
    assert_state_matches_server(dir.path(), &emu);
    expect_no_changes(dir.path(), &url).await;

    let requests: u64 = applies.iter().map(|(_, f, _)| f.requests).sum();
    let figures = SoakFigures {
        seed,
        restaurants: n,
        applies: applies.len(),
        requests,
        retries,
        wall_secs: wall.as_secs_f64(),
    };
    eprintln!(
        "SOAK seed={seed} restaurants={n} applies={} requests={requests} retries={retries} \
         emulator_posts={posts} 429={} 5xx={} resets={} wall={:.1}s apply_time={:?}",
        applies.len(),
        s(429),
        s(500) + s(502) + s(503),
        s(0),
        wall.as_secs_f64(),
        applies
            .iter()
            .map(|(_, f, _)| f.seconds)
            .collect::<Vec<_>>()
    );
    figures
}

#[derive(Debug, Clone, Copy)]
pub struct SoakFigures {
    pub seed: u64,
    pub restaurants: usize,
    pub applies: usize,
    pub requests: u64,
    pub retries: u64,
    pub wall_secs: f64,
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A server that throttles below the client's pace (5 requests a second, `Retry-After: 1`)
/// is waited out: 48 tool creates at once need ~10 s of the server's tokens, more than the
/// 8 attempts any single request had before 429s got their own budget and paused the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_throttling_below_the_client_pace_is_waited_out() {
    let faults: Faults = serde_json::from_value(json!({
        "rateLimit": {"burst": 5, "perSecond": 5, "retryAfterSec": 1}
    }))
    .expect("fault set");
    let emu = emulator_with(faults, 9).await;
    let dir = project_copy();
    generate_restaurants(dir.path(), 4);
    apply_ok(dir.path(), &emu.base_url()).await;
    let by_status = statuses(&emu.base_url()).await;
    assert!(
        by_status.get(&429).copied().unwrap_or(0) > 0,
        "the server must have throttled: {by_status:?}"
    );
    emu.set_faults(Faults::default());
    assert_converged(dir.path(), &emu.snapshot(), 4);
}

/// The five CI seeds, run at once (the apply is mostly waiting, so they overlap well); each
/// seed's figures go to stderr (`--nocapture` shows them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_five_seeds_converge_without_duplicates() {
    let n = size();
    let runs: Vec<_> = (1..=5u64)
        .map(|seed| (seed, tokio::spawn(soak(seed, n))))
        .collect();
    let mut failed = Vec::new();
    for (seed, run) in runs {
        if let Err(e) = run.await {
            failed.push(seed);
            eprintln!("seed {seed} failed: {e}");
        }
    }
    assert!(failed.is_empty(), "soak seeds failed: {failed:?}");
}
