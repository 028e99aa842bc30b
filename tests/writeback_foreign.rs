//! Two projects reading one platform table (issue 25, item 3): a staging project pointed at
//! production's `restaurants` must not rewrite its rows to its own account's agents. A row
//! naming an agent that exists and is not this project's is reported by plan (a note) and by
//! the controller, and left alone; neither project creates anything for it.

mod common;

use common::controller::*;
use common::db::{Engine, TestDb};
use common::*;

/// A second project on the same table: its own state file, its own account.
fn staging_on(db: &TestDb) -> tempfile::TempDir {
    let dir = project_on_table(
        db,
        TableProject {
            timeout_sec: Some(3),
            state_in_db: false,
            extra: "",
        },
    );
    let path = dir.path().join("sipform.yaml");
    let yaml = std::fs::read_to_string(&path).expect("sipform.yaml");
    let yaml = yaml.replace("name: AlloResto", "name: AlloResto Staging");
    std::fs::write(&path, yaml).expect("sipform.yaml");
    dir
}

async fn rows(db: &TestDb, n: usize) -> Vec<[Option<String>; 3]> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push([
            column(db, "agent_id", i).await,
            column(db, "final_customer_id", i).await,
            column(db, "agent_api_token", i).await,
        ]);
    }
    out
}

async fn two_projects_never_flip_rows(engine: Engine) {
    let emu = emulator().await;
    let db = platform(engine).await;
    insert(&db, 0..3).await;
    let prod = project_on_table(
        &db,
        TableProject {
            timeout_sec: Some(3),
            state_in_db: false,
            extra: "",
        },
    );
    let staging = staging_on(&db);
    apply_ok(prod.path(), &emu.base_url()).await;
    let written = rows(&db, 3).await;
    assert!(written.iter().all(|r| r.iter().all(Option::is_some)));
    let agents_before = agents(&emu).len();

    // Staging's plan names every row as another project's; its apply changes nothing.
    let plan = run(staging.path(), &emu.base_url(), &["plan"]).await;
    expect_code(&plan, 0);
    let text = stdout(&plan);
    for i in 0..3 {
        assert!(text.contains(&rid(i)), "plan names restaurant {i}: {text}");
    }
    assert!(
        text.contains("not this project's") && text.contains("left alone"),
        "plan says why: {text}"
    );
    for _ in 0..2 {
        apply_ok(staging.path(), &emu.base_url()).await;
        assert_eq!(
            rows(&db, 3).await,
            written,
            "staging rewrote production's rows"
        );
        apply_ok(prod.path(), &emu.base_url()).await;
        assert_eq!(rows(&db, 3).await, written, "production's rows moved");
    }
    assert_eq!(
        agents(&emu).len(),
        agents_before,
        "staging created no agent for rows naming production's"
    );
    expect_no_changes(prod.path(), &emu.base_url()).await;

    // The controller of staging reports them and leaves them alone too.
    install_trigger(prod.path(), &emu.base_url());
    let ctl = start(staging.path(), &emu.base_url(), &[], &[]);
    eventually("the controller to lead", 20, || ctl.is_leader()).await;
    db.exec(&format!(
        "UPDATE restaurants SET name = 'Renamed' WHERE id = {}",
        db.id_literal(&rid(1))
    ))
    .await;
    let reported = async {
        for _ in 0..200 {
            if ctl.log_text().contains("not this project's") {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    };
    assert!(
        reported.await,
        "the controller reports the foreign row: {}",
        ctl.log_text()
    );
    assert_eq!(rows(&db, 3).await, written, "the controller rewrote a row");
    assert_eq!(agents(&emu).len(), agents_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_projects_never_flip_rows_sqlite() {
    two_projects_never_flip_rows(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_projects_never_flip_rows_postgres() {
    two_projects_never_flip_rows(Engine::Postgres).await;
}
