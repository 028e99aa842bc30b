//! A killed apply loses nothing; two applies never run at once.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_the_middle_of_an_apply_of_50_restaurants_loses_nothing() {
    let emu = emulator_with(latency(20), 1).await;
    let dir = project_copy();
    generate_restaurants(dir.path(), 50);
    kill_apply_after(dir.path(), &emu, 200).await;
    let made = agents(&emu).len();
    assert!(
        made > 0 && tool_count(&emu) < 50 * bundled_tool_count(),
        "the kill must land mid-apply ({made} agents, {} tools)",
        tool_count(&emu)
    );

    emu.set_faults(Default::default());
    apply_ok(dir.path(), &emu.base_url()).await;
    assert_eq!(agents(&emu).len(), 50);
    assert_eq!(final_customers(&emu).len(), 50);
    assert_eq!(tool_count(&emu), 50 * bundled_tool_count());
    assert_state_matches_server(dir.path(), &emu);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_apply_waits_for_the_lock_or_names_its_holder() {
    let emu = emulator_with(latency(30), 2).await;
    let dir = project_copy();
    generate_restaurants(dir.path(), 20);
    assert_applies_never_overlap(dir.path(), &emu).await;
    assert_eq!(agents(&emu).len(), 20);
    assert_state_matches_server(dir.path(), &emu);
}
