//! `validate` checks every tool's request against the platform's OpenAPI document
//! (`platform.openapi`): the three bugs of the platform's own tool definitions are caught on a
//! copy of the unfixed tools (tests/fixtures/contract/unfixed-tools), the shipped tools pass
//! with their documented waivers, and the document agrees with the handlers' facts.

mod common;
mod contract_stub;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use common::{expect_code, project_copy, sipform, stderr, stdout};

const NO_SERVER: &str = "http://127.0.0.1:9";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Replaces the copy's tools with the unfixed ones (the platform's own definitions at v2).
fn unfixed_tools(dir: &Path) {
    let tools = dir.join("tools");
    std::fs::remove_dir_all(&tools).unwrap();
    common::copy_tree(
        &repo().join("tests/fixtures/contract/unfixed-tools"),
        &tools,
    );
}

/// Rewrites the copy's `platform:` block.
fn set_platform(dir: &Path, block: &str) {
    let p = dir.join("sipform.yaml");
    let text = std::fs::read_to_string(&p).unwrap();
    let head = text.split("\nplatform:").next().unwrap().to_string();
    std::fs::write(&p, format!("{head}\n{block}")).unwrap();
}

/// The 1-based line of the first line of `file` containing `needle`.
fn line_of(file: &Path, needle: &str) -> usize {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in {}", file.display()))
        + 1
}

#[test]
fn shipped_tools_pass_with_their_waivers_listed() {
    let dir = project_copy();
    let o = sipform(dir.path(), NO_SERVER, &["validate"]);
    expect_code(&o, 0);
    let err = stderr(&o);
    assert!(
        err.contains("waived (/api/faq was removed")
            && err.contains("tools/log_new_faq.yaml")
            && err.contains("POST /api/faq: no such route"),
        "{err}"
    );
    assert!(
        err.contains("waived (the handler's reservationTime")
            && err.contains("dead parameter")
            && err.contains("reservation_time"),
        "{err}"
    );
    assert!(!err.contains("matches no finding"), "{err}");
}

#[test]
fn the_three_bugs_are_caught_on_the_unfixed_tools() {
    let dir = project_copy();
    unfixed_tools(dir.path());
    set_platform(
        dir.path(),
        "platform:\n  openapi: docs/platform.openapi.yaml\n",
    );
    let o = sipform(dir.path(), NO_SERVER, &["validate"]);
    expect_code(&o, 1);
    let err = stderr(&o);
    let tools = dir.path().join("tools");
    let doc = dir.path().join("docs/platform.openapi.yaml");

    // log_new_faq: a removed route, named at the url's line.
    let faq = format!(
        "tools/log_new_faq.yaml:{}:",
        line_of(&tools.join("log_new_faq.yaml"), "url:")
    );
    let faq_line = err
        .lines()
        .find(|l| l.contains(&faq))
        .unwrap_or_else(|| panic!("{faq}\n{err}"));
    assert!(
        faq_line.contains("POST /api/faq: no such route in"),
        "{faq_line}"
    );

    // check_availability: $res.apiCosts is not in the answer; the OpenAPI path and its line.
    let avail = format!(
        "tools/check_availability.yaml:{}:",
        line_of(
            &tools.join("check_availability.yaml"),
            "extraCostResponseField"
        )
    );
    let line = err
        .lines()
        .find(|l| l.contains(&avail))
        .unwrap_or_else(|| panic!("{avail}\n{err}"));
    assert!(
        line.contains("`$res.apiCosts` is not in the route's answer"),
        "{line}"
    );
    assert!(line.contains("googleApiCalls"), "{line}");
    let op_line = line_of(&doc, "  /api/availability/check:") + 1;
    assert!(
        line.contains(&format!(
            "docs/platform.openapi.yaml:{op_line} POST /api/availability/check"
        )),
        "{line}"
    );

    // confirm_reservation: service_id and offer_id asked, never sent.
    let cr = tools.join("confirm_reservation.yaml");
    for p in ["service_id", "offer_id"] {
        let at = format!(
            "tools/confirm_reservation.yaml:{}:",
            line_of(&cr, &format!("    {p}:"))
        );
        let line = err
            .lines()
            .find(|l| l.contains(&at))
            .unwrap_or_else(|| panic!("{at}\n{err}"));
        assert!(
            line.contains(&format!(
                "dead parameter: the voice model is asked for `{p}`"
            )),
            "{line}"
        );
    }
    assert!(err.contains("problems found"), "{err}");
}

#[test]
fn without_a_document_nothing_changes() {
    let dir = project_copy();
    unfixed_tools(dir.path());
    set_platform(dir.path(), "");
    let o = sipform(dir.path(), NO_SERVER, &["validate"]);
    expect_code(&o, 0);
    assert!(!stderr(&o).contains("waived"), "{}", stderr(&o));
}

#[test]
fn a_waiver_matching_nothing_is_a_warning_and_a_missing_document_an_error() {
    let dir = project_copy();
    set_platform(
        dir.path(),
        "platform:\n  openapi: docs/platform.openapi.yaml\n  waivers:\n  - tool: log_new_faq\n    reason: gone\n  - tool: confirm_reservation\n    subject: reservation_time\n    reason: kept\n  - tool: cancel_order\n    check: unknown-body-key\n    reason: nothing to waive\n",
    );
    let o = sipform(dir.path(), NO_SERVER, &["validate"]);
    expect_code(&o, 0);
    assert!(
        stderr(&o).contains(
            "the waiver for cancel_order (unknown-body-key): nothing to waive matches no finding"
        ),
        "{}",
        stderr(&o)
    );
    // The reservation_time waiver is gone: that finding is an error again.
    let dir2 = project_copy();
    set_platform(
        dir2.path(),
        "platform:\n  openapi: docs/platform.openapi.yaml\n  waivers:\n  - tool: log_new_faq\n    reason: gone\n",
    );
    let o = sipform(dir2.path(), NO_SERVER, &["validate"]);
    expect_code(&o, 1);
    assert!(stderr(&o).contains("`reservation_time`"), "{}", stderr(&o));

    set_platform(dir.path(), "platform:\n  openapi: docs/missing.yaml\n");
    let o = sipform(dir.path(), NO_SERVER, &["validate"]);
    expect_code(&o, 1);
    assert!(stderr(&o).contains("docs/missing.yaml"), "{}", stderr(&o));
}

#[test]
fn a_bad_waiver_is_refused_by_the_schema() {
    let dir = project_copy();
    set_platform(
        dir.path(),
        "platform:\n  openapi: docs/platform.openapi.yaml\n  waivers:\n  - tool: log_new_faq\n    check: no-such-check\n    reason: x\n",
    );
    let o = sipform(dir.path(), NO_SERVER, &["validate"]);
    expect_code(&o, 1);
    assert!(stderr(&o).contains("sipform.yaml:"), "{}", stderr(&o));
}

#[test]
fn wrong_method_unknown_keys_and_missing_required_are_findings() {
    let dir = project_copy();
    let p = dir.path().join("tools/cancel_order.yaml");
    let text = std::fs::read_to_string(&p).unwrap().replace(
        "    order_number: ={{$ai.order_number}}\n",
        "    orderNumber: ={{$ai.order_number}}\n",
    );
    std::fs::write(&p, text).unwrap();
    let p = dir.path().join("tools/lookup_reservation.yaml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("restaurantId={{config.restaurantId}}&", "");
    std::fs::write(&p, text).unwrap();
    let p = dir.path().join("tools/leave_message.yaml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("method: POST", "method: PUT");
    std::fs::write(&p, text).unwrap();
    let o = sipform(dir.path(), NO_SERVER, &["validate"]);
    expect_code(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("body key `orderNumber` is not read by the route"),
        "{err}"
    );
    assert!(
        err.contains("the route requires body key `order_number`"),
        "{err}"
    );
    assert!(err.contains("POST /api/ai/tools/cancel-order]"), "{err}");
    assert!(
        err.contains("the route requires query parameter `restaurantId`"),
        "{err}"
    );
    assert!(
        err.contains("PUT is not a method of /api/messages (it answers DELETE, GET, PATCH, POST)"),
        "{err}"
    );
}

#[test]
fn plan_lists_the_waivers() {
    let dir = project_copy();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emu = rt.block_on(common::emulator());
    let o = sipform(dir.path(), &emu.base_url(), &["plan"]);
    expect_code(&o, 0);
    let out = stdout(&o);
    let second = out.lines().nth(1).unwrap_or_default();
    assert!(
        second.starts_with(
            "Waived contract check: log_new_faq (unknown-route): /api/faq was removed"
        ),
        "{out}"
    );
    let o = sipform(dir.path(), &emu.base_url(), &["plan", "--markdown"]);
    expect_code(&o, 0);
    assert!(
        stdout(&o).contains(
            "> **Waived contract check**: confirm_reservation (dead-parameter `reservation_time`)"
        ),
        "{}",
        stdout(&o)
    );
}

#[test]
fn doctor_tools_probes_each_target_with_options() {
    let stub = contract_stub::start();
    let dir = project_copy();
    let o = sipform(
        dir.path(),
        NO_SERVER,
        &["doctor", "--tools", "--platform-url", &stub.url],
    );
    expect_code(&o, 1);
    let out = stdout(&o);
    assert!(out.contains("FAIL tool log_new_faq: POST "), "{out}");
    assert!(out.contains("/api/faq: no such route (404)"), "{out}");
    assert!(out.contains("ok   tool check_order_status: GET "), "{out}");
    assert!(
        out.contains("ok   tool cancel_reservation: PATCH "),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok   tool ")).count(),
        9,
        "{out}"
    );
    // OPTIONS only: nothing was recorded as a call.
    assert!(stub.requests().is_empty(), "{:?}", stub.requests());

    // A method the route does not export.
    let p = dir.path().join("tools/leave_message.yaml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("method: POST", "method: PUT");
    std::fs::write(&p, text).unwrap();
    let o = sipform(
        dir.path(),
        NO_SERVER,
        &["doctor", "--tools", "--platform-url", &stub.url],
    );
    assert!(
        stdout(&o).contains("FAIL tool leave_message: PUT ")
            && stdout(&o).contains("the route allows GET, POST, PATCH, DELETE, OPTIONS only"),
        "{}",
        stdout(&o)
    );
}

/// What the facts say of one handler: query (name → required), body (name → required),
/// the 2xx answers' keys.
type Handler = (
    BTreeMap<String, bool>,
    BTreeMap<String, bool>,
    BTreeSet<String>,
);

fn facts() -> BTreeMap<(String, String), Handler> {
    let facts: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/contract/platform-api-facts.json"))
            .unwrap(),
    )
    .unwrap();
    let mut out = BTreeMap::new();
    for r in facts["routes"].as_array().unwrap() {
        if r["exists"] != Value::Bool(true) {
            continue;
        }
        for (m, h) in r["handlers"].as_object().unwrap() {
            let fields = |k: &str| -> BTreeMap<String, bool> {
                h[k].as_array()
                    .unwrap()
                    .iter()
                    .filter(|f| !f["name"].as_str().unwrap().starts_with("..."))
                    .map(|f| {
                        (
                            f["name"].as_str().unwrap().to_string(),
                            f["required"] == Value::Bool(true),
                        )
                    })
                    .collect()
            };
            let answers: BTreeSet<String> = h["responses"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["status"].as_u64().unwrap() / 100 == 2)
                .flat_map(|a| a["keys"].as_array().unwrap().iter())
                .map(|k| k.as_str().unwrap().trim_end_matches('?').to_string())
                .filter(|k| !k.starts_with('<'))
                .collect();
            out.insert(
                (r["path"].as_str().unwrap().to_string(), m.clone()),
                (fields("query"), fields("body"), answers),
            );
        }
    }
    out
}

#[test]
fn the_document_agrees_with_the_handlers_facts() {
    let api = sipform::contract::Api::load(&repo().join("docs/platform.openapi.yaml"))
        .unwrap_or_else(|d| panic!("{d}"));
    assert!(api.revision.contains("v2"), "{}", api.revision);
    let head = std::fs::read_to_string(repo().join("docs/platform.openapi.yaml")).unwrap();
    assert!(
        head.lines()
            .take(5)
            .any(|l| l.contains("9160d52") && l.contains("v2")),
        "the header names the revision"
    );
    let facts = facts();
    let mut ours = BTreeSet::new();
    for route in &api.routes {
        for (m, op) in &route.operations {
            ours.insert((route.path.clone(), m.clone()));
            let (query, body, answers) = facts
                .get(&(route.path.clone(), m.clone()))
                .unwrap_or_else(|| panic!("{m} {} is not in the facts", route.path));
            let q: BTreeMap<String, bool> = op
                .query
                .iter()
                .map(|q| (q.name.clone(), q.required))
                .collect();
            assert_eq!(&q, query, "{m} {} query", route.path);
            let b: BTreeMap<String, bool> = match &op.body {
                Some(sipform::contract::openapi::Shape::Object {
                    properties,
                    required,
                    ..
                }) => properties
                    .keys()
                    .map(|k| (k.clone(), required.contains(k)))
                    .collect(),
                _ => BTreeMap::new(),
            };
            assert_eq!(&b, body, "{m} {} body", route.path);
            let keys: BTreeSet<String> = op.response.keys().into_iter().collect();
            assert_eq!(&keys, answers, "{m} {} answer keys", route.path);
            assert!(!op.response.has(&["apiCosts".to_string()]));
        }
    }
    let theirs: BTreeSet<_> = facts.keys().cloned().collect();
    assert_eq!(ours, theirs, "every handler of the facts, and only those");
    assert!(api.route("/api/faq").is_none(), "removed at v2");
}
