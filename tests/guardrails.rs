//! Guardrails on the plan (issue 30, part B): a template edit that would deactivate 60 of 100
//! agents is refused by `apply` and the controller by default (nothing written to the
//! server), shown in every plan format, and applied when `--allow-changes` names the count.

mod common;

use common::receiver::Receiver;
use common::*;
use serde_json::{json, Value};

/// The template's `isActive` made false for restaurants 0–59 of [`generate_restaurants`]
/// (their phone ends with the index): the bad edit of the issue.
fn deactivate_sixty(dir: &std::path::Path) {
    let path = dir.join("templates/agent.yaml.j2");
    let text = std::fs::read_to_string(&path).expect("template");
    let line = "  isActive: [[ restaurant.sip_enabled | tojson ]]";
    assert!(text.contains(line), "the bundled template changed");
    let edited = text.replace(
        line,
        "  isActive: [[ (restaurant.sip_enabled and ((restaurant.phone[-2:] | int) >= 60)) | tojson ]]",
    );
    std::fs::write(&path, edited).expect("write template");
}

fn inactive_agents(emu: &sipform_emulator::EmulatorHandle) -> usize {
    agents(emu)
        .iter()
        .filter(|a| a["isActive"] == false)
        .count()
}

async fn hundred_applied() -> (sipform_emulator::EmulatorHandle, tempfile::TempDir) {
    let emu = emulator().await;
    let dir = project_copy();
    generate_restaurants(dir.path(), 100);
    apply_ok(dir.path(), &emu.base_url()).await;
    deactivate_sixty(dir.path());
    (emu, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivating_60_of_100_is_refused_by_default_and_applied_with_the_count() {
    let (emu, dir) = hundred_applied().await;
    let url = emu.base_url();
    let d = dir.path();

    // Every format of the plan says which limit and by how much.
    let plan = run(d, &url, &["plan"]).await;
    expect_code(&plan, 0);
    let human = stdout(&plan);
    assert!(
        human.contains("60 restaurants deactivated exceed guardrails.max_deactivations (5% of a fleet of 100: at most 5) by 55"),
        "{human}"
    );
    assert!(human.contains("--allow-changes 60"), "{human}");
    let md = stdout(&run(d, &url, &["plan", "--markdown"]).await);
    assert!(
        md.contains(":warning: Over guardrails: 60 restaurants deactivated"),
        "{md}"
    );
    let json: Value =
        serde_json::from_str(&stdout(&run(d, &url, &["plan", "--json"]).await)).expect("plan json");
    assert_eq!(
        json["guardrails"],
        json!([{"limit": "max_deactivations", "count": 60, "allowed": 5, "setting": "5%", "fleet": 100}])
    );

    // Refused: a fresh plan, a count below the plan's, a saved plan; nothing written.
    let mark = writes(&emu);
    let out = run(d, &url, &["apply", "--auto-approve"]).await;
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("guardrails.max_deactivations"), "{err}");
    assert!(err.contains("--allow-changes 60"), "{err}");
    let out = run(
        d,
        &url,
        &["apply", "--auto-approve", "--allow-changes", "59"],
    )
    .await;
    expect_code(&out, 1);
    expect_code(&run(d, &url, &["plan", "--out", "p.json"]).await, 0);
    let out = run(d, &url, &["apply", "p.json"]).await;
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains("--allow-changes 60"),
        "{}",
        stderr(&out)
    );
    assert!(
        writes_since(&emu, &mark).is_empty(),
        "{:?}",
        writes_since(&emu, &mark)
    );
    assert_eq!(inactive_agents(&emu), 0);

    // Named: the saved plan goes through.
    let out = run(d, &url, &["apply", "p.json", "--allow-changes", "60"]).await;
    expect_code(&out, 0);
    assert_eq!(inactive_agents(&emu), 60);
    expect_no_changes(d, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_holds_the_batch_reports_it_and_applies_it_with_the_flag() {
    let (emu, dir) = hundred_applied().await;
    let url = emu.base_url();
    let d = dir.path();
    let hook = Receiver::start().await;
    let secret_hook = format!("{}/hooks/T000-s3cr3t-hook", hook.base);
    let mark = writes(&emu);
    let out = command(d, &url, &["controller", "--once"])
        .env("SIPFORM_NOTIFY_WEBHOOK", &secret_hook)
        .output()
        .expect("controller");
    expect_code(&out, 0);
    let log = all_output(&out);
    assert!(log.contains("batch held"), "{log}");
    assert!(log.contains("guardrails.max_deactivations"), "{log}");
    assert!(!log.contains("s3cr3t"), "the webhook URL was logged: {log}");
    assert!(
        writes_since(&emu, &mark).is_empty(),
        "{:?}",
        writes_since(&emu, &mark)
    );

    // Notified once, with the breach, and no secret.
    let refused = hook.of_kind("guardrail_refused");
    assert_eq!(refused.len(), 1, "{:?}", hook.received());
    assert_eq!(refused[0]["details"]["allowChangesNeeded"], 60);
    assert!(!refused[0].to_string().contains("s3cr3t"));

    let out = sipform(d, &url, &["controller", "--once", "--allow-changes", "60"]);
    expect_code(&out, 0);
    assert_eq!(inactive_agents(&emu), 60);
    expect_no_changes(d, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_fleet_may_delete_one_and_a_count_limit_is_exact() {
    let emu = emulator().await;
    let url = emu.base_url();
    let dir = project_copy();
    let d = dir.path();
    apply_ok(d, &url).await;
    let files = restaurant_files(d);
    // 1 of 3 deleted: 33%, but a share never allows fewer than 3 restaurants.
    std::fs::remove_file(&files[0]).expect("rm");
    let out = run(d, &url, &["apply", "--auto-approve", "--allow-destroy"]).await;
    expect_code(&out, 0);
    // A count of 0 is exact.
    let yaml = std::fs::read_to_string(d.join("sipform.yaml")).expect("read");
    std::fs::write(
        d.join("sipform.yaml"),
        format!("{yaml}guardrails:\n  max_deletes: 0\n"),
    )
    .expect("write");
    std::fs::remove_file(&files[1]).expect("rm");
    let mark = writes(&emu);
    let out = run(d, &url, &["apply", "--auto-approve", "--allow-destroy"]).await;
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("1 restaurant deleted exceeds guardrails.max_deletes (0: at most 0) by 1"),
        "{err}"
    );
    assert!(writes_since(&emu, &mark).is_empty());
    let out = run(
        d,
        &url,
        &[
            "apply",
            "--auto-approve",
            "--allow-destroy",
            "--allow-changes",
            "1",
        ],
    )
    .await;
    expect_code(&out, 0);
    assert_eq!(agents(&emu).len(), files.len() - 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_that_is_no_count_nor_share_is_refused_naming_its_place() {
    let emu = emulator().await;
    let dir = project_copy();
    let d = dir.path();
    let yaml = std::fs::read_to_string(d.join("sipform.yaml")).expect("read");
    let line = yaml.lines().count() + 2;
    std::fs::write(
        d.join("sipform.yaml"),
        format!("{yaml}guardrails:\n  max_deactivations: lots\n"),
    )
    .expect("write");
    let out = run(d, &emu.base_url(), &["plan"]).await;
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "sipform.yaml:{line}:3: guardrails.max_deactivations"
        )),
        "{err}"
    );
    assert!(
        emu.request_counts().is_empty(),
        "{:?}",
        emu.request_counts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_judges_its_batches_together_not_one_by_one() {
    let (emu, dir) = hundred_applied().await;
    let d = dir.path();
    let yaml = std::fs::read_to_string(d.join("sipform.yaml")).expect("read");
    std::fs::write(
        d.join("sipform.yaml"),
        format!("{yaml}guardrails:\n  max_deactivations: 15\n"),
    )
    .expect("write");
    // Ten batches of ten: each alone is within 15, but the hour's sum is not.
    let out = sipform(
        d,
        &emu.base_url(),
        &["controller", "--once", "--batch-size", "10"],
    );
    expect_code(&out, 0);
    let log = all_output(&out);
    assert!(log.contains("batch held"), "{log}");
    let inactive = inactive_agents(&emu);
    assert!(
        inactive > 0 && inactive <= 15,
        "{inactive} deactivated\n{log}"
    );
}
