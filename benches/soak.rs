//! The full-size soak of issue 6: 200 generated restaurants per seed against the emulator with
//! the soak's fault mix (10% 5xx, 5% commit-then-fail on creates, 2% resets, 429 bursts with
//! Retry-After, 5–50 ms latency), five seeds at once, every invariant of `tests/soak.rs` checked.
//! `cargo bench --bench soak -- [RESTAURANTS] [SEEDS…]` (defaults: 200, seeds 1–5).

#[path = "../tests/soak.rs"]
#[allow(dead_code)]
mod soak;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(200);
    let mut seeds: Vec<u64> = args.iter().skip(1).filter_map(|s| s.parse().ok()).collect();
    if seeds.is_empty() {
        seeds = (1..=5).collect();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let figures = rt.block_on(async move {
        let runs: Vec<_> = seeds
            .iter()
            .map(|&seed| tokio::spawn(soak::soak(seed, n)))
            .collect();
        let mut out = Vec::new();
        for r in runs {
            out.push(r.await.expect("a soak seed failed"));
        }
        out
    });
    println!("| seed | restaurants | applies | requests | retries | wall |");
    println!("|---|---|---|---|---|---|");
    for f in figures {
        println!(
            "| {} | {} | {} | {} | {} | {:.1} s |",
            f.seed, f.restaurants, f.applies, f.requests, f.retries, f.wall_secs
        );
    }
}
