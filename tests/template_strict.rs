//! A misspelt variable in the agent template fails `validate` with the template's line,
//! filters included (`| tojson` used to render it as `null`, and the plan then removed every
//! final customer's phone); `| default` is allowed where it is written explicitly.

mod common;

use std::path::Path;

use common::{expect_code, project_copy, sipform, stderr, stdout};

const NO_SERVER: &str = "http://127.0.0.1:9";

fn edit_template(dir: &Path, from: &str, to: &str) -> usize {
    let p = dir.join("templates/agent.yaml.j2");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{from}");
    let line = text[..text.find(from).unwrap()].matches('\n').count() + 1;
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
    line
}

#[test]
fn a_typo_under_tojson_fails_naming_its_line() {
    let dir = project_copy();
    let line = edit_template(
        dir.path(),
        "restaurant.phone | tojson",
        "restaurant.phnoe | tojson",
    );
    let o = sipform(dir.path(), NO_SERVER, &["validate"]);
    expect_code(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "templates/agent.yaml.j2:{line}:1: undefined variable `restaurant.phnoe`"
        )),
        "{err}"
    );
    assert!(err.contains("restaurant has ai_voice"), "{err}");
    // render refuses it too: no `phone: null` reaches a plan.
    let o = sipform(dir.path(), NO_SERVER, &["render"]);
    expect_code(&o, 1);
    assert!(!stdout(&o).contains("phone: null"), "{}", stdout(&o));
}

#[test]
fn other_filters_accounts_and_top_level_names_too() {
    for (from, to, name) in [
        (
            "restaurant.contact_email | tojson",
            "restaurant.contact_emial | lower | tojson",
            "restaurant.contact_emial",
        ),
        ("app_url | tojson", "app_ulr | tojson", "app_ulr"),
        (
            "restaurant.name | tojson",
            "account.nmae | tojson",
            "account.nmae",
        ),
    ] {
        let dir = project_copy();
        let line = edit_template(dir.path(), from, to);
        let o = sipform(dir.path(), NO_SERVER, &["validate"]);
        expect_code(&o, 1);
        assert!(
            stderr(&o).contains(&format!(
                "agent.yaml.j2:{line}:1: undefined variable `{name}`"
            )),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn a_typo_in_a_branch_no_restaurant_takes_is_still_an_error() {
    let dir = project_copy();
    let line = edit_template(
        dir.path(),
        "  currency: EUR\n",
        "  currency: EUR\n[% if false %]  x: [[ restaurant.nmae | tojson ]]\n[% endif %]",
    ) + 1;
    let o = sipform(dir.path(), NO_SERVER, &["validate"]);
    expect_code(&o, 1);
    assert!(
        stderr(&o).contains(&format!(
            "agent.yaml.j2:{line}:1: undefined variable `restaurant.nmae`"
        )),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_explicit_default_is_allowed() {
    let dir = project_copy();
    edit_template(
        dir.path(),
        "restaurant.phone | tojson",
        "restaurant.phnoe | default(restaurant.phone) | tojson",
    );
    let o = sipform(dir.path(), NO_SERVER, &["validate"]);
    expect_code(&o, 0);
    let o = sipform(dir.path(), NO_SERVER, &["render"]);
    expect_code(&o, 0);
    assert!(stdout(&o).contains("+33142000001"), "{}", stdout(&o));
    // Excused at that use only: a second, bare use is an error.
    let line = edit_template(
        dir.path(),
        "  currency: EUR\n",
        "  currency: EUR\n  x: [[ restaurant.phnoe | tojson ]]\n",
    ) + 1;
    let o = sipform(dir.path(), NO_SERVER, &["validate"]);
    expect_code(&o, 1);
    assert!(
        stderr(&o).contains(&format!("agent.yaml.j2:{line}:1:")),
        "{}",
        stderr(&o)
    );
}
