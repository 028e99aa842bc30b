//! Issue 14 #4: once state cannot be written, apply creates nothing more. In-flight requests
//! finish; the run ends non-zero naming state; the objects on the server beyond what state
//! recorded are at most what was in flight.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_created_after_state_stops_being_writable() {
    let emu = emulator_with(latency(15), 1).await;
    let project = project_copy();
    let dir = project.path();
    generate_restaurants(dir, 40);
    let yaml = std::fs::read_to_string(dir.join("sipform.yaml")).expect("sipform.yaml");
    std::fs::create_dir(dir.join("st")).expect("state folder");
    std::fs::write(
        dir.join("sipform.yaml"),
        yaml.replace("path: sipform.state.json", "path: st/state.json"),
    )
    .expect("write sipform.yaml");

    // Output to files: the plan is larger than a pipe holds, and nobody reads it while it runs.
    let log = |name: &str| std::fs::File::create(dir.join(name)).expect("log file");
    let mut child = command(
        dir,
        &emu.base_url(),
        &["apply", "--auto-approve", "--parallelism", "4"],
    )
    .stdout(log("out.txt"))
    .stderr(log("err.txt"))
    .spawn()
    .expect("spawn");
    wait_for("tool creates under way", || {
        count(&emu, "POST /api/agents/:id/tools") >= 40
    })
    .await;
    // The state folder becomes a file: every later state write fails (root ignores
    // permissions, so a read-only folder would not do).
    std::fs::rename(dir.join("st"), dir.join("st.saved")).expect("move the state folder");
    std::fs::write(dir.join("st"), b"not a folder").expect("block the state path");
    let status = child.wait().expect("wait");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let said = format!("{}{}", read("out.txt"), read("err.txt"));
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains("state"), "{said}");

    // The last state as a run reads it: the file and its journal replayed.
    let last = sipform::state::file::read_file(&dir.join("st.saved/state.json"))
        .expect("last state readable")
        .expect("last state");
    let recorded = serde_json::to_value(&last).expect("state JSON");
    let recorded = recorded["restaurants"]
        .as_object()
        .map(|rs| {
            rs.values()
                .map(|r| {
                    usize::from(r.get("agentId").is_some())
                        + usize::from(r.get("finalCustomerId").is_some())
                        + r.get("tools")
                            .and_then(|t| t.as_object())
                            .map_or(0, |t| t.len())
                })
                .sum::<usize>()
        })
        .unwrap_or(0);
    let on_server = agents(&emu).len() + final_customers(&emu).len() + tool_count(&emu);
    assert!(
        on_server >= recorded,
        "state records more than exists: {recorded} > {on_server}"
    );
    // Before the fix apply went on through all 40 restaurants (560 objects).
    assert!(
        on_server - recorded <= 8,
        "{on_server} objects on the server, {recorded} recorded: apply went on creating after state failed\n{}", said.lines().rev().take(8).collect::<Vec<_>>().join("\n")
    );
    assert!(on_server < 560, "apply did not stop: {on_server} objects");
    emu.shutdown().await;
}
