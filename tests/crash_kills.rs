//! Crash safety: SIGKILL an apply at 20 seeded moments, from before its first request to its
//! last create; after each, one `apply` converges with no duplicate and no orphan, creates
//! exactly what the killed one had not (whatever it left unrecorded is adopted, not re-created),
//! state names exactly the server's objects, and `plan` is empty. In five of the rounds the
//! recovering apply is killed half-way too, before the one that converges.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const RESTAURANTS: usize = 30;
const KILLS: usize = 20;
const SEED: u64 = 6;

fn posts(emu: &sipform_emulator::EmulatorHandle) -> u64 {
    emu.request_counts()
        .iter()
        .filter(|(k, _)| k.starts_with("POST "))
        .map(|(_, v)| v)
        .sum()
}

/// Kill points (POSTs the emulator has seen), one per equal slice of a fresh apply's creates,
/// seeded; the first is "at once" (before any request) and the last "after the last create".
fn kill_points(total: u64) -> Vec<u64> {
    let mut rng = SmallRng::seed_from_u64(SEED);
    let mut points: Vec<u64> = (0..KILLS as u64)
        .map(|i| {
            let lo = i * total / KILLS as u64;
            let hi = ((i + 1) * total / KILLS as u64).max(lo + 1);
            rng.random_range(lo..hi)
        })
        .collect();
    points[0] = 0;
    points[KILLS - 1] = total;
    points
}

#[derive(Debug)]
struct Kill {
    after_posts: u64,
    /// The apply was still running when killed (it had not finished on its own).
    landed: bool,
    /// Whether the recovering apply was killed too (and that kill landed).
    second_kill: Option<bool>,
    /// (agents, final customers, tools) on the server right after the kill.
    left: (usize, usize, usize),
    recreated_posts: u64,
}

/// Starts an apply and SIGKILLs it once the emulator has seen `k` POSTs in all. Returns
/// whether the kill landed while it ran (false: it had already finished on its own).
async fn apply_killed_after(
    dir: &std::path::Path,
    emu: &sipform_emulator::EmulatorHandle,
    k: u64,
    round: usize,
) -> bool {
    // Nobody reads the child's output while it runs: discard it, a full pipe would stall it.
    let mut child = command(dir, &emu.base_url(), &["apply", "--auto-approve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn apply");
    let deadline = Instant::now() + Duration::from_secs(60);
    let killed = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert_eq!(
                status.code(),
                Some(0),
                "round {round}: unkilled apply failed"
            );
            break false;
        }
        if posts(emu) >= k {
            child.kill().expect("SIGKILL");
            break true;
        }
        assert!(Instant::now() < deadline, "round {round}: apply stalled");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let status = child.wait().expect("wait");
    if killed {
        use std::os::unix::process::ExitStatusExt;
        // Either our SIGKILL, or the apply had just exited 0 on its own.
        assert!(
            status.signal() == Some(9) || status.code() == Some(0),
            "round {round}: {status}"
        );
    }
    killed && status.code().is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sigkills_at_seeded_moments_each_converge_on_the_next_apply() {
    let latency =
        serde_json::from_value(json!({"latency": {"fixedMs": 5, "jitterMs": 5}})).expect("faults");
    let emu = emulator_with(latency, SEED).await;
    let url = emu.base_url();
    let dir = project_copy();
    generate_restaurants(dir.path(), RESTAURANTS);
    // The account, then per restaurant a final customer, an agent and 12 tools.
    // The account, then per restaurant its final customer, agent, 12 tools and subscription.
    let total = 1 + 15 * RESTAURANTS as u64;
    let started = Instant::now();
    let mut kills = Vec::new();

    for (round, &k) in kill_points(total).iter().enumerate() {
        emu.reset();
        let _ = std::fs::remove_file(dir.path().join("sipform.state.json"));

        let landed = apply_killed_after(dir.path(), &emu, k, round).await;
        // Every fourth round, the apply that recovers is itself killed half-way (it is then
        // adopting what the first one left unrecorded), before a third one converges.
        let mut second_kill = None;
        if round % 4 == 2 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let remaining = total.saturating_sub(posts(&emu));
            let at = posts(&emu) + remaining / 2;
            second_kill = Some(apply_killed_after(dir.path(), &emu, at, round).await);
        }
        // A request the killed process had in flight may still be handled; let it settle.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let snap = emu.snapshot();
        let left = snapshot_counts(&snap);
        let accounts = snap["accounts"].as_array().map_or(0, |a| a.len());
        let subscriptions = snap["subscriptions"].as_array().map_or(0, |s| s.len());
        let existing = left.0 + left.1 + left.2 + accounts + subscriptions;
        let before = posts(&emu);

        let (d, u) = (dir.path().to_path_buf(), url.clone());
        let out =
            tokio::task::spawn_blocking(move || sipform(&d, &u, &["apply", "--auto-approve"]))
                .await
                .expect("join");
        expect_code(&out, 0);
        let recreated_posts = posts(&emu) - before;
        assert_eq!(
            recreated_posts,
            total - existing as u64,
            "round {round} (kill after {k} POSTs, server held {left:?}): the next apply must create exactly what is missing, adopting the rest"
        );
        assert_converged(dir.path(), &emu.snapshot(), RESTAURANTS);
        assert_state_matches_server(dir.path(), &emu);
        let (d, u) = (dir.path().to_path_buf(), url.clone());
        let plan =
            tokio::task::spawn_blocking(move || sipform(&d, &u, &["plan", "--detailed-exitcode"]))
                .await
                .expect("join");
        expect_code(&plan, 0);
        kills.push(Kill {
            after_posts: k,
            landed,
            second_kill,
            left,
            recreated_posts,
        });
    }

    for k in &kills {
        eprintln!(
            "KILL after {} POSTs: landed {}, recovery killed too {:?}, server held {:?} (agents, fcs, tools), next apply POSTed {}",
            k.after_posts, k.landed, k.second_kill, k.left, k.recreated_posts
        );
    }
    let mid = kills
        .iter()
        .filter(|k| k.landed && k.left.2 > 0 && k.left.2 < 12 * RESTAURANTS)
        .count();
    eprintln!(
        "CRASH kills={} landed={} mid_apply_with_partial_server={mid} wall={:.1}s",
        kills.len(),
        kills.iter().filter(|k| k.landed).count(),
        started.elapsed().as_secs_f64()
    );
    // The kills must really interrupt applies half-way, not just land before or after them.
    assert!(
        mid >= KILLS / 2,
        "only {mid} of {KILLS} kills landed mid-apply: {kills:?}"
    );
}
