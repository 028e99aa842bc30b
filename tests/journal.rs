//! The file backend's journal, through the real binary: a torn last entry is dropped with a
//! warning, a corrupt one in the middle stops the run naming the file and offset, reading a
//! killed run's journal twice gives the same state, and the end of a run folds it in.

mod common;

use std::path::Path;

use common::*;

const FRAME_HEADER: usize = 12;

fn journal(dir: &Path) -> std::path::PathBuf {
    dir.join("sipform.state.json.journal")
}

/// Offsets of the framed entries of a journal (after its 8-byte magic).
fn entry_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut at = 8;
    let mut out = Vec::new();
    while at + FRAME_HEADER <= bytes.len() {
        out.push(at);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        at += FRAME_HEADER + len;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_entry_is_dropped_with_a_warning_and_the_run_goes_on() {
    let emu = emulator().await;
    let dir = project_copy();
    apply_ok(dir.path(), &emu.base_url()).await;
    let compacted = std::fs::read(journal(dir.path())).expect("journal");
    assert_eq!(
        entry_offsets(&compacted).len(),
        1,
        "the run's end folded it in"
    );

    // A crash mid-append: a length prefix promising more than was written.
    let mut torn = compacted.clone();
    torn.extend_from_slice(&600u32.to_le_bytes());
    torn.extend_from_slice(&[7u8; 8]);
    torn.extend_from_slice(br#"{"serial":99,"changes":[{"r":"x""#);
    std::fs::write(journal(dir.path()), &torn).expect("write");
    let out = run(
        dir.path(),
        &emu.base_url(),
        &["plan", "--detailed-exitcode"],
    )
    .await;
    expect_code(&out, 0);
    assert!(
        stderr(&out).contains("dropped an incomplete last entry at byte"),
        "{}",
        stderr(&out)
    );
    // The next run that holds the lock leaves a whole journal again.
    apply_ok(dir.path(), &emu.base_url()).await;
    let after = std::fs::read(journal(dir.path())).expect("journal");
    assert_eq!(entry_offsets(&after).len(), 1);
    assert!(!after.ends_with(br#""r":"x""#));
    assert_state_matches_server(dir.path(), &emu);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_runs_journal_replays_the_same_twice_and_a_corrupt_entry_stops_the_run() {
    let emu = emulator_with(latency(3), 3).await;
    let dir = project_copy();
    generate_restaurants(dir.path(), 20);
    kill_apply_after(dir.path(), &emu, 60).await;
    let bytes = std::fs::read(journal(dir.path())).expect("journal");
    let offsets = entry_offsets(&bytes);
    assert!(offsets.len() > 3, "the killed run journalled its commits");

    // Reading never writes: twice the same state, the files untouched.
    let first = read_state(dir.path());
    let doc = std::fs::read(dir.path().join("sipform.state.json")).expect("state");
    let out = run(dir.path(), &emu.base_url(), &["state", "list"]).await;
    expect_code(&out, 0);
    assert_eq!(read_state(dir.path()), first);
    assert_eq!(std::fs::read(journal(dir.path())).expect("journal"), bytes);
    assert_eq!(
        std::fs::read(dir.path().join("sipform.state.json")).expect("state"),
        doc
    );

    // A flipped byte in the second entry, with more after it: fatal, named.
    let mut bad = bytes.clone();
    bad[offsets[1] + FRAME_HEADER + 2] ^= 0x01;
    std::fs::write(journal(dir.path()), &bad).expect("write");
    let out = run(dir.path(), &emu.base_url(), &["plan"]).await;
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "sipform.state.json.journal at byte {}",
            offsets[1]
        )),
        "{err}"
    );
    let before = writes(&emu);
    let out = run(dir.path(), &emu.base_url(), &["apply", "--auto-approve"]).await;
    expect_code(&out, 1);
    assert_eq!(writes_since(&emu, &before).values().sum::<u64>(), 0);

    // Restored, the next apply converges on what the killed one left.
    std::fs::write(journal(dir.path()), &bytes).expect("write");
    apply_ok(dir.path(), &emu.base_url()).await;
    assert_converged(dir.path(), &emu.snapshot(), 20);
    assert_state_matches_server(dir.path(), &emu);
}
