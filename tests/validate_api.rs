//! The library API plan/apply calls: `desired`, `desired_with`, `load_project_file`.

mod common;

use std::path::Path;

use sipform::front::diagnostics::{Origin, Sourced};
use sipform::front::render::RenderEnv;
use sipform::front::validate;
use sipform::model::spec::Restaurant;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn env() -> RenderEnv {
    RenderEnv {
        app_url: "https://app.alloresto.example".into(),
    }
}

/// A platform restaurant id (a UUID) ending in `tag`.
fn uuid(tag: &str) -> String {
    format!("00000000-0000-4000-8000-{tag:0>12}")
}

fn row(tag: &str, sip: bool, chat: bool) -> Sourced<Restaurant> {
    let id = uuid(tag);
    let r: Restaurant = serde_json::from_value(serde_json::json!({
        "id": id, "name": format!("Resto {id}"), "sip_enabled": sip, "chat_enabled": chat,
        "reservation_enabled": true
    }))
    .unwrap();
    Sourced {
        value: r,
        origin: Origin::Row {
            table: "restaurants".into(),
            key: id,
        },
    }
}

#[test]
fn project_file_loads() {
    let p = sipform::front::load::load_project_file(root()).unwrap();
    assert_eq!(p.account.name, "AlloResto");
}

#[test]
fn desired_holds_every_restaurant_with_sorted_tools() {
    let v = validate::desired(root(), &env()).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(v.desired.account.name, "AlloResto");
    assert_eq!(v.desired.restaurants.len(), 3);
    for r in &v.desired.restaurants {
        assert_eq!(r.tools.len(), common::bundled_tool_count());
        assert!(r
            .tools
            .windows(2)
            .all(|w| w[0].sort_order < w[1].sort_order));
        assert_eq!(r.agent.api_base_url, "https://app.alloresto.example");
        assert_eq!(r.agent.config.restaurant_id, r.id);
    }
}

#[test]
fn desired_with_rows_keeps_order_and_create_flag() {
    let rows = vec![
        row("b", true, false),
        row("a", false, false),
        row("c", false, true),
    ];
    let v = validate::desired_with(root(), &env(), rows).unwrap_or_else(|d| panic!("{d}"));
    let ids: Vec<_> = v
        .desired
        .restaurants
        .iter()
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(ids, [uuid("b"), uuid("a"), uuid("c")]);
    let create: Vec<_> = v
        .desired
        .restaurants
        .iter()
        .map(|r| r.create_if_missing)
        .collect();
    assert_eq!(create, [true, false, true]);
    assert!(!v.desired.restaurants[1].agent.is_active);
}

#[test]
fn duplicate_row_ids_name_the_row() {
    let rows = vec![row("a", true, false), row("a", true, false)];
    let d = validate::desired_with(root(), &env(), rows).unwrap_err();
    let s = d.to_string();
    assert!(
        s.contains(&format!(
            "table restaurants, row id={}: id: duplicate restaurant id",
            uuid("a")
        )),
        "{s}"
    );
}
