//! Change windows in each restaurant's own time zone, and no update during a live call
//! (issue 30, part A), through the real binary against the emulator.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

const PARIS: &str = "7a1d9e42-5c3b-4f18-b6a0-2e9c4d8f7b12"; // le-bistrot-du-port: Europe/Paris
const NAPOLI: &str = "3f6c2a1e-8b4d-4c59-9a2e-1d7f5b6c8e01"; // no timezone: the platform's Paris
const NEW_YORK: &str = "c4e8b7a3-2f61-4d0e-8c95-6b3a1f0e9d23"; // sushi-kyoto, moved to New York

/// 12:00 in Paris (CET) is 06:00 in New York (EST).
const NOON_PARIS: &str = "2026-12-07T12:00:00+01:00";
/// 14:31 in Paris: the lunch window is over.
const AFTER_LUNCH_PARIS: &str = "2026-12-07T14:31:00+01:00";

/// The bundled project, sushi-kyoto in New York, with `windows` appended to sipform.yaml.
fn project(windows: &str) -> tempfile::TempDir {
    let dir = project_copy();
    edit_yaml(&dir.path().join("restaurants/sushi-kyoto.yaml"), |v| {
        v["timezone"] = Value::from("America/New_York");
    });
    let path = dir.path().join("sipform.yaml");
    let mut yaml = std::fs::read_to_string(&path).expect("sipform.yaml");
    yaml.push_str(windows);
    std::fs::write(&path, yaml).expect("sipform.yaml");
    dir
}

const LUNCH_AND_DINNER: &str = "windows:\n  deny: [\"11:30-14:30\", \"18:30-22:30\"]\n";

/// The binary at `now` (`SIPFORM_NOW`), from async code.
async fn at(dir: &Path, url: &str, now: &str, args: &[&str]) -> std::process::Output {
    let mut c = command(dir, url, args);
    c.env("SIPFORM_NOW", now);
    tokio::task::spawn_blocking(move || c.output().expect("run sipform"))
        .await
        .expect("join")
}

/// Edits end_call's description: a tool change every restaurant's agent gets.
fn edit_tool(dir: &Path, text: &str) {
    edit_yaml(&dir.join("tools/end_call.yaml"), |v| {
        v["description"] = Value::from(text);
    });
}

/// The end_call description of `restaurant`'s agent on the server.
fn end_call_of(emu: &sipform_emulator::EmulatorHandle, restaurant: &str) -> String {
    let agent = agents(emu)
        .into_iter()
        .find(|a| a["config"]["restaurantId"] == restaurant)
        .unwrap_or_else(|| panic!("no agent for {restaurant}"));
    let tools = agent["tools"].as_array().cloned().unwrap_or_default();
    let tool = tools
        .iter()
        .find(|t| t["name"] == "end_call")
        .expect("end_call");
    tool["description"].as_str().unwrap_or_default().to_string()
}

fn agent_id_of(emu: &sipform_emulator::EmulatorHandle, restaurant: &str) -> String {
    agents(emu)
        .into_iter()
        .find(|a| a["config"]["restaurantId"] == restaurant)
        .and_then(|a| a["id"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no agent for {restaurant}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn noon_in_paris_updates_new_york_and_holds_paris_until_half_past_two() {
    let emu = emulator().await;
    let url = emu.base_url();
    let dir = project(LUNCH_AND_DINNER);
    // Creating a restaurant's agent is never held, even at noon.
    let out = at(dir.path(), &url, NOON_PARIS, &["apply", "--auto-approve"]).await;
    expect_code(&out, 0);
    assert_eq!(agents(&emu).len(), 3, "{}", all_output(&out));

    edit_tool(dir.path(), "Raccrocher poliment.");
    let plan = at(dir.path(), &url, NOON_PARIS, &["plan", "--json"]).await;
    expect_code(&plan, 0);
    let plan: Value = serde_json::from_slice(&plan.stdout).expect("plan JSON");
    let holds = plan["holds"].as_array().expect("holds");
    let mut held: Vec<&str> = holds
        .iter()
        .map(|h| h["restaurantId"].as_str().unwrap_or_default())
        .collect();
    held.sort();
    assert_eq!(held, vec![NAPOLI, PARIS], "{holds:?}");
    for h in holds {
        assert_eq!(h["reason"], "window");
        assert_eq!(h["until"], "2026-12-07T13:30:00Z");
        assert!(
            h["message"].as_str().unwrap().contains("Europe/Paris"),
            "{h}"
        );
    }
    let human = at(dir.path(), &url, NOON_PARIS, &["plan"]).await;
    let text = stdout(&human);
    assert!(
        text.contains("Held: restaurant Le Bistrot du Port")
            && text.contains("held until 14:30 (2026-12-07T13:30:00Z)"),
        "{text}"
    );
    let md = at(dir.path(), &url, NOON_PARIS, &["plan", "--markdown"]).await;
    let md = stdout(&md);
    assert!(
        md.contains("Held") && md.contains("Le Bistrot du Port") && md.contains("Europe/Paris"),
        "{md}"
    );

    let mark = writes(&emu);
    let out = at(dir.path(), &url, NOON_PARIS, &["apply", "--auto-approve"]).await;
    // Held is not failed.
    expect_code(&out, 0);
    let said = all_output(&out);
    assert!(
        said.contains("2 held") && said.contains("held, left untouched"),
        "{said}"
    );
    assert_eq!(
        writes_since(&emu, &mark).get("PUT /api/agents/:id/tools/:toolId"),
        Some(&1),
        "{said}"
    );
    assert_eq!(end_call_of(&emu, NEW_YORK), "Raccrocher poliment.");
    assert_ne!(end_call_of(&emu, PARIS), "Raccrocher poliment.");
    assert_ne!(end_call_of(&emu, NAPOLI), "Raccrocher poliment.");

    // `status --refresh` lists them held, with until when.
    let status = at(
        dir.path(),
        &url,
        NOON_PARIS,
        &["status", "--refresh", "--json"],
    )
    .await;
    let status: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let row = |id: &str| {
        status["restaurants"]
            .as_array()
            .and_then(|r| r.iter().find(|x| x["id"] == id).cloned())
            .expect("row")
    };
    assert_eq!(row(PARIS)["status"], "held");
    assert!(row(PARIS)["reason"]
        .as_str()
        .unwrap()
        .contains("held until 14:30"));
    assert_eq!(row(NEW_YORK)["status"], "synced");

    // After 14:30 in Paris the next run applies them.
    let out = at(
        dir.path(),
        &url,
        AFTER_LUNCH_PARIS,
        &["apply", "--auto-approve"],
    )
    .await;
    expect_code(&out, 0);
    assert_eq!(end_call_of(&emu, PARIS), "Raccrocher poliment.");
    assert_eq!(end_call_of(&emu, NAPOLI), "Raccrocher poliment.");
    let plan = at(
        dir.path(),
        &url,
        AFTER_LUNCH_PARIS,
        &["plan", "--detailed-exitcode"],
    )
    .await;
    expect_code(&plan, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn ignore_windows_updates_inside_the_window() {
    let emu = emulator().await;
    let url = emu.base_url();
    let dir = project(LUNCH_AND_DINNER);
    expect_code(
        &at(dir.path(), &url, NOON_PARIS, &["apply", "--auto-approve"]).await,
        0,
    );
    edit_tool(dir.path(), "Urgent fix.");
    let plan = at(
        dir.path(),
        &url,
        NOON_PARIS,
        &["plan", "--json", "--ignore-windows"],
    )
    .await;
    let plan: Value = serde_json::from_slice(&plan.stdout).expect("plan JSON");
    assert_eq!(plan["ignoreWindows"], true, "{plan}");
    assert!(plan.get("holds").is_none(), "{plan}");
    let args = ["apply", "--auto-approve", "--ignore-windows"];
    let out = at(dir.path(), &url, NOON_PARIS, &args).await;
    expect_code(&out, 0);
    assert!(!all_output(&out).contains("held"), "{}", all_output(&out));
    for r in [PARIS, NAPOLI, NEW_YORK] {
        assert_eq!(end_call_of(&emu, r), "Urgent fix.");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_time_zone_is_an_error_naming_the_row_never_utc() {
    let emu = emulator().await;
    let dir = project(LUNCH_AND_DINNER);
    edit_yaml(&dir.path().join("restaurants/pizzeria-napoli.yaml"), |v| {
        v["timezone"] = Value::from("Mars/Olympus");
    });
    let out = at(dir.path(), &emu.base_url(), NOON_PARIS, &["validate"]).await;
    assert_ne!(out.status.code(), Some(0));
    let said = all_output(&out);
    assert!(
        said.contains("pizzeria-napoli.yaml:") && said.contains("Mars/Olympus"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_window_or_clock_is_refused_before_any_request() {
    let emu = emulator().await;
    let dir = project("windows:\n  deny: [\"noon\"]\n");
    let out = at(dir.path(), &emu.base_url(), NOON_PARIS, &["plan"]).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(
        all_output(&out).contains("sipform.yaml"),
        "{}",
        all_output(&out)
    );
    let dir = project(LUNCH_AND_DINNER);
    let out = at(dir.path(), &emu.base_url(), "tomorrow", &["plan"]).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(
        all_output(&out).contains("SIPFORM_NOW"),
        "{}",
        all_output(&out)
    );
    assert!(
        emu.request_counts().is_empty(),
        "{:?}",
        emu.request_counts()
    );
}

/// `POST /__emulator/active-calls`.
async fn set_calls(url: &str, agent: &str, n: u64) {
    let r = reqwest::Client::new()
        .post(format!("{url}/__emulator/active-calls"))
        .json(&serde_json::json!({ agent: n }))
        .send()
        .await
        .expect("active-calls");
    assert!(r.status().is_success(), "{}", r.status());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_in_two_calls_is_updated_only_after_they_end() {
    let emu = emulator().await;
    let url = emu.base_url();
    let dir = project("windows:\n  live_call_wait: 2m\n  live_call_check: 100ms\n");
    expect_code(
        &at(dir.path(), &url, NOON_PARIS, &["apply", "--auto-approve"]).await,
        0,
    );
    let busy = agent_id_of(&emu, PARIS);
    set_calls(&url, &busy, 2).await;
    let bridges: Value = reqwest::get(format!("{url}/api/bridges"))
        .await
        .expect("GET /api/bridges")
        .json()
        .await
        .expect("JSON");
    assert_eq!(bridges["activeCalls"][&busy], 2, "{bridges}");

    edit_tool(dir.path(), "Après l'appel.");
    let apply = {
        let (dir, url) = (dir.path().to_path_buf(), url.clone());
        tokio::spawn(async move { at(&dir, &url, NOON_PARIS, &["apply", "--auto-approve"]).await })
    };
    // The others go at once; the busy one waits for its calls.
    wait_for("the idle agents updated", || {
        end_call_of(&emu, NEW_YORK) == "Après l'appel."
            && end_call_of(&emu, NAPOLI) == "Après l'appel."
    })
    .await;
    let mark = count(&emu, "GET /api/bridges");
    wait_for("the calls read again", || {
        count(&emu, "GET /api/bridges") > mark + 1
    })
    .await;
    assert_ne!(
        end_call_of(&emu, PARIS),
        "Après l'appel.",
        "updated during a call"
    );
    set_calls(&url, &busy, 0).await;
    let out = apply.await.expect("apply");
    expect_code(&out, 0);
    assert_eq!(
        end_call_of(&emu, PARIS),
        "Après l'appel.",
        "{}",
        all_output(&out)
    );
    assert!(!all_output(&out).contains("held"), "{}", all_output(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_that_outlast_the_wait_hold_the_update_with_the_reason() {
    let emu = emulator().await;
    let url = emu.base_url();
    let dir = project("windows:\n  live_call_wait: 300ms\n  live_call_check: 100ms\n");
    expect_code(
        &at(dir.path(), &url, NOON_PARIS, &["apply", "--auto-approve"]).await,
        0,
    );
    let busy = agent_id_of(&emu, PARIS);
    set_calls(&url, &busy, 1).await;
    edit_tool(dir.path(), "Plus tard.");
    let out = at(
        dir.path(),
        &url,
        NOON_PARIS,
        &["apply", "--auto-approve", "--json"],
    )
    .await;
    expect_code(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    let held: Vec<&Value> = report["restaurants"]
        .as_array()
        .expect("restaurants")
        .iter()
        .filter(|r| r["status"] == "held")
        .collect();
    assert_eq!(held.len(), 1, "{report}");
    assert_eq!(held[0]["restaurantId"], PARIS);
    assert_eq!(held[0]["hold"]["reason"], "live_calls");
    assert!(
        held[0]["hold"]["message"]
            .as_str()
            .unwrap()
            .contains("1 call(s) in progress"),
        "{report}"
    );
    assert_eq!(report["status"], "complete");
    assert_ne!(end_call_of(&emu, PARIS), "Plus tard.");
    assert_eq!(end_call_of(&emu, NEW_YORK), "Plus tard.");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_holds_paris_and_applies_it_when_the_window_opens() {
    let emu = emulator().await;
    let url = emu.base_url();
    let dir = project(LUNCH_AND_DINNER);
    expect_code(
        &at(dir.path(), &url, NOON_PARIS, &["apply", "--auto-approve"]).await,
        0,
    );
    edit_tool(dir.path(), "Après le service.");
    // The controller's clock starts 20 s before the lunch window ends in Paris.
    let clock = [("SIPFORM_NOW", "2026-12-07T14:29:40+01:00")];
    let ctl = controller::start(dir.path(), &url, &["--resync", "1h"], &clock);
    let report = || async {
        let (code, body) = ctl.get("/v1/status").await?;
        (code == 200).then(|| serde_json::from_str::<Value>(&body).ok())?
    };
    controller::eventually("New York updated, Paris held", 60, || async {
        end_call_of(&emu, NEW_YORK) == "Après le service."
            && report().await.is_some_and(|r| r["counts"]["held"] == 2)
    })
    .await;
    let r = report().await.expect("status");
    let paris = r["restaurants"]
        .as_array()
        .and_then(|rows| rows.iter().find(|x| x["id"] == PARIS).cloned())
        .expect("Paris listed");
    let reason = paris["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("held until 14:30"), "{r}");
    assert_ne!(
        end_call_of(&emu, PARIS),
        "Après le service.",
        "updated inside its window"
    );
    let held = "sipform_controller_held_restaurants{reason=\"window\"}";
    assert_eq!(ctl.metric(held).await, Some(2.0), "{}", ctl.log_text());

    // No change, no resync: the queue brings them back when the window opens.
    controller::eventually("Paris applied at 14:30", 60, || async {
        end_call_of(&emu, PARIS) == "Après le service."
            && end_call_of(&emu, NAPOLI) == "Après le service."
    })
    .await;
    controller::eventually("nothing held", 10, || async {
        ctl.metric(held).await == Some(0.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controller_holds_an_agent_in_a_call_and_updates_it_once_the_call_ends() {
    let emu = emulator().await;
    let url = emu.base_url();
    let dir = project("windows:\n  live_call_wait: 2m\n  live_call_check: 1s\n");
    expect_code(
        &at(dir.path(), &url, NOON_PARIS, &["apply", "--auto-approve"]).await,
        0,
    );
    let busy = agent_id_of(&emu, PARIS);
    set_calls(&url, &busy, 2).await;
    edit_tool(dir.path(), "Après l'appel.");
    let ctl = controller::start(dir.path(), &url, &["--resync", "1h"], &[]);
    let held = "sipform_controller_held_restaurants{reason=\"live_calls\"}";
    controller::eventually(
        "the others updated, Paris held for its calls",
        60,
        || async {
            end_call_of(&emu, NEW_YORK) == "Après l'appel."
                && end_call_of(&emu, NAPOLI) == "Après l'appel."
                && ctl.metric(held).await == Some(1.0)
        },
    )
    .await;
    assert_ne!(
        end_call_of(&emu, PARIS),
        "Après l'appel.",
        "updated during a call"
    );
    set_calls(&url, &busy, 0).await;
    controller::eventually("Paris updated after its calls", 60, || async {
        end_call_of(&emu, PARIS) == "Après l'appel." && ctl.metric(held).await == Some(0.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_plan_is_judged_again_when_it_is_applied() {
    let emu = emulator().await;
    let url = emu.base_url();
    let dir = project(LUNCH_AND_DINNER);
    expect_code(
        &at(dir.path(), &url, NOON_PARIS, &["apply", "--auto-approve"]).await,
        0,
    );
    edit_tool(dir.path(), "Plan du midi.");
    let out = at(
        dir.path(),
        &url,
        NOON_PARIS,
        &["plan", "--out", "plan.json"],
    )
    .await;
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("Held: restaurant Le Bistrot du Port"),
        "{}",
        stdout(&out)
    );
    // Applied after lunch, the plan made at noon holds nothing.
    let out = at(dir.path(), &url, AFTER_LUNCH_PARIS, &["apply", "plan.json"]).await;
    expect_code(&out, 0);
    assert!(
        !all_output(&out).contains("held, left untouched"),
        "{}",
        all_output(&out)
    );
    for r in [PARIS, NAPOLI, NEW_YORK] {
        assert_eq!(end_call_of(&emu, r), "Plan du midi.");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_with_an_unknown_zone_is_skipped_naming_the_row_the_others_go_on() {
    let emu = emulator().await;
    let db = controller::platform(common::db::Engine::Sqlite).await;
    let (bad, good) = (rid(1), rid(2));
    db.exec(&format!(
        "INSERT INTO restaurants (id, name, sip_enabled, timezone) VALUES ({}, 'Lune', true, 'Mars/Olympus');
         INSERT INTO restaurants (id, name, sip_enabled, timezone) VALUES ({}, 'Terre', true, 'America/New_York');",
        db.id_literal(&bad),
        db.id_literal(&good),
    ))
    .await;
    let dir = project_on(&db);
    let out = at(
        dir.path(),
        &emu.base_url(),
        NOON_PARIS,
        &["apply", "--auto-approve"],
    )
    .await;
    assert_ne!(
        out.status.code(),
        Some(0),
        "a skipped row makes the run incomplete"
    );
    let said = all_output(&out);
    assert!(
        said.contains(&format!("row id={bad}")) && said.contains("Mars/Olympus"),
        "{said}"
    );
    let ids: Vec<Value> = agents(&emu)
        .iter()
        .map(|a| a["config"]["restaurantId"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![Value::from(good)],
        "only the valid row is provisioned"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_checks_the_bridges_route_when_live_calls_are_read() {
    let emu = emulator().await;
    let url = emu.base_url();
    let without = project(LUNCH_AND_DINNER);
    let out = at(without.path(), &url, NOON_PARIS, &["doctor"]).await;
    assert!(!stdout(&out).contains("/api/bridges"), "{}", stdout(&out));
    let with = project("windows:\n  live_call_wait: 1m\n");
    let out = at(with.path(), &url, NOON_PARIS, &["doctor"]).await;
    expect_code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.contains("assumed endpoint GET /api/bridges") && l.contains("present")),
        "{text}"
    );
}
