//! Adaptive parallelism through the real binary: against the emulator's token bucket an apply
//! completes with few 429s (counted by the emulator, not timed), the summary and the JSON
//! report say what the run settled on, and a number still fixes it.

mod common;

use common::*;
use serde_json::{json, Value};

const RESTAURANTS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_apply_completes_with_few_429s() {
    // 100 requests a second, burst 30: far below what `auto` grows to at 20 ms a request.
    // Before the first 429 comes back, what is in flight overshoots the bucket; after it, the
    // pacer keeps 429s rare (0.1-0.3 % over 1,000 restaurants:
    // `SCALE=ratelimited cargo bench --bench scale`).
    let faults = serde_json::from_value(json!({
        "latency": {"fixedMs": 20, "jitterMs": 0},
        "rateLimit": {"burst": 30, "perSecond": 100, "retryAfterSec": 1}
    }))
    .expect("faults");
    let emu = emulator_with(faults, 7).await;
    let dir = project_copy();
    generate_restaurants(dir.path(), RESTAURANTS);
    let out = run(
        dir.path(),
        &emu.base_url(),
        &["apply", "--auto-approve", "--json"],
    )
    .await;
    expect_code(&out, 0);
    assert_converged(dir.path(), &emu.snapshot(), RESTAURANTS);

    let by_status = statuses(&emu.base_url()).await;
    let all: u64 = by_status.values().sum();
    let throttled = by_status.get(&429).copied().unwrap_or(0);
    eprintln!("RATE-LIMITED apply: {throttled} of {all} requests answered 429");
    assert!(
        throttled > 0,
        "the bucket must have pushed back: {by_status:?}"
    );
    assert!(
        throttled * 100 <= all * 10,
        "{throttled} of {all} requests answered 429: {by_status:?}"
    );
    let report: Value = serde_json::from_str(&stdout(&out)).expect("JSON report");
    let p = &report["parallelism"];
    assert_eq!(p["auto"], true, "{report}");
    assert_eq!(p["max"], 64);
    assert_eq!(
        p["throttled"].as_u64(),
        Some(throttled),
        "the client saw each 429"
    );
    let pace = p["pacedPerSecond"].as_f64().expect("paced after a 429");
    assert!(pace < 150.0, "paced at {pace}/s against a 100/s bucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_says_what_the_run_settled_on_and_a_number_fixes_it() {
    let emu = emulator_with(latency(2), 1).await;
    let dir = project_copy();
    generate_restaurants(dir.path(), 4);
    let out = apply_ok(dir.path(), &emu.base_url()).await;
    assert!(
        stdout(&out).contains("Parallelism: settled at ")
            && stdout(&out).contains("(auto, at most 64)."),
        "{}",
        stdout(&out)
    );

    emu.reset();
    let _ = std::fs::remove_file(dir.path().join("sipform.state.json"));
    let _ = std::fs::remove_file(dir.path().join("sipform.state.json.journal"));
    let out = run(
        dir.path(),
        &emu.base_url(),
        &["apply", "--auto-approve", "--parallelism", "3"],
    )
    .await;
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("Parallelism: 3 (fixed)."),
        "{}",
        stdout(&out)
    );
    let out = run(
        dir.path(),
        &emu.base_url(),
        &["plan", "--parallelism", "auto", "--max-parallelism", "16"],
    )
    .await;
    expect_code(&out, 0);

    for bad in [
        &["plan", "--parallelism", "0"][..],
        &["plan", "--parallelism", "lots"],
        &["plan", "--max-parallelism", "1000"],
    ] {
        let out = run(dir.path(), &emu.base_url(), bad).await;
        assert_ne!(out.status.code(), Some(0), "{bad:?}");
        assert!(stderr(&out).contains("parallelism"), "{}", stderr(&out));
    }
}
