//! A plan a reviewer understands at a glance (issue 12): a change made identically in many
//! restaurants is shown once, with its count, in every format; the changed words are marked;
//! the pull-request comment fits GitHub's limit whatever the number of restaurants. Plans are
//! built here directly, without a server.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sipform::model::ids::{ObjectId, RestaurantId};
use sipform::output::{
    human, json as plan_json, markdown, markdown_comment, CommentContext, COMMENT_MARKER,
    MARKDOWN_MAX_CHARS,
};
use sipform::plan::{
    groups, Action, FieldChange, Plan, Resource, RestaurantPlan, Summary, PLAN_FORMAT_VERSION,
};
use uuid::Uuid;

const OLD_END_CALL: &str = "Use this tool when the conversation is over: the caller has what \
    they needed, said goodbye, or asked to stop. Thank the caller by name if you know it, wish \
    them a good day, remind them of the opening hours only if they asked about them. Raccroche.";
const NEW_END_CALL: &str = "Use this tool when the conversation is over: the caller has what \
    they needed, said goodbye, or asked to stop. Thank the caller by name if you know it, wish \
    them a good day, remind them of the opening hours only if they asked about them. Raccroche \
    poliment.";

fn id(s: &str) -> ObjectId {
    ObjectId::parse(s).expect("fixture ids are valid")
}

fn restaurant_id(i: usize) -> RestaurantId {
    RestaurantId::new(
        Uuid::from_u128(0x5e1f_0000_0000_4000_8000_0000_0000_0000 + i as u128).to_string(),
    )
}

fn edit(
    resource: Resource,
    name: &str,
    remote: &str,
    path: &str,
    before: Value,
    after: Value,
) -> Action {
    Action::Update {
        resource,
        name: name.into(),
        id: id(remote),
        changes: Box::new([FieldChange {
            path: path.into(),
            before: Some(Box::new(before)),
            after: Some(Box::new(after.clone())),
            sensitive: false,
        }]),
        body: json!({ "name": name, path: after }).into(),
    }
}

fn end_call(i: usize, after: &str) -> Action {
    edit(
        Resource::TOOL,
        "end_call",
        &format!("t-{i}-12"),
        "description",
        json!(OLD_END_CALL),
        json!(after),
    )
}

fn restaurant(i: usize, mut actions: Vec<Action>) -> RestaurantPlan {
    let name = format!("Restaurant {i:04}");
    let mut all = vec![
        Action::NoOp {
            resource: Resource::FINAL_CUSTOMER,
            name: name.clone(),
            id: id(&format!("fc-{i}")),
        },
        Action::NoOp {
            resource: Resource::AGENT,
            name: name.clone(),
            id: id(&format!("a-{i}")),
        },
    ];
    all.append(&mut actions);
    RestaurantPlan {
        restaurant_id: restaurant_id(i),
        name,
        actions: all,
        notes: Vec::new(),
    }
}

fn plan_of(restaurants: Vec<RestaurantPlan>) -> Plan {
    let created_at: DateTime<Utc> = "2026-01-02T03:04:05Z".parse().expect("fixed timestamp");
    let mut plan = Plan {
        format_version: PLAN_FORMAT_VERSION,
        sipform_version: "0.1.0".into(),
        created_at,
        server_url: "http://localhost:4000".into(),
        lineage: Uuid::from_u128(1),
        state_serial: 19,
        remote_fingerprint: "sha256:9f2c0a".into(),
        duplicates: Vec::new(),
        orphans: Vec::new(),
        targets: Vec::new(),
        allow_destroy: false,
        account: Action::NoOp {
            resource: Resource::ACCOUNT,
            name: "Acme Restaurants".into(),
            id: id("acc-1"),
        },
        restaurants,
        summary: Summary::default(),
        revision: None,
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

/// One sentence changed in tools/end_call.yaml, N restaurants already applied.
fn one_tool_edit(n: usize) -> Plan {
    plan_of(
        (0..n)
            .map(|i| restaurant(i, vec![end_call(i, NEW_END_CALL)]))
            .collect(),
    )
}

/// The shared edit, plus what only some restaurants have: a voice changed in one, a local
/// override of the same tool in another.
fn mixed() -> Plan {
    plan_of(
        (0..300)
            .map(|i| match i {
                7 => restaurant(
                    i,
                    vec![
                        edit(
                            Resource::AGENT,
                            "Restaurant 0007",
                            "a-7",
                            "aiVoice",
                            json!("sage"),
                            json!("alloy"),
                        ),
                        end_call(i, NEW_END_CALL),
                    ],
                ),
                12 => restaurant(i, vec![end_call(i, "Hang up.")]),
                _ => restaurant(i, vec![end_call(i, NEW_END_CALL)]),
            })
            .collect(),
    )
}

#[test]
fn one_tool_edit_across_300_restaurants_is_shown_once() {
    let plan = one_tool_edit(300);
    let text = human(&plan, false);
    assert!(text.len() < 3 * 1024, "{} bytes:\n{text}", text.len());
    assert!(text.contains("~ tool end_call on 300 agents\n"), "{text}");
    assert!(
        text.contains("[-Raccroche.-]{+Raccroche poliment.+}"),
        "{text}"
    );
    assert!(text.contains(" and 295 more"), "{text}");
    insta::assert_snapshot!("one_tool_edit_human", text);

    let md = markdown_comment(
        &plan,
        &CommentContext {
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        },
    );
    assert!(md.len() < 6 * 1024, "{} bytes", md.len());
    assert!(md.starts_with(COMMENT_MARKER));
    assert_eq!(
        md.lines().nth(1),
        Some("### Plan: 0 to add, 300 to change, 0 to delete.")
    );
    let head: String = md.chars().take(1000).collect();
    assert!(
        head.contains("- ~ tool `end_call`: description changed, 300 agents"),
        "{head}"
    );
    assert!(head.contains("Raccroche poliment."), "{head}");
    assert!(md
        .trim_end()
        .ends_with("Made from commit 0123456789abcdef0123456789abcdef01234567."));
    insta::assert_snapshot!("one_tool_edit_markdown", md);

    let doc: Value = serde_json::from_str(&plan_json(&plan)).expect("the plan is JSON");
    let actions: usize = doc["restaurants"]
        .as_array()
        .expect("restaurants")
        .iter()
        .map(|r| r["actions"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(actions, 300 * 3, "every action kept for apply");
    let groups = &doc["groups"];
    assert_eq!(groups.as_array().map(Vec::len), Some(1));
    assert_eq!(groups[0]["count"], 300);
    assert_eq!(
        groups[0]["restaurantIds"].as_array().map(Vec::len),
        Some(300)
    );
    let mut shown = groups[0].clone();
    if let Some(ids) = shown["restaurantIds"].as_array_mut() {
        ids.truncate(2);
    }
    insta::assert_snapshot!(
        "one_tool_edit_json_group",
        serde_json::to_string_pretty(&shown).expect("JSON")
    );
}

#[test]
fn grouped_and_restaurant_specific_changes_mix() {
    let plan = mixed();
    let g = groups(&plan);
    assert_eq!(g.groups.len(), 1);
    assert_eq!(g.groups[0].count, 299, "restaurant 12's text differs");

    let text = human(&plan, false);
    assert!(text.contains("~ tool end_call on 299 agents\n"), "{text}");
    assert!(text.contains("restaurant Restaurant 0007 ("), "{text}");
    assert!(text.contains("~ aiVoice: \"sage\" → \"alloy\""), "{text}");
    assert!(text.contains("restaurant Restaurant 0012 ("), "{text}");
    // Restaurant 7's end_call is in the group, not repeated under it.
    assert_eq!(text.matches("tool end_call").count(), 2, "{text}");
    insta::assert_snapshot!("mixed_human", text);

    let md = markdown(&plan);
    assert!(md.contains("- ~ tool `end_call`: description changed, 299 agents\n"));
    assert!(md.contains("- ~ agent `Restaurant 0007` ("));
    assert!(md.contains("- ~ tool `end_call` of Restaurant 0012 ("));
    insta::assert_snapshot!("mixed_markdown", md);

    let doc: Value = serde_json::from_str(&plan_json(&plan)).expect("the plan is JSON");
    assert_eq!(doc["groups"][0]["count"], 299);
    // A saved plan with groups reads back (the groups are derived, not trusted).
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("plan.json");
    sipform::plan::file::write_plan(&path, &plan).expect("write");
    let saved = std::fs::read_to_string(&path).expect("read");
    assert!(saved.contains("\"groups\""));
    let back = sipform::plan::file::read_plan(&path).expect("a plan with groups reads back");
    assert_eq!(back, plan);
}

#[test]
fn markdown_of_5000_restaurants_fits_and_lists_every_distinct_change() {
    let mut restaurants: Vec<RestaurantPlan> = (0..5000)
        .map(|i| {
            restaurant(
                i,
                vec![
                    end_call(i, NEW_END_CALL),
                    edit(
                        Resource::TOOL,
                        "confirm_order",
                        &format!("t-{i}-5"),
                        "sortOrder",
                        json!(4),
                        json!(5),
                    ),
                ],
            )
        })
        .collect();
    restaurants[42] = restaurant(
        42,
        vec![edit(
            Resource::AGENT,
            "Restaurant 0042",
            "a-42",
            "aiVoice",
            json!("sage"),
            json!("alloy"),
        )],
    );
    let plan = plan_of(restaurants);
    let md = markdown(&plan);
    assert!(
        md.chars().count() <= MARKDOWN_MAX_CHARS,
        "{} chars",
        md.chars().count()
    );
    assert!(md.contains("- ~ tool `end_call`: description changed, 4,999 agents\n"));
    assert!(md.contains("- ~ tool `confirm_order`: sortOrder changed, 4,999 agents\n"));
    assert!(md.contains("- ~ agent `Restaurant 0042` ("));
    assert!(md.contains("more (`sipform plan --json` lists them all)"));
    assert_eq!(
        md.matches("<details>").count(),
        md.matches("</details>").count()
    );
    let text = human(&plan, false);
    assert!(text.len() < 3 * 1024, "{} bytes", text.len());
}

/// The plan's size follows the number of distinct changes, not of restaurants.
#[test]
fn human_size_does_not_grow_with_restaurants() {
    let small = human(&one_tool_edit(10), false).len();
    let large = human(&one_tool_edit(3000), false).len();
    assert!(large <= small + 16, "{small} → {large}");
}

/// Thousands of distinct shared changes (each tool text differs by pair of restaurants): the
/// comment still fits, and says how many shared changes it could not list.
#[test]
fn markdown_fits_even_with_thousands_of_shared_changes() {
    let plan = plan_of(
        (0..6000)
            .map(|i| restaurant(i, vec![end_call(i, &format!("{NEW_END_CALL} #{}", i / 2))]))
            .collect(),
    );
    assert_eq!(groups(&plan).groups.len(), 3000);
    let md = markdown(&plan);
    assert!(
        md.chars().count() <= MARKDOWN_MAX_CHARS,
        "{} chars",
        md.chars().count()
    );
    assert!(md.contains("more shared changes (run `sipform plan` to see them all)"));
    assert_eq!(
        md.matches("<details>").count(),
        md.matches("</details>").count()
    );
}
