//! Issue 14 #3 and #6: what several claimants of one restaurant or one account do to a plan.
//! An object is adopted by one restaurant at most; an ambiguous match is reported; a second
//! account of the project's name is an error; agents that claim a restaurant but are not the
//! one sipform manages are reported on every plan, not only the first.

mod common;

use common::hostile::{Hostile, Reply};
use common::*;
use serde_json::{json, Value};

const ACCOUNT: &str = "AlloResto";

fn restaurant(id: &str, phone: &str) -> String {
    format!(
        "id: {id}\nname: Franchise Pizza\nphone: \"{phone}\"\ncontact_email: franchise@example.com\ndelivery_enabled: true\nreservation_enabled: false\norder_status_enabled: false\ntransfer_enabled: false\nsip_enabled: true\n"
    )
}

async fn post(base: &str, path: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_franchise_restaurants_never_adopt_the_same_final_customer() {
    let emu = emulator().await;
    let base = emu.base_url();
    let project = project_copy();
    let dir = project.path();
    let r = dir.join("restaurants");
    std::fs::remove_dir_all(&r).expect("clear");
    std::fs::create_dir(&r).expect("mkdir");
    let (a, b) = (
        "0b1c2d3e-0000-4000-8000-00000000000a",
        "0b1c2d3e-0000-4000-8000-00000000000b",
    );
    std::fs::write(r.join("a.yaml"), restaurant(a, "+33140000001")).expect("write");
    std::fs::write(r.join("b.yaml"), restaurant(b, "+33140000002")).expect("write");

    // Both final customers were created by an earlier run that crashed before recording them.
    let account = post(
        &base,
        "/api/accounts",
        json!({"name": ACCOUNT, "email": "tech@alloresto.fr", "isActive": true}),
    )
    .await;
    for _ in 0..2 {
        post(
            &base,
            "/api/final-customers",
            json!({"accountId": account["id"], "name": "Franchise Pizza", "email": "franchise@example.com", "currency": "EUR", "costMarginPct": 30, "isActive": true}),
        )
        .await;
    }

    let plan = sipform(dir, &base, &["plan"]);
    expect_code(&plan, 0);
    assert!(
        stdout(&plan).contains("2 final customers match this restaurant's name and email"),
        "the ambiguity is reported:\n{}",
        stdout(&plan)
    );
    let out = sipform(dir, &base, &["apply", "--auto-approve"]);
    expect_code(&out, 0);
    assert_eq!(final_customers(&emu).len(), 2, "no third final customer");
    let state = read_state(dir);
    let fc = |r: &str| {
        state["restaurants"][r]["finalCustomerId"]
            .as_str()
            .map(str::to_string)
    };
    assert!(fc(a).is_some() && fc(b).is_some(), "{state:#}");
    assert_ne!(fc(a), fc(b), "each restaurant has its own final customer");
    // Settled: nothing flips between the two on the next plan.
    let again = sipform(dir, &base, &["plan", "--detailed-exitcode"]);
    expect_code(&again, 0);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_account_of_the_projects_name_is_an_error_unless_state_records_one() {
    let emu = emulator().await;
    let base = emu.base_url();
    let project = project_copy();
    let dir = project.path();
    expect_code(&sipform(dir, &base, &["apply", "--auto-approve"]), 0);
    // Another copy of the project (another state backend, or the platform's own provisioning
    // during a switch-over) made its own account.
    post(
        &base,
        "/api/accounts",
        json!({"name": ACCOUNT, "email": "tech@alloresto.fr", "isActive": true}),
    )
    .await;
    let mark = writes(&emu);
    // State records the account: it is used, whatever else carries its name (issue 23).
    let plan = sipform(dir, &base, &["plan", "--detailed-exitcode"]);
    expect_code(&plan, 0);
    // Without state, sipform cannot tell which one: an error, nothing written.
    std::fs::remove_file(dir.join("sipform.state.json")).expect("remove state");
    let plan = sipform(dir, &base, &["plan"]);
    expect_code(&plan, 1);
    let err = stderr(&plan);
    assert!(
        err.contains("2 accounts on the server are named \"AlloResto\""),
        "{err}"
    );
    let apply = sipform(dir, &base, &["apply", "--auto-approve"]);
    expect_code(&apply, 1);
    assert!(writes_since(&emu, &mark).is_empty(), "nothing written");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extra_agent_claiming_a_restaurant_is_reported_on_every_plan() {
    let emu = emulator().await;
    let base = emu.base_url();
    let project = project_copy();
    let dir = project.path();
    expect_code(&sipform(dir, &base, &["apply", "--auto-approve"]), 0);
    let first = agents(&emu)[0].clone();
    let restaurant = first["config"]["restaurantId"]
        .as_str()
        .expect("restaurantId")
        .to_string();
    let mut dup = first.clone();
    for k in [
        "id",
        "apiToken",
        "publicToken",
        "phoneLines",
        "createdAt",
        "pauseReason",
    ] {
        if let Some(m) = dup.as_object_mut() {
            m.remove(k);
        }
    }
    let made = post(&base, "/api/agents", dup).await;
    let extra = made["id"].as_str().expect("id").to_string();
    for round in 0..2 {
        let plan = sipform(dir, &base, &["plan", "--detailed-exitcode"]);
        expect_code(&plan, 0);
        let text = stdout(&plan);
        assert!(
            text.contains("1 more agents on the server claim this restaurant")
                && text.contains(&extra),
            "round {round}: the duplicate of {restaurant} is reported:\n{text}"
        );
        expect_code(&sipform(dir, &base, &["apply", "--auto-approve"]), 0);
    }
    assert!(
        agents(&emu).iter().any(|a| a["id"] == extra.as_str()),
        "left alone"
    );
    emu.shutdown().await;
}

/// State mapping one restaurant to another's agent (a hand edit, a bad migration) is refused by
/// plan and apply, naming both restaurants, and nothing is written (issue 25, item 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_mapping_two_restaurants_to_one_agent_is_refused() {
    let emu = emulator().await;
    let dir = project_copy();
    generate_restaurants(dir.path(), 2);
    apply_ok(dir.path(), &emu.base_url()).await;
    let path = dir.path().join("sipform.state.json");
    let mut state = read_state(dir.path());
    let (a, b) = (rid(0), rid(1));
    let agent_a = state["restaurants"][&a]["agentId"].clone();
    assert!(agent_a.is_string(), "{state}");
    state["restaurants"][&b]["agentId"] = agent_a;
    std::fs::write(&path, serde_json::to_string_pretty(&state).expect("json")).expect("write");
    let mark = writes(&emu);
    for args in [&["plan"][..], &["apply", "--auto-approve"][..]] {
        let out = sipform(dir.path(), &emu.base_url(), args);
        let text = all_output(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert!(
            text.contains(&a) && text.contains(&b) && text.contains("same agent"),
            "{args:?}: names both restaurants: {text}"
        );
    }
    assert!(writes_since(&emu, &mark).is_empty(), "nothing written");
}

/// A create answered with another restaurant's existing agent id (a server bug, a replayed
/// answer) is never recorded: apply fails naming both restaurants, and state keeps the agent
/// with its one restaurant (issue 25, item 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_answered_with_another_restaurants_agent_is_not_recorded() {
    let emu = emulator().await;
    let dir = project_copy();
    generate_restaurants(dir.path(), 1);
    apply_ok(dir.path(), &emu.base_url()).await;
    let (a, b) = (rid(0), rid(1));
    let agent_a = read_state(dir.path())["restaurants"][&a]["agentId"]
        .as_str()
        .expect("agent id")
        .to_string();
    generate_restaurants(dir.path(), 2);
    let answer = agent_a.clone();
    let proxy = Hostile::proxy(&emu.base_url(), move |s| {
        if s.is("POST") && s.route() == "/api/agents" {
            let id = answer.clone();
            Reply::edit(move |v| v["id"] = serde_json::json!(id))
        } else {
            Reply::Pass
        }
    })
    .await;
    let out = sipform(dir.path(), &proxy.base_url(), &["apply", "--auto-approve"]);
    let text = all_output(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&a) && text.contains(&b) && text.contains(&agent_a),
        "names both restaurants and the agent: {text}"
    );
    let state = read_state(dir.path());
    assert_eq!(
        state["restaurants"][&a]["agentId"],
        serde_json::json!(agent_a)
    );
    assert_ne!(
        state["restaurants"][&b]["agentId"],
        serde_json::json!(agent_a),
        "{state}"
    );
}

/// State naming, for one restaurant, an agent whose `config.restaurantId` is another
/// restaurant of the inventory (a hand edit, a bad migration): that restaurant is skipped with
/// an error naming both, the agent keeps its restaurant, and the other restaurants are planned
/// and applied as usual (issue 25, item 2, adoption half).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_claiming_another_restaurant_is_never_taken() {
    let emu = emulator().await;
    let dir = project_copy();
    generate_restaurants(dir.path(), 3);
    apply_ok(dir.path(), &emu.base_url()).await;
    let path = dir.path().join("sipform.state.json");
    let mut state = read_state(dir.path());
    let (a, b, c) = (rid(0), rid(1), rid(2));
    let agent_a = state["restaurants"][&a]["agentId"]
        .as_str()
        .expect("agent id")
        .to_string();
    state["restaurants"]
        .as_object_mut()
        .expect("restaurants")
        .remove(&a);
    state["restaurants"][&b]["agentId"] = json!(agent_a);
    std::fs::write(&path, serde_json::to_string_pretty(&state).expect("json")).expect("write");
    let file = dir.path().join("restaurants/r0002.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, text.replace("Restaurant 2", "Restaurant 2 bis")).expect("write");

    let plan = sipform(dir.path(), &emu.base_url(), &["plan"]);
    let text = all_output(&plan);
    assert!(
        text.contains("error:")
            && text.contains(&a)
            && text.contains(&b)
            && text.contains(&agent_a),
        "the error names both restaurants and the agent: {text}"
    );
    let out = sipform(dir.path(), &emu.base_url(), &["apply", "--auto-approve"]);
    let text = all_output(&out);
    assert!(text.contains(&a) && text.contains(&b), "{text}");
    let by_id = |id: &str| agents(&emu).into_iter().find(|x| x["id"] == id);
    let taken = by_id(&agent_a).expect("still there");
    assert_eq!(
        taken["config"]["restaurantId"],
        json!(a),
        "the agent keeps its restaurant"
    );
    assert!(
        agents(&emu)
            .iter()
            .any(|x| x["config"]["restaurantId"] == c.as_str() && x["name"] == "Restaurant 2 bis"),
        "the other restaurants go on"
    );
    emu.shutdown().await;
}
