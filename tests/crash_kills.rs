//! Crash safety: SIGKILL an apply at 20 seeded moments, from before its first request to its
//! last create; after each, one `apply` converges with no duplicate and no orphan, creates
//! exactly what the killed one had not (whatever it left unrecorded is adopted, not re-created),
//! state names exactly the server's objects, and `plan` is empty. In five of the rounds the
//! recovering apply is killed half-way too, before the one that converges.
//!
//! With the state journal: SIGKILL a 200-restaurant apply at seeded moments; what the killed
//! run recorded (document + journal replayed) names only objects the server has, misses at
//! most the creates in flight, and the next apply converges with no duplicate.

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

/// The seeded emulator at `ms` ± `ms` of latency, and a project of `n` generated restaurants.
async fn seeded(ms: u64, n: usize) -> (sipform_emulator::EmulatorHandle, tempfile::TempDir) {
    let latency = serde_json::from_value(json!({"latency": {"fixedMs": ms, "jitterMs": ms}}))
        .expect("faults");
    let emu = emulator_with(latency, SEED).await;
    let dir = project_copy();
    generate_restaurants(dir.path(), n);
    (emu, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sigkills_at_seeded_moments_each_converge_on_the_next_apply() {
    let (emu, dir) = seeded(5, RESTAURANTS).await;
    let url = emu.base_url();
    // The account, then per restaurant its final customer, agent, tools and subscription.
    let total = 1 + (objects_per_restaurant() * RESTAURANTS) as u64;
    let started = Instant::now();
    let mut kills = Vec::new();

    for (round, &k) in kill_points(total).iter().enumerate() {
        emu.reset();
        let _ = std::fs::remove_file(dir.path().join("sipform.state.json"));
        let _ = std::fs::remove_file(dir.path().join("sipform.state.json.journal"));

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

        apply_ok(dir.path(), &url).await;
        let recreated_posts = posts(&emu) - before;
        assert_eq!(
            recreated_posts,
            total - existing as u64,
            "round {round} (kill after {k} POSTs, server held {left:?}): the next apply must create exactly what is missing, adopting the rest"
        );
        assert_converged(dir.path(), &emu.snapshot(), RESTAURANTS);
        assert_state_matches_server(dir.path(), &emu);
        expect_no_changes(dir.path(), &url).await;
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
        .filter(|k| k.landed && k.left.2 > 0 && k.left.2 < bundled_tool_count() * RESTAURANTS)
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

/// Every id state names (agents, final customers, tools, other kinds), and every id the server
/// holds.
fn ids(state: &serde_json::Value, snap: &serde_json::Value) -> (Vec<String>, Vec<String>) {
    let mut in_state = Vec::new();
    for r in state["restaurants"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        for key in ["agentId", "finalCustomerId"] {
            in_state.extend(r[key].as_str().map(str::to_string));
        }
        for t in r["tools"].as_object().into_iter().flat_map(|m| m.values()) {
            in_state.extend(t.as_str().map(str::to_string));
        }
        for of_kind in r["objects"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            for o in of_kind.as_object().into_iter().flat_map(|m| m.values()) {
                in_state.extend(o.as_str().map(str::to_string));
            }
        }
    }
    let mut on_server = Vec::new();
    for kind in ["agents", "finalCustomers", "subscriptions", "accounts"] {
        for o in snap[kind].as_array().into_iter().flatten() {
            on_server.extend(o["id"].as_str().map(str::to_string));
            for t in o["tools"].as_array().into_iter().flatten() {
                on_server.extend(t["id"].as_str().map(str::to_string));
            }
        }
    }
    (in_state, on_server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_of_a_200_restaurant_apply_lose_nothing_the_journal_recorded() {
    const N: usize = 200;
    const ROUNDS: usize = 4;
    let (emu, dir) = seeded(2, N).await;
    let url = emu.base_url();
    let total = 1 + (objects_per_restaurant() * N) as u64;
    let mut rng = SmallRng::seed_from_u64(SEED + 1);
    let journal = dir.path().join("sipform.state.json.journal");
    for round in 0..ROUNDS {
        emu.reset();
        let _ = std::fs::remove_file(dir.path().join("sipform.state.json"));
        let _ = std::fs::remove_file(&journal);
        let lo = total * (1 + 2 * round as u64) / (2 * ROUNDS as u64 + 1);
        let k = rng.random_range(lo..lo + total / 10);
        let landed = apply_killed_after(dir.path(), &emu, k, round).await;
        assert!(
            landed,
            "round {round}: the kill after {k} POSTs must land mid-apply"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;

        // What the killed run recorded: only objects the server has, each once, and all but
        // the creates that were in flight.
        let snap = emu.snapshot();
        let recorded = read_state(dir.path());
        let (in_state, on_server) = ids(&recorded, &snap);
        let unique: std::collections::BTreeSet<_> = in_state.iter().collect();
        assert_eq!(
            unique.len(),
            in_state.len(),
            "round {round}: an id recorded twice"
        );
        let server: std::collections::BTreeSet<_> = on_server.iter().collect();
        let phantom: Vec<_> = unique.difference(&server).collect();
        assert!(
            phantom.is_empty(),
            "round {round}: state names {phantom:?}, not on the server"
        );
        let unrecorded = server.len() - unique.len();
        assert!(
            unrecorded <= 64 * bundled_tool_count(),
            "round {round}: {unrecorded} objects created but not recorded"
        );
        assert!(
            std::fs::metadata(&journal).map(|m| m.len()).unwrap_or(0) > 0,
            "round {round}: the killed run left its journal"
        );

        let existing = on_server.len() as u64;
        let before = posts(&emu);
        apply_ok(dir.path(), &url).await;
        assert_eq!(
            posts(&emu) - before,
            total - existing,
            "round {round}: the next apply creates exactly what is missing"
        );
        assert_converged(dir.path(), &emu.snapshot(), N);
        assert_state_matches_server(dir.path(), &emu);
        eprintln!(
            "JOURNAL round {round}: killed after {k} POSTs, {} recorded, {unrecorded} adopted",
            unique.len()
        );
    }
}
