//! The trigger SQL `controller install-trigger` generates (issue 25 #14): no table name can
//! break out of it, neither out of the dollar-quoted function body nor out of its comment.

mod common;

use common::db::{restaurants_ddl, Engine, TestDb};
use common::*;

/// A project whose inventory is `db`'s table `table` (the name as the YAML string `yaml`).
fn project_on_named(db: &TestDb, yaml: &str) -> tempfile::TempDir {
    project_on_table(
        db,
        TableProject {
            timeout_sec: Some(3),
            state_in_db: false,
            extra: &format!("  table: {yaml}\n"),
        },
    )
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A table name holding the function body's dollar-quote tag: the body still ends where the
/// function does, and installing the trigger runs nothing but the trigger's SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_name_with_the_dollar_tag_cannot_end_the_function_body() {
    let emu = emulator().await;
    let db = TestDb::new(Engine::Postgres).await;
    let name = "r$sipform$x";
    db.create_restaurants(&quoted(name)).await;
    let dir = project_on_named(&db, "\"r$sipform$x\"");
    let out = sipform(
        dir.path(),
        &emu.base_url(),
        &["controller", "install-trigger", "--print-sql"],
    );
    expect_code(&out, 0);
    let sql = stdout(&out);
    let open = sql
        .find("LANGUAGE plpgsql AS $")
        .expect("a dollar-quoted body");
    let rest = &sql[open + "LANGUAGE plpgsql AS ".len()..];
    let tag_len = rest[1..].find('$').expect("tag end") + 2;
    let tag = &rest[..tag_len];
    let body = &rest[tag_len..];
    let close = body.find(tag).expect("the body's end");
    assert!(
        body[..close].trim_end().ends_with("RETURN NULL;\nEND"),
        "the body ended early at {tag}:\n{sql}"
    );
    let out = sipform(
        dir.path(),
        &emu.base_url(),
        &["controller", "install-trigger"],
    );
    expect_code(&out, 0);
    assert_eq!(
        db.text("SELECT CAST(to_regclass('\"r$sipform$x_sipform_changes\"') AS TEXT)")
            .await
            .as_deref(),
        Some("\"r$sipform$x_sipform_changes\""),
        "{}",
        stderr(&out)
    );
}

/// A table name with a line break cannot leave the SQL's comment line and run a statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_name_with_a_line_break_cannot_leave_the_comment() {
    for engine in [Engine::Postgres, Engine::Sqlite] {
        let emu = emulator().await;
        let db = TestDb::new(engine).await;
        db.exec(&restaurants_ddl(engine, "canary")).await;
        let name = "r\nDROP TABLE canary; --";
        db.create_restaurants(&quoted(name)).await;
        let dir = project_on_named(&db, "\"r\\nDROP TABLE canary; --\"");
        let out = sipform(
            dir.path(),
            &emu.base_url(),
            &["controller", "install-trigger", "--print-sql"],
        );
        expect_code(&out, 0);
        let sql = stdout(&out);
        let head: Vec<&str> = sql
            .lines()
            .take_while(|l| !l.starts_with("CREATE TABLE"))
            .collect();
        assert!(
            head.len() <= 2 && head.iter().all(|l| l.starts_with("--")),
            "{engine:?}: a statement before the first CREATE TABLE:\n{sql}"
        );
        let _ = sipform(
            dir.path(),
            &emu.base_url(),
            &["controller", "install-trigger"],
        );
        assert_eq!(
            db.text("SELECT CAST(count(*) AS TEXT) FROM canary")
                .await
                .as_deref(),
            Some("0"),
            "{engine:?}: the canary table was dropped"
        );
    }
}
