//! plan and apply against the emulator, through the real binary.

mod common;

use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_apply_creates_exactly_the_objects_then_plan_is_empty() {
    let emu = emulator().await;
    let dir = project_copy();
    let n = restaurant_files(dir.path()).len();
    assert!(n >= 3);

    let out = run(
        dir.path(),
        &emu.base_url(),
        &["plan", "--detailed-exitcode"],
    )
    .await;
    expect_code(&out, 2);
    assert!(
        stdout(&out).contains(&format!(
            "Plan: {} to add",
            1 + n * objects_per_restaurant()
        )),
        "{}",
        stdout(&out)
    );
    assert_eq!(writes(&emu).values().sum::<u64>(), 0, "plan must not write");

    apply_ok(dir.path(), &emu.base_url()).await;
    let w = writes(&emu);
    let expected: std::collections::BTreeMap<String, u64> = [
        ("POST /api/accounts".to_string(), 1),
        ("POST /api/final-customers".to_string(), n as u64),
        ("POST /api/agents".to_string(), n as u64),
        (
            "POST /api/agents/:id/tools".to_string(),
            (bundled_tool_count() * n) as u64,
        ),
        (
            "POST /api/final-customers/:id/subscriptions".to_string(),
            n as u64,
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(w, expected);
    assert_eq!(agents(&emu).len(), n);
    assert_eq!(tool_count(&emu), bundled_tool_count() * n);
    assert_state_matches_server(dir.path(), &emu);

    expect_no_changes(dir.path(), &emu.base_url()).await;

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("sipform.state.json"))
            .expect("state")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No token in state unless asked for.
    let state = std::fs::read_to_string(dir.path().join("sipform.state.json")).expect("state");
    for a in agents(&emu) {
        assert!(!state.contains(a["apiToken"].as_str().unwrap_or("none")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_tool_updates_it_on_every_agent_and_nothing_else() {
    let emu = emulator().await;
    let dir = project_copy();
    let n = restaurant_files(dir.path()).len() as u64;
    apply_ok(dir.path(), &emu.base_url()).await;
    let mark = writes(&emu);

    edit_yaml(&dir.path().join("tools/end_call.yaml"), |v| {
        v["description"] = json!("Raccroche quand l'appelant a dit au revoir. Nouvelle consigne.");
    });
    let out = run(dir.path(), &emu.base_url(), &["plan"]).await;
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains(&format!("Plan: 0 to add, {n} to change, 0 to delete")),
        "{}",
        stdout(&out)
    );

    apply_ok(dir.path(), &emu.base_url()).await;
    let w = writes_since(&emu, &mark);
    assert_eq!(
        w.get("PUT /api/agents/:id/tools/:toolId"),
        Some(&n),
        "{w:?}"
    );
    assert_eq!(w.values().sum::<u64>(), n, "only the tool PUTs: {w:?}");
    for a in agents(&emu) {
        let t = a["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .find(|t| t["name"] == "end_call")
            .cloned()
            .expect("end_call");
        assert!(t["description"]
            .as_str()
            .unwrap_or("")
            .contains("Nouvelle consigne"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_voice_updates_one_agent() {
    let emu = emulator().await;
    let dir = project_copy();
    apply_ok(dir.path(), &emu.base_url()).await;
    let mark = writes(&emu);
    let file = restaurant_files(dir.path())[0].clone();
    let mut rid = String::new();
    edit_yaml(&file, |v| {
        v["ai_voice"] = json!("verse");
        rid = v["id"].as_str().unwrap_or_default().to_string();
    });
    apply_ok(dir.path(), &emu.base_url()).await;
    let w = writes_since(&emu, &mark);
    assert_eq!(w.get("PUT /api/agents/:id"), Some(&1), "{w:?}");
    assert_eq!(w.values().sum::<u64>(), 1, "{w:?}");
    let agent = agents(&emu)
        .into_iter()
        .find(|a| a["config"]["restaurantId"] == rid.as_str())
        .expect("agent");
    assert_eq!(agent["aiVoice"], "verse");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_made_by_hand_is_deleted() {
    let emu = emulator().await;
    let dir = project_copy();
    apply_ok(dir.path(), &emu.base_url()).await;
    let agent_id = agents(&emu)[0]["id"].as_str().expect("id").to_string();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/agents/{agent_id}/tools", emu.base_url()))
        .json(&json!({"name": "rogue_tool", "description": "x", "parameters": {"type": "object", "properties": {}}, "sortOrder": 99}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 201);
    let mark = writes(&emu);

    let out = run(dir.path(), &emu.base_url(), &["plan"]).await;
    assert!(stdout(&out).contains("rogue_tool"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("Plan: 0 to add, 0 to change, 1 to delete"),
        "{}",
        stdout(&out)
    );
    apply_ok(dir.path(), &emu.base_url()).await;
    assert_eq!(
        writes_since(&emu, &mark).get("DELETE /api/agents/:id/tools/:toolId"),
        Some(&1)
    );
    assert!(!agents(&emu)
        .iter()
        .flat_map(|a| a["tools"].as_array().cloned().unwrap_or_default())
        .any(|t| t["name"] == "rogue_tool"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_made_by_the_old_script_is_adopted_not_duplicated() {
    let emu = emulator().await;
    let dir = project_copy();
    let n = restaurant_files(dir.path()).len();
    let mut rid = String::new();
    edit_yaml(&restaurant_files(dir.path())[0], |v| {
        rid = v["id"].as_str().unwrap_or_default().to_string()
    });

    // What the platform's script does: account, final customer, agent, 2 of its tools.
    let http = reqwest::Client::new();
    let base = emu.base_url();
    let acc: Value = http
        .post(format!("{base}/api/accounts"))
        .json(&json!({"name": "AlloResto", "email": "tech@alloresto.fr", "isActive": true}))
        .send()
        .await
        .expect("acc")
        .json()
        .await
        .expect("json");
    let fc: Value = http.post(format!("{base}/api/final-customers")).json(&json!({"accountId": acc["id"], "name": "old", "currency": "EUR", "costMarginPct": 30, "isActive": true})).send().await.expect("fc").json().await.expect("json");
    let agent: Value = http.post(format!("{base}/api/agents")).json(&json!({"accountId": acc["id"], "finalCustomerId": fc["id"], "name": "old name", "aiVoice": "sage", "config": {"restaurantId": rid}, "isActive": true})).send().await.expect("agent").json().await.expect("json");
    let agent_id = agent["id"].as_str().expect("id").to_string();
    for name in ["end_call", "transfer_call"] {
        http.post(format!("{base}/api/agents/{agent_id}/tools")).json(&json!({"name": name, "description": "old", "parameters": {"type": "object", "properties": {}}, "sortOrder": 1})).send().await.expect("tool");
    }
    let mark = writes(&emu);

    apply_ok(dir.path(), &base).await;
    let w = writes_since(&emu, &mark);
    assert_eq!(w.get("POST /api/accounts"), None, "{w:?}");
    assert_eq!(w.get("POST /api/agents"), Some(&((n - 1) as u64)), "{w:?}");
    assert_eq!(
        w.get("POST /api/final-customers"),
        Some(&((n - 1) as u64)),
        "{w:?}"
    );
    assert_eq!(
        w.get("POST /api/agents/:id/tools"),
        Some(&((bundled_tool_count() * n - 2) as u64)),
        "{w:?}"
    );
    assert_eq!(agents(&emu).len(), n);
    assert_eq!(
        read_state(dir.path())["restaurants"][&rid]["agentId"],
        agent_id.as_str()
    );
    assert_state_matches_server(dir.path(), &emu);
    let out = run(dir.path(), &base, &["plan", "--detailed-exitcode"]).await;
    expect_code(&out, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_then_fail_on_creates_converges_without_duplicates() {
    let faults: sipform_emulator::Faults = serde_json::from_value(json!({
        "commitThenFail": [
            {"method": "POST", "route": "/api/agents", "rate": 0.5, "mode": "error"},
            {"method": "POST", "route": "/api/agents/:id/tools", "rate": 0.3, "mode": "error"},
            {"method": "POST", "route": "/api/final-customers", "rate": 0.5, "mode": "error"}
        ]
    }))
    .expect("faults");
    let emu = emulator_with(faults, 7).await;
    let dir = project_copy();
    let n = restaurant_files(dir.path()).len();
    let first = run(dir.path(), &emu.base_url(), &["apply", "--auto-approve"]).await;
    if first.status.code() != Some(0) {
        // A restaurant may exhaust its retries; the second run must finish the job.
        apply_ok(dir.path(), &emu.base_url()).await;
    }
    let log: Value = reqwest::get(format!("{}/__emulator/requests", emu.base_url()))
        .await
        .expect("log")
        .json()
        .await
        .expect("json");
    let failed_posts = log["log"]
        .as_array()
        .expect("log array")
        .iter()
        .filter(|e| e["method"] == "POST" && e["status"].as_u64().unwrap_or(0) >= 500)
        .count();
    assert!(
        failed_posts >= 3,
        "faults must have fired: {failed_posts} failed POSTs"
    );
    // Every failed create had been stored: re-reading found it, so nothing was posted twice.
    assert_eq!(count(&emu, "POST /api/agents"), n as u64);
    assert_eq!(count(&emu, "POST /api/final-customers"), n as u64);
    assert_eq!(
        count(&emu, "POST /api/agents/:id/tools"),
        (bundled_tool_count() * n) as u64
    );
    assert_eq!(agents(&emu).len(), n);
    assert_eq!(final_customers(&emu).len(), n);
    assert_eq!(tool_count(&emu), bundled_tool_count() * n);
    assert_state_matches_server(dir.path(), &emu);
    emu.set_faults(Default::default());
    expect_no_changes(dir.path(), &emu.base_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_plan_is_applied_exactly_and_refused_once_stale() {
    let emu = emulator().await;
    let dir = project_copy();
    let out = run(dir.path(), &emu.base_url(), &["plan", "--out", "p.json"]).await;
    expect_code(&out, 0);
    let out = run(dir.path(), &emu.base_url(), &["apply", "p.json"]).await;
    expect_code(&out, 0);
    assert_eq!(agents(&emu).len(), restaurant_files(dir.path()).len());
    // Applying it again: state moved on.
    let out = run(dir.path(), &emu.base_url(), &["apply", "p.json"]).await;
    expect_code(&out, 1);
    assert!(stderr(&out).contains("stale"), "{}", stderr(&out));

    // A plan made, then the server changed behind it for the restaurant it touches (a change
    // to another restaurant would not make it stale: issue 12).
    let mut rid = String::new();
    edit_yaml(&restaurant_files(dir.path())[0], |v| {
        v["ai_voice"] = json!("verse");
        rid = v["id"].as_str().unwrap_or_default().to_string();
    });
    expect_code(
        &run(dir.path(), &emu.base_url(), &["plan", "--out", "q.json"]).await,
        0,
    );
    let agent_id = agents(&emu)
        .into_iter()
        .find(|a| a["config"]["restaurantId"] == rid.as_str())
        .and_then(|a| a["id"].as_str().map(str::to_string))
        .expect("the edited restaurant's agent");
    reqwest::Client::new()
        .put(format!("{}/api/agents/{agent_id}", emu.base_url()))
        .json(&json!({"temperature": 0.9}))
        .send()
        .await
        .expect("put");
    let mark = writes(&emu);
    let out = run(dir.path(), &emu.base_url(), &["apply", "q.json"]).await;
    expect_code(&out, 1);
    assert!(stderr(&out).contains("server changed"), "{}", stderr(&out));
    assert_eq!(
        writes_since(&emu, &mark).values().sum::<u64>(),
        0,
        "a stale plan writes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_limits_plan_and_apply_to_one_restaurant() {
    let emu = emulator().await;
    let dir = project_copy();
    let mut rid = String::new();
    edit_yaml(&restaurant_files(dir.path())[1], |v| {
        rid = v["id"].as_str().unwrap_or_default().to_string()
    });
    let out = run(
        dir.path(),
        &emu.base_url(),
        &["apply", "--auto-approve", "--target", &rid],
    )
    .await;
    expect_code(&out, 0);
    let a = agents(&emu);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["config"]["restaurantId"], rid.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restaurant_gone_from_the_inventory_is_deleted_only_with_allow_destroy() {
    let emu = emulator().await;
    let dir = project_copy();
    let n = restaurant_files(dir.path()).len();
    apply_ok(dir.path(), &emu.base_url()).await;
    let gone = restaurant_files(dir.path())[0].clone();
    std::fs::remove_file(&gone).expect("rm");

    let out = apply_ok(dir.path(), &emu.base_url()).await;
    assert!(stdout(&out).contains("--allow-destroy"), "{}", stdout(&out));
    assert_eq!(agents(&emu).len(), n);

    let out = run(
        dir.path(),
        &emu.base_url(),
        &["apply", "--auto-approve", "--allow-destroy"],
    )
    .await;
    expect_code(&out, 0);
    assert_eq!(agents(&emu).len(), n - 1);
    assert_eq!(final_customers(&emu).len(), n - 1);
    assert_state_matches_server(dir.path(), &emu);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_sip_deactivates_the_agent_instead_of_deleting_it() {
    let emu = emulator().await;
    let dir = project_copy();
    let n = restaurant_files(dir.path()).len();
    apply_ok(dir.path(), &emu.base_url()).await;
    let mut rid = String::new();
    edit_yaml(&restaurant_files(dir.path())[0], |v| {
        v["sip_enabled"] = json!(false);
        v["chat_enabled"] = json!(false);
        rid = v["id"].as_str().unwrap_or_default().to_string();
    });
    apply_ok(dir.path(), &emu.base_url()).await;
    assert_eq!(count(&emu, "DELETE /api/agents/:id"), 0);
    let a = agents(&emu);
    assert_eq!(a.len(), n);
    let agent = a
        .iter()
        .find(|x| x["config"]["restaurantId"] == rid.as_str())
        .expect("agent");
    assert_eq!(agent["isActive"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_adopts_existing_objects_without_writing() {
    let emu = emulator().await;
    let dir = project_copy();
    apply_ok(dir.path(), &emu.base_url()).await;
    let mut before = read_state(dir.path());
    // The ids come back; the revision apply recorded does not: an import adopts what is there
    // and says no revision made it.
    for r in before["restaurants"]
        .as_object_mut()
        .expect("restaurants")
        .values_mut()
    {
        assert!(r
            .as_object_mut()
            .expect("a restaurant")
            .remove("revision")
            .is_some());
    }
    std::fs::remove_file(dir.path().join("sipform.state.json")).expect("rm state");
    let mark = writes(&emu);
    let out = run(dir.path(), &emu.base_url(), &["import", "--all"]).await;
    expect_code(&out, 0);
    assert!(stdout(&out).contains("import"), "{}", stdout(&out));
    assert_eq!(writes_since(&emu, &mark).values().sum::<u64>(), 0);
    let mut after = read_state(dir.path());
    // The tokens' digests are recorded again, salted with the new history's lineage.
    for v in [&mut before, &mut after] {
        for r in v["restaurants"]
            .as_object_mut()
            .expect("restaurants")
            .values_mut()
        {
            let digest = r
                .as_object_mut()
                .expect("a restaurant")
                .remove("tokenDigest");
            assert!(digest.is_some_and(|d| d.as_str().is_some_and(|d| d.starts_with("sha256:"))));
        }
    }
    assert_eq!(before["restaurants"], after["restaurants"]);
    expect_no_changes(dir.path(), &emu.base_url()).await;
}
