//! The command line's edges (issue 14): bounded flags, exit codes of usage errors, flags that
//! are refused rather than ignored, messages outside a project, colour only on a terminal,
//! Markdown that tenant data cannot inject into, one inventory source for every command, and
//! `--server-url` over the environment.

mod common;

use std::process::Output;

use common::db::{Engine, TestDb};
use common::*;

/// The binary with no server and no project assumptions; never inherits the caller's settings.
fn sipform_in(dir: &std::path::Path, args: &[&str]) -> Output {
    // A port nothing listens on: a test that reaches for a server fails fast and visibly.
    sipform(dir, "http://127.0.0.1:9", args)
}

// --- #13 -------------------------------------------------------------------------------------

#[test]
fn parallelism_beyond_its_bound_is_a_usage_error_not_a_panic() {
    let dir = project_copy();
    for value in ["18446744073709551615", "257", "0", "-1", "many"] {
        let out = sipform_in(dir.path(), &["plan", "--parallelism", value]);
        expect_code(&out, 1);
        let err = stderr(&out);
        assert!(err.starts_with("error: "), "{value}: {err}");
        assert!(!err.contains("panicked"), "{value}: {err}");
    }
    let out = sipform_in(dir.path(), &["apply", "--parallelism", "1000"]);
    expect_code(&out, 1);
    assert!(stderr(&out).contains("1..=256"), "{}", stderr(&out));

    let help = sipform_in(dir.path(), &["plan", "--help"]);
    expect_code(&help, 0);
    assert!(stdout(&help).contains("1 to 256"), "{}", stdout(&help));
}

// --- #20 -------------------------------------------------------------------------------------

#[test]
fn usage_errors_exit_1_and_help_and_version_exit_0() {
    let dir = project_copy();
    for args in [
        &["plan", "--no-such-flag"][..],
        &["no-such-command"],
        &[],
        &["plan", "--lock-timeout"],
        &["apply", "--lock-timeout", "soon"],
    ] {
        let out = sipform_in(dir.path(), args);
        expect_code(&out, 1);
        assert!(
            !stderr(&out).is_empty() && stdout(&out).is_empty(),
            "{args:?}"
        );
    }
    for args in [
        &["--help"][..],
        &["--version"],
        &["plan", "--help"],
        &["help"],
    ] {
        let out = sipform_in(dir.path(), args);
        expect_code(&out, 0);
        assert!(!stdout(&out).is_empty(), "{args:?}");
    }
}

// --- #21 -------------------------------------------------------------------------------------

#[test]
fn flags_a_command_would_ignore_are_refused() {
    let dir = project_copy();
    for args in [
        &["plan", "--lock-timeout", "5s"][..],
        &["demo", "--allow-destroy"],
        &["demo", "--lock-timeout", "5s"],
        &["import", "--all", "--allow-destroy"],
        &["validate", "--server-url", "http://x"],
        &["render", "--parallelism", "2"],
    ] {
        let out = sipform_in(dir.path(), args);
        expect_code(&out, 1);
        assert!(
            stderr(&out).contains("unexpected argument"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

// --- #25 -------------------------------------------------------------------------------------

#[test]
fn outside_a_project_says_once_that_there_is_no_sipform_yaml() {
    let empty = tempfile::tempdir().expect("tempdir");
    for cmd in [
        "plan", "apply", "validate", "render", "doctor", "import", "demo",
    ] {
        let mut args = vec![cmd];
        if cmd == "import" {
            args.push("--all");
        }
        let out = sipform_in(empty.path(), &args);
        expect_code(&out, 1);
        let err = stderr(&out);
        assert_eq!(err.matches("sipform.yaml").count(), 1, "{cmd}: {err}");
        assert!(
            err.contains("no sipform.yaml in the current folder"),
            "{cmd}: {err}"
        );
        assert!(err.contains("-C DIR"), "{cmd}: {err}");
        assert!(!err.contains(":0:0"), "{cmd}: {err}");
        assert!(!err.contains("os error"), "{cmd}: {err}");
    }
    // -C names the folder it looked in.
    let elsewhere = project_copy();
    let target = empty.path().display().to_string();
    let out = sipform_in(elsewhere.path(), &["-C", &target, "plan"]);
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains(&format!("no sipform.yaml in {target}")),
        "{}",
        stderr(&out)
    );
}

// --- #19 -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    // Every tool create refused: apply logs a warning per restaurant.
    let faults = serde_json::from_value(serde_json::json!({
        "errors": [{"method": "POST", "route": "/api/agents/:id/tools", "rate": 1.0, "statuses": [400]}]
    }))
    .expect("faults");
    let emu = emulator_with(faults, 1).await;
    let dir = project_copy();
    let (d, url) = (dir.path().to_path_buf(), emu.base_url());
    let out = tokio::task::spawn_blocking(move || {
        command(&d, &url, &["apply", "--auto-approve"])
            .env_remove("NO_COLOR")
            .output()
            .expect("run")
    })
    .await
    .expect("join");
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("WARN"), "no warning to check:\n{err}");
    assert!(!err.contains('\x1b'), "colour codes on a pipe:\n{err:?}");
    assert!(!stdout(&out).contains('\x1b'), "{:?}", stdout(&out));
}

// --- #17 -------------------------------------------------------------------------------------

/// Everything outside the fenced code blocks: what GitHub interprets as Markdown.
fn outside_code(md: &str) -> String {
    let mut out = String::new();
    let mut fence: Option<String> = None;
    for line in md.lines() {
        let ticks: String = line.chars().take_while(|c| *c == '`').collect();
        match &fence {
            Some(f) if ticks.len() >= f.len() && line.trim_end() == ticks => fence = None,
            Some(_) => {}
            None if ticks.len() >= 3 => fence = Some(ticks),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_in_a_restaurant_name_is_shown_not_rendered() {
    let emu = emulator().await;
    let dir = project_copy();
    let file = dir.path().join("restaurants/pizzeria-napoli.yaml");
    let text = std::fs::read_to_string(&file).expect("restaurant");
    let text = text.replace(
        "name: Pizzeria Napoli",
        "name: \"**x** [y](https://evil) <b>`z`</b> a|b\"",
    );
    std::fs::write(&file, text).expect("write");

    let out = run(dir.path(), &emu.base_url(), &["plan", "--markdown"]).await;
    expect_code(&out, 0);
    let md = stdout(&out);
    let prose = outside_code(&md);
    for raw in ["**x**", "[y]", "](", "https://evil", "<b>", "`z`", "a|b"] {
        assert!(!prose.contains(raw), "{raw:?} left raw in:\n{prose}");
    }
    // Escaped, so it reads as typed: in the list of changes and in the section title alike.
    // (A word joiner after `:` so GitHub sees no URL either, issue 25 #8.)
    let escaped = "&#42;&#42;x&#42;&#42; &#91;y&#93;&#40;https&#58;\u{2060}//evil&#41;";
    assert!(prose.matches(escaped).count() >= 2, "{prose}");
    assert!(prose.contains(&format!("<summary>{escaped}")), "{prose}");
    // Inside the diff block the name is shown verbatim: code is never interpreted.
    assert!(md.contains("agent \"**x** [y](https://evil)"), "{md}");
}

// --- #26 -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_reads_a_database_inventory_like_validate() {
    let db = TestDb::new(Engine::Sqlite).await;
    db.create_restaurants("restaurants").await;
    let id = "00000000-0000-4000-8000-000000000042";
    db.exec(&format!(
        "INSERT INTO restaurants (id, name, contact_email, sip_enabled) VALUES ({}, 'Table Resto', 't@example.com', true);",
        db.id_literal(id)
    ))
    .await;
    let dir = project_copy();
    std::fs::write(
        dir.path().join("sipform.yaml"),
        format!(
            "account:\n  name: AlloResto\n  email: tech@alloresto.fr\ninventory:\n  source: database\n  url: \"{}\"\nstate:\n  backend: sqlite\n  url: sqlite://{}\n",
            db.url,
            db.dir.path().join("state.db").display()
        ),
    )
    .expect("sipform.yaml");

    let validate = sipform_in(dir.path(), &["validate"]);
    expect_code(&validate, 0);
    assert!(
        stdout(&validate).contains("1 restaurants"),
        "{}",
        stdout(&validate)
    );

    let render = sipform_in(dir.path(), &["render"]);
    expect_code(&render, 0);
    let text = stdout(&render);
    assert!(text.contains(&format!("restaurantId: {id}")), "{text}");
    assert!(text.contains("Table Resto"), "{text}");

    let one = sipform_in(dir.path(), &["render", "--json", "--restaurant", id]);
    expect_code(&one, 0);
    let specs: serde_json::Value = serde_json::from_slice(&one.stdout).expect("JSON");
    assert_eq!(specs[0]["restaurantId"], id);
}

// --- #24 -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_url_and_timeout_flags_win_over_the_environment() {
    let emu = emulator().await;
    let dir = project_copy();
    let url = emu.base_url();
    // The environment points at a port nothing listens on; the flag at the emulator.
    let out = {
        let (d, u) = (dir.path().to_path_buf(), url.clone());
        tokio::task::spawn_blocking(move || {
            sipform(
                &d,
                "http://127.0.0.1:9",
                &["plan", "--server-url", &u, "--timeout", "5s"],
            )
        })
        .await
        .expect("join")
    };
    expect_code(&out, 0);
    assert!(
        stdout(&out).starts_with(&format!("sipform plan for {url}\n")),
        "{}",
        stdout(&out)
    );
    assert!(count(&emu, "GET /api/accounts") >= 1);

    for bad in ["0", "0s", "soon"] {
        let out = sipform_in(dir.path(), &["plan", "--timeout", bad]);
        expect_code(&out, 1);
        assert!(
            stderr(&out).contains("--timeout"),
            "{bad}: {}",
            stderr(&out)
        );
    }
    let out = sipform_in(dir.path(), &["doctor", "--server-url", ""]);
    expect_code(&out, 1);
}
