//! `sipform test`: the shipped tool tests (tool-tests/) pass offline and against a stub
//! platform; a failing case is one FAIL line with its file and line, an annotation under GitHub
//! Actions, and exit 1; the shipped cases fail on the unfixed tools.

mod common;
mod contract_stub;

use std::path::Path;

use common::{command, expect_code, project_copy, sipform, stderr, stdout};

const NO_SERVER: &str = "http://127.0.0.1:9";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn with_cases() -> tempfile::TempDir {
    let dir = project_copy();
    common::copy_tree(&repo().join("tool-tests"), &dir.path().join("tool-tests"));
    dir
}

fn shipped_cases() -> usize {
    std::fs::read_dir(repo().join("tool-tests"))
        .unwrap()
        .map(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .lines()
                .filter(|l| l.starts_with("- name:"))
                .count()
        })
        .sum()
}

#[test]
fn every_tool_has_cases() {
    for e in std::fs::read_dir(repo().join("tools")).unwrap() {
        let name = e.unwrap().file_name();
        assert!(
            repo().join("tool-tests").join(&name).exists(),
            "no tool-tests/{}",
            name.to_string_lossy()
        );
    }
}

#[test]
fn shipped_cases_pass_offline() {
    let dir = with_cases();
    let o = sipform(dir.path(), NO_SERVER, &["test"]);
    expect_code(&o, 0);
    let out = stdout(&o);
    let n = shipped_cases();
    assert!(n >= 12, "{n}");
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("ok   tool-tests/"))
            .count(),
        n,
        "{out}"
    );
    assert_eq!(
        out.lines().last(),
        Some(format!("{n} passed, 0 failed").as_str()),
        "{out}"
    );
    assert!(
        out.contains("ok   tool-tests/check_order_status.yaml:4 check_order_status / the + of an international number arrives encoded"),
        "{out}"
    );
    assert!(!out.contains("(live)"), "offline: {out}");
}

#[test]
fn a_failing_case_names_its_line_and_is_annotated_in_actions() {
    let dir = with_cases();
    let p = dir.path().join("tool-tests/check_order_status.yaml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("phone=%2B33612345678", "phone=+33612345678");
    std::fs::write(&p, text).unwrap();
    let o = command(dir.path(), NO_SERVER, &["test"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", dir.path())
        .output()
        .unwrap();
    expect_code(&o, 1);
    let out = stdout(&o);
    let n = shipped_cases();
    assert!(
        out.contains(&format!("{} passed, 1 failed", n - 1)),
        "{out}"
    );
    let fail = out
        .lines()
        .find(|l| l.starts_with("FAIL "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        fail.starts_with("FAIL tool-tests/check_order_status.yaml:4 check_order_status / "),
        "{fail}"
    );
    assert!(fail.contains("url: expected http://localhost:3000/api/orders/status?restaurantId=c4e8b7a3-2f61-4d0e-8c95-6b3a1f0e9d23&phone=+33612345678, got "), "{fail}");
    let ann = out
        .lines()
        .find(|l| l.starts_with("::error "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        ann.starts_with(
            "::error file=tool-tests/check_order_status.yaml,line=4,col=1::check_order_status / "
        ),
        "{ann}"
    );
}

#[test]
fn shipped_cases_fail_on_the_unfixed_tools() {
    let dir = with_cases();
    std::fs::remove_dir_all(dir.path().join("tools")).unwrap();
    common::copy_tree(
        &repo().join("tests/fixtures/contract/unfixed-tools"),
        &dir.path().join("tools"),
    );
    let o = sipform(dir.path(), NO_SERVER, &["test"]);
    expect_code(&o, 1);
    let out = stdout(&o);
    let fail = out
        .lines()
        .find(|l| l.starts_with("FAIL tool-tests/confirm_reservation.yaml"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        fail.contains(
            "body.serviceId: expected \"5d1e2f3a-0000-4000-8000-00000000000a\", not sent"
        ),
        "{fail}"
    );
    assert!(fail.contains("body.offerId"), "{fail}");
}

#[test]
fn a_case_file_off_the_schema_names_its_line() {
    let dir = with_cases();
    std::fs::write(
        dir.path().join("tool-tests/bad.yaml"),
        "tool: cancel_order\ncases:\n- name: x\n  restaurant: r\n  expcet: {}\n",
    )
    .unwrap();
    let o = sipform(dir.path(), NO_SERVER, &["test"]);
    expect_code(&o, 1);
    assert!(
        stderr(&o).contains("tool-tests/bad.yaml:5:"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("expcet"), "{}", stderr(&o));
}

#[test]
fn live_cases_run_against_a_platform() {
    let stub = contract_stub::start();
    let dir = with_cases();
    let o = sipform(dir.path(), NO_SERVER, &["test", "--platform", &stub.url]);
    expect_code(&o, 0);
    let out = stdout(&o);
    assert_eq!(
        out.lines().filter(|l| l.ends_with("(live)")).count(),
        2,
        "{out}"
    );
    let seen = stub.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.iter()
            .any(|r| r.path_and_query.ends_with("&phone=%2B33612345678")),
        "{seen:?}"
    );

    // A live expectation the platform does not meet.
    let p = dir.path().join("tool-tests/check_order_status.yaml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("found: false", "found: true");
    std::fs::write(&p, text).unwrap();
    let o = sipform(dir.path(), NO_SERVER, &["test", "--platform", &stub.url]);
    expect_code(&o, 1);
    assert!(
        stdout(&o).contains("response.found: expected true, got false"),
        "{}",
        stdout(&o)
    );
}
