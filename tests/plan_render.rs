//! Snapshot and plain tests of the three plan formats and the committed plan schema.
//!
//! The fixture is handcrafted (fixed timestamp, lineage, ids) so snapshots are stable; it covers
//! every kind of line a renderer can print. Snapshots pin the look; the plain assertions pin
//! the promises (secrets never printed, exact summary line, size limit) so they fail even if
//! someone accepts a bad snapshot.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sipform::model::ids::{ObjectId, RestaurantId};
use sipform::model::revision::{ConfigDigest, GitCommit, Revision, RevisionNote};
use sipform::model::secret::REDACTED;
use sipform::model::spec::{Breach, LimitKind};
use sipform::output::{
    self as render, human, markdown, plan_schema_json, MARKDOWN_MAX_CHARS, NO_CHANGES,
};
use sipform::plan::{
    Action, FieldChange, Hold, HoldReason, Plan, Reason, Resource, RestaurantPlan, Summary,
    PLAN_FORMAT_VERSION,
};
use uuid::Uuid;

const TOOLS: [&str; 12] = [
    "check_availability",
    "confirm_reservation",
    "lookup_reservation",
    "cancel_reservation",
    "confirm_order",
    "check_order_status",
    "cancel_order",
    "save_customer_info",
    "leave_message",
    "log_new_faq",
    "transfer_call",
    "end_call",
];

fn fc(path: &str, before: Option<Value>, after: Option<Value>) -> FieldChange {
    FieldChange {
        path: path.into(),
        before: before.map(Box::new),
        after: after.map(Box::new),
        sensitive: false,
    }
}

fn added(path: &str, v: Value) -> FieldChange {
    fc(path, None, Some(v))
}

fn sensitive(path: &str) -> FieldChange {
    FieldChange {
        path: path.into(),
        before: None,
        after: None,
        sensitive: true,
    }
}

fn id(s: &str) -> ObjectId {
    ObjectId::parse(s).expect("fixture ids are valid")
}

/// A create whose body holds what its changes add.
fn create(resource: Resource, name: &str, changes: Vec<FieldChange>) -> Action {
    let body = Value::Object(
        changes
            .iter()
            .filter_map(|c| Some((c.path.clone(), *c.after.clone()?)))
            .collect(),
    );
    create_with(resource, name, changes, body)
}

/// A create of `body`; `changes` must be what it derives (its body's fields).
fn create_with(resource: Resource, name: &str, changes: Vec<FieldChange>, body: Value) -> Action {
    let write_only = changes
        .iter()
        .filter(|c| c.sensitive)
        .map(|c| c.path.clone())
        .collect();
    let a = Action::Create {
        resource,
        name: name.into(),
        body: body.into(),
        write_only,
    };
    assert_eq!(
        *a.changes(),
        *changes,
        "a fixture's create lists its body's fields"
    );
    a
}

fn update(
    resource: Resource,
    name: &str,
    remote: &str,
    changes: Vec<FieldChange>,
    body: Value,
) -> Action {
    Action::Update {
        resource,
        name: name.into(),
        id: id(remote),
        changes: changes.into(),
        body: body.into(),
    }
}

fn noop(resource: Resource, name: &str, remote: &str) -> Action {
    Action::NoOp {
        resource,
        name: name.into(),
        id: id(remote),
    }
}

fn created_at() -> DateTime<Utc> {
    "2026-01-02T03:04:05Z".parse().expect("fixed timestamp")
}

fn plan_of(account: Action, restaurants: Vec<RestaurantPlan>) -> Plan {
    let mut plan = Plan {
        format_version: PLAN_FORMAT_VERSION,
        sipform_version: "0.1.0".into(),
        created_at: created_at(),
        server_url: "http://localhost:4000".into(),
        lineage: Uuid::from_u128(0x6f1c_2a4e_0000_4000_8000_0000_0000_0001),
        state_serial: 7,
        remote_fingerprint: "sha256:9f2c0a".into(),
        duplicates: Vec::new(),
        orphans: Vec::new(),
        targets: Vec::new(),
        allow_destroy: false,
        account,
        restaurants,
        summary: Summary::default(),
        revision: Some(Revision {
            commit: Some(GitCommit::parse("0123456789abcdef0123456789abcdef01234567").unwrap()),
            dirty: false,
            digest: ConfigDigest::from_sha256([0x5a; 32]),
        }),
        allow_rollback: false,
        allow_dirty: false,
        revision_notes: Vec::new(),
        guardrails: Vec::new(),
        ignore_windows: false,
        holds: Vec::new(),
    };
    plan.summary = Summary::of(plan.actions());
    plan
}

fn description(order_step: &str) -> String {
    [
        "Confirm a takeaway or delivery order once the caller has chosen every item.",
        "",
        "Before calling this tool:",
        "1. Read the whole order back to the caller, item by item, with quantities.",
        "2. Ask for the pickup or delivery time.",
        order_step,
        "4. Ask for the caller's name.",
        "",
        "Never invent prices: use the prices the menu tool returned.",
        "If the kitchen is closed, say so and offer to leave a message instead.",
    ]
    .join("\n")
}

fn config(restaurant: &str, transfer: bool) -> Value {
    json!({
        "restaurantId": restaurant,
        "deliveryEnabled": true,
        "reservationEnabled": true,
        "orderStatusEnabled": true,
        "transferEnabled": transfer
    })
}

/// Every kind of line: account create, a fresh restaurant, updates with a line diff and a
/// config change, a delete with a reason, adopts, a sensitive field, a restaurant gone from
/// the inventory, and an unchanged restaurant that must not be listed.
fn fixture() -> Plan {
    let account = create(
        Resource::ACCOUNT,
        "Acme Restaurants",
        vec![added("name", json!("Acme Restaurants"))],
    );

    // A restaurant seen for the first time: final customer, agent, 12 tools.
    let customer = create(
        Resource::FINAL_CUSTOMER,
        "Chez Marco",
        vec![
            added("name", json!("Chez Marco")),
            added("currency", json!("EUR")),
            added("costMarginPct", json!(30)),
        ],
    );
    let agent = create_with(
        Resource::AGENT,
        "Chez Marco",
        vec![
            added("name", json!("Chez Marco")),
            added("aiModel", json!("gpt-realtime")),
            added("aiVoice", json!("sage")),
            added("basePrompt", json!("={{data.systemPrompt}}")),
            added("config", config("r-001", false)),
            added("isActive", json!(true)),
        ],
        json!({
            "name": "Chez Marco",
            "aiModel": "gpt-realtime",
            "aiVoice": "sage",
            "basePrompt": "={{data.systemPrompt}}",
            "config": config("r-001", false),
            "isActive": true
        }),
    );
    let mut fresh = vec![customer, agent];
    for (i, tool) in TOOLS.iter().enumerate() {
        fresh.push(create(
            Resource::TOOL,
            tool,
            vec![
                added("name", json!(tool)),
                added("description", json!(format!("The {tool} tool."))),
                added("sortOrder", json!(i)),
            ],
        ));
    }
    let chez_marco = RestaurantPlan {
        restaurant_id: RestaurantId::new("r-001"),
        name: "Chez Marco".into(),
        actions: fresh,
        notes: Vec::new(),
    };

    // An existing restaurant: voice and config changed, one tool edited, one tool nobody
    // declares any more, one tool made by hand and adopted. Its name needs Markdown escaping.
    let agent = update(
        Resource::AGENT,
        "Le Petit Bistro | Bar <1>",
        "a-0002",
        vec![
            fc("aiVoice", Some(json!("sage")), Some(json!("alloy"))),
            fc(
                "config",
                Some(config("r-002", false)),
                Some(config("r-002", true)),
            ),
            sensitive("phoneLines.0.sipPassword"),
        ],
        json!({"aiVoice": "alloy", "config": config("r-002", true)}),
    );
    let new_description = description(
        "3. Ask whether it is for pickup or delivery, and for the address if delivery.",
    );
    let edited = update(
        Resource::TOOL,
        "confirm_order",
        "t-0205",
        vec![
            fc(
                "description",
                Some(json!(description(
                    "3. Ask whether it is for pickup or delivery."
                ))),
                Some(json!(new_description)),
            ),
            fc("sortOrder", Some(json!(4)), Some(json!(5))),
        ],
        json!({"name": "confirm_order", "description": new_description, "sortOrder": 5}),
    );
    let deleted = Action::Delete {
        resource: Resource::TOOL,
        name: "legacy_upsell".into(),
        id: id("t-0299"),
        reason: Reason::NotDeclared("tools/".into()),
    };
    let adopted = Action::Adopt {
        resource: Resource::TOOL,
        name: "leave_message".into(),
        id: id("t-0209"),
        reason: Reason::FoundByName,
    };
    let bistro = RestaurantPlan {
        restaurant_id: RestaurantId::new("r-002"),
        name: "Le Petit Bistro | Bar <1>".into(),
        actions: vec![
            noop(Resource::FINAL_CUSTOMER, "Le Petit Bistro", "fc-0002"),
            agent,
            edited,
            deleted,
            adopted,
        ],
        notes: Vec::new(),
    };

    // An agent the platform's old script made: taken into state, no API call.
    let agent = Action::Adopt {
        resource: Resource::AGENT,
        name: "Sushi Zen".into(),
        id: id("a-0003"),
        reason: Reason::FoundByRestaurantId,
    };
    let sushi = RestaurantPlan {
        restaurant_id: RestaurantId::new("r-003"),
        name: "Sushi Zen".into(),
        actions: vec![agent],
        notes: Vec::new(),
    };

    // Nothing to do: must not be listed.
    let unchanged = RestaurantPlan {
        restaurant_id: RestaurantId::new("r-004"),
        name: "Unchanged Grill".into(),
        actions: vec![noop(Resource::AGENT, "Unchanged Grill", "a-0004")],
        notes: Vec::new(),
    };

    // Gone from the inventory, no --allow-destroy: listed with a note, nothing happens.
    let gone = RestaurantPlan {
        restaurant_id: RestaurantId::new("r-099"),
        name: "Old Diner".into(),
        actions: vec![
            noop(Resource::AGENT, "Old Diner", "a-0099"),
            noop(Resource::FINAL_CUSTOMER, "Old Diner", "fc-0099"),
        ],
        notes: vec![
            "gone from the inventory: its agent and final customer are kept; pass --allow-destroy to delete them".into(),
        ],
    };

    let mut plan = plan_of(account, vec![chez_marco, bistro, sushi, unchanged, gone]);
    plan.revision_notes = vec![RevisionNote {
        restaurant_id: RestaurantId::new("r-099"),
        name: "Old Diner".into(),
        refused: true,
        message: "it is recorded at fedcba9, newer than this configuration's 0123456 (an ancestor of it): applying would go back; pass --allow-rollback to roll back from fedcba9 to 0123456".into(),
    }];
    plan
}

fn empty() -> Plan {
    plan_of(
        noop(Resource::ACCOUNT, "Acme Restaurants", "acc-1"),
        Vec::new(),
    )
}

#[test]
fn human_snapshot() {
    insta::assert_snapshot!("human", human(&fixture(), false));
}

#[test]
fn markdown_snapshot() {
    insta::assert_snapshot!("markdown", markdown(&fixture()));
}

#[test]
fn json_snapshot() {
    insta::assert_snapshot!("json", render::json(&fixture()));
}

/// A plan over its guardrails: the limit, the count, by how much and the flag, above the
/// changes, in every format.
fn over_guardrails() -> Plan {
    let rp = RestaurantPlan {
        restaurant_id: RestaurantId::new("r-1"),
        name: "Chez Marco".into(),
        actions: vec![update(
            Resource::AGENT,
            "Chez Marco",
            "ag-1",
            vec![fc("isActive", Some(json!(true)), Some(json!(false)))],
            json!({"isActive": false}),
        )],
        notes: Vec::new(),
    };
    let mut plan = plan_of(
        noop(Resource::ACCOUNT, "Acme Restaurants", "acc-1"),
        vec![rp],
    );
    plan.guardrails = vec![Breach {
        limit: LimitKind::Deactivations,
        count: 60,
        allowed: 5,
        setting: "5%".into(),
        fleet: 100,
    }];
    plan
}

/// The fixture with its first restaurant held by its change window (issue 30).
fn held() -> Plan {
    let mut plan = fixture();
    let r = &plan.restaurants[0];
    plan.holds.push(Hold {
        restaurant_id: r.restaurant_id.clone(),
        name: r.name.clone(),
        reason: HoldReason::Window,
        until: Some("2026-12-07T13:30:00Z".parse().expect("time")),
        message:
            "in a change window at 12:00 Europe/Paris: held until 14:30 (2026-12-07T13:30:00Z)"
                .into(),
    });
    plan
}

#[test]
fn guardrails_snapshots() {
    let plan = over_guardrails();
    let text = human(&plan, false);
    // The promise, whatever the snapshot: which limit, by how much, and the flag.
    assert!(
        text.contains(
            "exceed guardrails.max_deactivations (5% of a fleet of 100: at most 5) by 55"
        ),
        "{text}"
    );
    assert!(text.contains("--allow-changes 60"), "{text}");
    insta::assert_snapshot!("guardrails_human", text);
    insta::assert_snapshot!("guardrails_markdown", markdown(&plan));
    let json: Value = serde_json::from_str(&render::json(&plan)).expect("json");
    assert_eq!(json["guardrails"][0]["limit"], "max_deactivations");
}

#[test]
fn held_plan_snapshots() {
    insta::assert_snapshot!("held_human", human(&held(), false));
    insta::assert_snapshot!("held_markdown", markdown(&held()));
    let json: Value = serde_json::from_str(&render::json(&held())).expect("JSON");
    assert_eq!(json["holds"][0]["reason"], "window");
    assert_eq!(json["holds"][0]["until"], "2026-12-07T13:30:00Z");
}

#[test]
fn empty_plan_snapshots() {
    insta::assert_snapshot!("empty_human", human(&empty(), false));
    insta::assert_snapshot!("empty_markdown", markdown(&empty()));
    insta::assert_snapshot!("empty_json", render::json(&empty()));
}

#[test]
fn summary_line_counts_every_kind() {
    let text = human(&fixture(), false);
    assert_eq!(
        text.lines().last(),
        Some("Plan: 15 to add, 2 to change, 1 to delete, 2 to adopt.")
    );
    assert!(text.starts_with("sipform plan for http://localhost:4000\n"));
    let md = markdown(&fixture());
    assert_eq!(
        md.lines().nth(1),
        Some("### Plan: 15 to add, 2 to change, 1 to delete, 2 to adopt.")
    );
}

#[test]
fn no_adopt_means_no_adopt_clause() {
    let mut plan = fixture();
    plan.restaurants.truncate(1);
    plan.summary = Summary::of(plan.actions());
    let text = human(&plan, false);
    assert_eq!(
        text.lines().last(),
        Some("Plan: 15 to add, 0 to change, 0 to delete.")
    );
}

#[test]
fn empty_plan_says_no_changes() {
    let text = human(&empty(), false);
    assert_eq!(text.lines().last(), Some(NO_CHANGES));
    assert!(!text.contains("Plan:"));
    assert!(markdown(&empty()).contains(NO_CHANGES));
}

#[test]
fn actions_and_fields_have_their_symbols() {
    let text = human(&fixture(), false);
    let lines: Vec<&str> = text.lines().collect();
    for expected in [
        "  + account \"Acme Restaurants\"",
        "restaurant Chez Marco (r-001)",
        "  + tool check_availability",
        "  + tool end_call",
        "      + aiVoice: \"sage\"",
        "  ~ agent \"Le Petit Bistro | Bar <1>\" (a-0002)",
        "      ~ aiVoice: \"sage\" → \"alloy\"",
        "      ~ sortOrder: 4 → 5",
        "  - tool legacy_upsell (t-0299) (not declared in tools/)",
        "  <= tool leave_message (t-0209) (found by name)",
        "  <= agent \"Sushi Zen\" (a-0003) (found by config.restaurantId)",
        "restaurant Old Diner (r-099)",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in\n{text}");
    }
    // The long description is a line diff with the changed words marked, not a one-line JSON
    // string.
    assert!(lines.contains(
        &"          ~ 3. Ask whether it is for pickup or {+delivery, and for the address if +}delivery."
    ));
    assert!(!text.contains("\\n"), "no escaped newlines:\n{text}");
    // No-ops are counted, never listed.
    assert!(!text.contains("Unchanged Grill"));
    assert!(!text.contains("fc-0002"));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("  ! gone from the inventory")));
}

#[test]
fn sensitive_fields_show_only_the_marker() {
    let text = human(&fixture(), false);
    // A write-only field has no values to show: an update says only that it changes.
    assert!(text.contains("      ~ phoneLines.0.sipPassword: (sensitive, changed)"));
    assert!(!text.contains(&format!("sipPassword: {REDACTED}\n")));
}

/// Secrets never reach the model, but if one did, the human and Markdown forms still hide it.
#[test]
fn a_leaked_secret_is_never_printed() {
    let mut plan = fixture();
    let leak = "sk_live_DO_NOT_PRINT_4242";
    let Action::Update { changes, .. } = &mut plan.restaurants[1].actions[1] else {
        panic!("the fixture's second action of r-002 is the agent's update");
    };
    let mut more = std::mem::take(changes).into_vec();
    more.extend([
        fc("apiToken", Some(json!(leak)), Some(json!(leak))),
        fc("publicToken", None, Some(json!(leak))),
        fc("phoneLines.0.sipPassword", Some(json!(leak)), None),
        fc("auth.apiKey", None, Some(json!(leak))),
        FieldChange {
            path: "webhookSecret".into(),
            before: Some(Box::new(json!(leak))),
            after: Some(Box::new(json!(leak))),
            sensitive: true,
        },
    ]);
    *changes = more.into();
    for text in [human(&plan, false), human(&plan, true), markdown(&plan)] {
        assert!(!text.contains(leak), "secret printed:\n{text}");
        assert!(!text.contains("DO_NOT_PRINT"));
        assert!(text.contains(&format!("apiToken: {REDACTED}")));
        assert!(text.contains(&format!("webhookSecret: {REDACTED}")));
    }
}

#[test]
fn color_only_when_asked() {
    let plain = human(&fixture(), false);
    assert!(!plain.contains('\x1b'));
    let colored = human(&fixture(), true);
    assert!(colored.contains("\x1b[32m+\x1b[0m tool check_availability"));
    assert!(colored.contains("\x1b[33m~\x1b[0m agent"));
    assert!(colored.contains("\x1b[31m-\x1b[0m tool legacy_upsell"));
    assert!(colored.contains("\x1b[36m<=\x1b[0m agent \"Sushi Zen\""));
    // Stripping the escapes gives back the plain text exactly.
    assert_eq!(strip_ansi(&colored), plain);
    assert!(!markdown(&fixture()).contains('\x1b'));
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn markdown_escapes_names_and_keeps_diff_blocks() {
    let md = markdown(&fixture());
    assert!(md.starts_with("<!-- sipform-plan -->\n"));
    assert!(md.contains(
        "- Le Petit Bistro &#124; Bar &lt;1&gt; (r-002): 2 to change, 1 to delete, 1 to adopt\n"
    ));
    assert!(md.contains("<summary>Le Petit Bistro &#124; Bar &lt;1&gt; (r-002): "));
    // Outside the diff blocks, where GitHub escapes for us, no name is raw.
    let outside: String = md.split("```").step_by(2).collect();
    assert!(!outside.contains("Bar <1>"), "unescaped name:\n{md}");
    assert_eq!(md.matches("<details>").count(), 5, "account + 4 listed");
    assert_eq!(md.matches("</details>").count(), 5);
    assert!(md.contains("```diff\n"));
    assert!(md.contains("\n+   tool check_availability\n"));
    assert!(!md.contains("left out"));
}

#[test]
fn markdown_fits_a_github_comment() {
    let mut plan = fixture();
    let template = plan.restaurants[0].clone();
    plan.restaurants = (0..1000)
        .map(|i| {
            let mut r = template.clone();
            r.restaurant_id = RestaurantId::new(format!("r-{i:04}"));
            r.name = format!("Restaurant {i}");
            r
        })
        .collect();
    plan.summary = Summary::of(plan.actions());
    let md = markdown(&plan);
    assert!(
        md.chars().count() <= MARKDOWN_MAX_CHARS,
        "{} chars",
        md.chars().count()
    );
    // The same 14 creates in every restaurant: 14 shared changes, each listed once.
    for tool in TOOLS {
        assert!(
            md.contains(&format!("- + tool `{tool}`: created, 1,000 agents\n")),
            "{tool} missing"
        );
    }
    assert!(md.contains("Restaurant 0 (r-0000)"));
    assert!(md.contains(" more (`sipform plan --json` lists them all)"));
    assert_eq!(
        md.matches("<details>").count(),
        md.matches("</details>").count()
    );
}

#[test]
fn json_is_the_saved_form() {
    let plan = fixture();
    let text = render::json(&plan);
    assert!(text.ends_with("}\n"));
    let back: Plan = serde_json::from_str(&text).expect("the JSON form parses back");
    assert_eq!(back, plan);
    assert_eq!(
        text,
        format!(
            "{}\n",
            serde_json::to_string_pretty(&plan).expect("serializes")
        )
    );
}

#[test]
fn json_matches_the_schema() {
    let schema: Value = serde_json::from_str(&plan_schema_json()).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    for plan in [fixture(), empty()] {
        let instance: Value = serde_json::from_str(&render::json(&plan)).expect("plan is JSON");
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
    }
}

/// The committed schema is what the code generates. To regenerate:
/// `SIPFORM_WRITE_SCHEMA=1 cargo test --test plan_render committed_plan_schema`.
#[test]
fn committed_plan_schema_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/plan.schema.json");
    let generated = plan_schema_json();
    if std::env::var_os("SIPFORM_WRITE_SCHEMA").is_some() {
        std::fs::create_dir_all(path.parent().expect("schema/ has a parent"))
            .expect("create schema/");
        std::fs::write(&path, &generated).expect("write schema/plan.schema.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schema/plan.schema.json is stale; regenerate it with \
         SIPFORM_WRITE_SCHEMA=1 cargo test --test plan_render committed_plan_schema"
    );
}
