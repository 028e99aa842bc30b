//! Issue 14, #2: state is bound to its project. Two projects pointed at one PostgreSQL database
//! keep their state side by side, each seeing only its own; a file state of one project is
//! refused by another, naming both; state written before projects were recorded is adopted by
//! the first project that opens it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::db::{Engine, TestDb};
use common::*;
use serde_json::Value;

/// A copy of the bundled project (account AlloResto, three restaurants) with `state` as its
/// state section and `extra` lines on top (a `project:` id).
fn project_a(state: &str, extra: &str) -> tempfile::TempDir {
    let dir = project_copy();
    write_yaml(dir.path(), "AlloResto", "tech@alloresto.fr", state, extra);
    dir
}

/// Another project: account `account`, two generated restaurants of its own.
fn project_b(account: &str, state: &str, extra: &str) -> tempfile::TempDir {
    let dir = project_copy();
    generate_restaurants(dir.path(), 2);
    write_yaml(dir.path(), account, "ops@other.example", state, extra);
    dir
}

fn write_yaml(dir: &Path, account: &str, email: &str, state: &str, extra: &str) {
    let yaml = format!(
        "{extra}account:\n  name: {account}\n  email: {email}\nserver:\n  timeout_sec: 5\n\
         inventory:\n  source: files\n  path: restaurants\n{state}"
    );
    std::fs::write(dir.join("sipform.yaml"), yaml).expect("sipform.yaml");
}

fn postgres_state(db: &TestDb) -> String {
    format!("state:\n  backend: postgres\n  url: \"{}\"\n", db.url)
}

fn file_state(path: &Path) -> String {
    format!("state:\n  backend: file\n  path: \"{}\"\n", path.display())
}

/// Restaurant ids of `dir`'s inventory (each file's `id:` line).
fn inventory_ids(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(dir.join("restaurants"))
        .expect("restaurants")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).expect("read");
            text.lines()
                .find_map(|l| l.strip_prefix("id:"))
                .map(|v| v.trim().trim_matches('"').to_string())
        })
        .collect();
    ids.sort();
    ids
}

fn accounts_named(emu: &sipform_emulator::EmulatorHandle, name: &str) -> Vec<Value> {
    emu.snapshot()["accounts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["name"] == name)
        .collect()
}

/// The restaurant ids `state list` prints (first column, after the header).
fn listed(dir: &Path, url: &str) -> Vec<String> {
    let o = sipform(dir, url, &["state", "list"]);
    expect_code(&o, 0);
    let mut ids: Vec<String> = stdout(&o)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|id| id.len() == 36)
        .collect();
    ids.sort();
    ids
}

/// Agents on the server claiming one of `ids`.
fn agents_of(emu: &sipform_emulator::EmulatorHandle, ids: &[String]) -> usize {
    agents(emu)
        .iter()
        .filter(|a| {
            a["config"]["restaurantId"]
                .as_str()
                .is_some_and(|r| ids.iter().any(|i| i == r))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_projects_share_one_postgres_database_side_by_side() {
    let db = TestDb::new(Engine::Postgres).await;
    let emu = emulator().await;
    let url = emu.base_url();
    let a = project_a(&postgres_state(&db), "");
    let b = project_b("OtherCo", &postgres_state(&db), "");
    let (a_ids, b_ids) = (inventory_ids(a.path()), inventory_ids(b.path()));
    assert!(a_ids.iter().all(|i| !b_ids.contains(i)));

    let o = sipform(a.path(), &url, &["apply", "--auto-approve"]);
    expect_code(&o, 0);
    assert_eq!(agents_of(&emu, &a_ids), 3);

    // B, with the same database and --allow-destroy: plans nothing of A's.
    let o = sipform(
        b.path(),
        &url,
        &["plan", "--allow-destroy", "--detailed-exitcode"],
    );
    expect_code(&o, 2);
    let plan = stdout(&o);
    assert!(plan.contains(", 0 to delete"), "{plan}");
    for id in &a_ids {
        assert!(
            !plan.contains(id.as_str()),
            "B's plan names A's {id}:\n{plan}"
        );
    }
    let o = sipform(
        b.path(),
        &url,
        &["apply", "--auto-approve", "--allow-destroy"],
    );
    expect_code(&o, 0);

    // Each has its own account, agents and state; nothing of A's was deleted.
    assert_eq!(agents_of(&emu, &a_ids), 3, "A's agents survive B's apply");
    assert_eq!(agents_of(&emu, &b_ids), 2);
    assert_eq!(accounts_named(&emu, "AlloResto").len(), 1);
    let other = accounts_named(&emu, "OtherCo");
    assert_eq!(other.len(), 1, "B made its own account");
    let b_account = other[0]["id"].clone();
    let b_agent_fcs: Vec<Value> = agents(&emu)
        .into_iter()
        .filter(|a| {
            a["config"]["restaurantId"]
                .as_str()
                .is_some_and(|r| b_ids.iter().any(|i| i == r))
        })
        .map(|a| a["finalCustomerId"].clone())
        .collect();
    for fc_id in &b_agent_fcs {
        let fc = final_customers(&emu)
            .into_iter()
            .find(|f| &f["id"] == fc_id)
            .expect("B's agent's final customer");
        assert_eq!(
            fc["accountId"], b_account,
            "B's objects live in B's account"
        );
    }
    assert_eq!(listed(a.path(), &url), a_ids);
    assert_eq!(listed(b.path(), &url), b_ids);

    // Both settle: no changes for either, even allowed to destroy.
    for dir in [a.path(), b.path()] {
        let o = sipform(
            dir,
            &url,
            &["plan", "--allow-destroy", "--detailed-exitcode"],
        );
        expect_code(&o, 0);
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_state_of_another_project_is_refused_naming_both() {
    let emu = emulator().await;
    let url = emu.base_url();
    let shared = tempfile::tempdir().expect("tempdir");
    let path = shared.path().join("shared.state.json");
    let a = project_a(&file_state(&path), "project: alloresto-prod\n");
    let o = sipform(a.path(), &url, &["apply", "--auto-approve"]);
    expect_code(&o, 0);
    let before = std::fs::read(&path).expect("state");

    // Another project id and account.
    let b = project_b(
        "AlloResto-Staging",
        &file_state(&path),
        "project: staging\n",
    );
    for args in [
        &["plan"][..],
        &["apply", "--auto-approve", "--allow-destroy"][..],
        &["state", "list"][..],
    ] {
        let o = sipform(b.path(), &url, args);
        expect_code(&o, 1);
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "state at file {} belongs to project alloresto-prod (account AlloResto), \
                 not to project staging (account AlloResto-Staging)",
                path.display()
            )),
            "{args:?}: {err}"
        );
        assert!(err.contains("set `project:`"), "{err}");
    }
    // Without ids, the account name is the project: another account is refused as well.
    let c = project_b("OtherCo", &file_state(&path), "");
    let o = sipform(c.path(), &url, &["plan"]);
    expect_code(&o, 1);
    assert!(
        stderr(&o).contains(
            "belongs to project alloresto-prod (account AlloResto), \
             not to project OtherCo (account OtherCo)"
        ),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&path).expect("state"), before, "untouched");
    assert_eq!(accounts_named(&emu, "AlloResto-Staging").len(), 0);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_without_a_project_is_adopted_by_the_first_project() {
    let emu = emulator().await;
    let url = emu.base_url();
    let a = project_a("state:\n  backend: file\n  path: sipform.state.json\n", "");
    let o = sipform(a.path(), &url, &["apply", "--auto-approve"]);
    expect_code(&o, 0);
    // Make it what an earlier sipform wrote: no project recorded.
    let mut state = read_state(a.path());
    state.as_object_mut().expect("object").remove("project");
    state["version"] = 1.into();
    std::fs::write(
        a.path().join("sipform.state.json"),
        serde_json::to_vec_pretty(&state).expect("json"),
    )
    .expect("write");

    // The first project to open it plans nothing new, and records itself on its next write.
    let o = sipform(a.path(), &url, &["plan", "--detailed-exitcode"]);
    expect_code(&o, 0);
    let o = sipform(
        a.path(),
        &url,
        &["state", "rm", "3f6c2a1e-8b4d-4c59-9a2e-1d7f5b6c8e01"],
    );
    expect_code(&o, 0);
    let after = read_state(a.path());
    assert_eq!(
        after["project"],
        serde_json::json!({"id": "AlloResto", "account": "AlloResto"})
    );
    assert_eq!(after["lineage"], state["lineage"]);
    // It is now that project's: another one is refused.
    let b = project_b(
        "OtherCo",
        &file_state(&a.path().join("sipform.state.json")),
        "",
    );
    let o = sipform(b.path(), &url, &["plan"]);
    expect_code(&o, 1);
    assert!(
        stderr(&o).contains("belongs to project AlloResto"),
        "{}",
        stderr(&o)
    );
    emu.shutdown().await;
}

/// The library's side: two projects in one PostgreSQL schema each load and write only their
/// own lineage, and neither waits for the other's lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_projects_apart_and_locks_them_separately() {
    use sipform::model::ids::{AgentId, RestaurantId};
    use sipform::state::{
        Change, LockInfo, PostgresState, ProjectRef, State, StateBackend, StateWriter,
    };

    let db = TestDb::new(Engine::Postgres).await;
    let open = |p: &ProjectRef| {
        std::sync::Arc::new(
            PostgresState::open(&db.url)
                .expect("open")
                .for_project(Some(p.clone())),
        )
    };
    let a = ProjectRef::new("a", "A");
    let b = ProjectRef::new("b", "B");
    let agent = |r: &str| Change::Agent {
        restaurant: RestaurantId::new(r),
        id: Some(AgentId::new(format!("ag-{r}"))),
        tokens: None,
    };
    let _lock_a = open(&a)
        .lock(&LockInfo::for_this_process("apply"), Duration::from_secs(5))
        .await
        .expect("lock A");
    let _lock_b = open(&b)
        .lock(&LockInfo::for_this_process("apply"), Duration::from_secs(1))
        .await
        .expect("B does not wait for A's lock");
    for (p, r) in [(&a, "ra"), (&b, "rb")] {
        let w = StateWriter::new(open(p), State::new(), false, None);
        w.record(vec![agent(r)]).await.expect("record");
    }
    let sa = open(&a).load().await.expect("load").expect("A's state");
    let sb = open(&b).load().await.expect("load").expect("B's state");
    assert_ne!(sa.lineage, sb.lineage);
    assert_eq!(
        sa.restaurants
            .keys()
            .map(|r| r.as_str())
            .collect::<Vec<_>>(),
        ["ra"]
    );
    assert_eq!(
        sb.restaurants
            .keys()
            .map(|r| r.as_str())
            .collect::<Vec<_>>(),
        ["rb"]
    );
    // A second history for A is refused; B's goes on.
    let e = open(&a)
        .commit(&State::new(), &[])
        .await
        .expect_err("a second lineage of A");
    assert!(e.to_string().contains("lineage"), "{e}");
    let w = StateWriter::new(open(&b), sb, false, None);
    w.record(vec![agent("rb2")]).await.expect("record");
    assert_eq!(
        open(&a)
            .load()
            .await
            .expect("load")
            .expect("state")
            .restaurants
            .len(),
        1
    );
    // Unbound (a `state` command outside a project), the database's two projects are named.
    let e = PostgresState::open(&db.url)
        .expect("open")
        .load()
        .await
        .expect_err("two projects");
    assert!(e.to_string().contains("project's folder"), "{e}");
}
