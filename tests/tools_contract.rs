//! The tool files must equal the platform's facts, field by field (descriptions aside): one
//! file per tool the platform defines, none more. The facts are vendored in
//! `tests/fixtures/platform/` (see its `SOURCE.md`).

mod common;

use std::path::Path;

use serde_json::{Map, Value};

/// The platform's tool definitions.
const FACTS: &str = "platform/platform-tools-facts.json";

/// Where the tools intentionally differ from the platform's own definitions: the fixes the
/// platform's handlers at v2 call for (docs/platform.openapi.yaml, `validate`'s contract
/// check). Applied to the facts before comparing, so any other difference still fails.
fn apply_intended_fixes(fact: &mut Map<String, Value>) {
    match fact["name"].as_str() {
        // The handler returns googleApiCalls; it has no apiCosts.
        Some("check_availability") => {
            fact.insert(
                "extraCostResponseField".into(),
                Value::String("={{$res.googleApiCalls}}".into()),
            );
        }
        // The handler reads serviceId/offerId, which the model is asked for.
        Some("confirm_reservation") => {
            let body = fact["http"]["bodyTemplate"].as_object_mut().unwrap();
            body.insert(
                "serviceId".into(),
                Value::String("={{$ai.service_id}}".into()),
            );
            body.insert("offerId".into(), Value::String("={{$ai.offer_id}}".into()));
        }
        _ => {}
    }
}

/// Parameter descriptions are ours to write (the facts carry none): dropped at every depth.
fn strip_descriptions(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("description");
            m.values_mut().for_each(strip_descriptions);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_descriptions),
        _ => {}
    }
}

/// Absent means null (or false for the flags); `isEnabled` defaults to true.
fn normalise(mut m: Map<String, Value>) -> Map<String, Value> {
    m.remove("description");
    if let Some(p) = m.get_mut("parameters") {
        strip_descriptions(p);
    }
    for k in [
        "http",
        "contextUpdates",
        "condition",
        "extraCostResponseField",
    ] {
        m.entry(k).or_insert(Value::Null);
    }
    for k in [
        "triggersHangup",
        "triggersTransfer",
        "mutesClientAudio",
        "skipResponseCreate",
    ] {
        m.entry(k).or_insert(Value::Bool(false));
    }
    m.entry("isEnabled").or_insert(Value::Bool(true));
    m
}

#[test]
fn tools_match_the_platform_facts() {
    let facts: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(common::fixture(FACTS)).expect("facts file"))
            .unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools");
    let tools = sipform::front::load::load_tools(&dir).unwrap_or_else(|d| panic!("{d}"));
    // One tool file per platform tool, each loaded: with every fact matched by name below,
    // the files and the facts are the same set.
    assert_eq!(
        tools.len(),
        common::bundled_tool_count(),
        "every tool file loads"
    );
    assert_eq!(tools.len(), facts.len(), "one tool file per platform tool");
    for fact in facts {
        let mut fact = normalise(fact.as_object().unwrap().clone());
        apply_intended_fixes(&mut fact);
        let name = fact["name"].as_str().unwrap();
        let tool = tools
            .iter()
            .find(|t| t.spec.name == name)
            .unwrap_or_else(|| panic!("no tools/{name}.yaml"));
        assert!(
            tool.spec.description.chars().count() > 40,
            "{name}: write a real description"
        );
        let ours = match serde_json::to_value(&tool.spec).unwrap() {
            Value::Object(m) => normalise(m),
            _ => unreachable!(),
        };
        let keys: std::collections::BTreeSet<&String> = fact.keys().chain(ours.keys()).collect();
        for k in keys {
            assert_eq!(
                ours.get(k).unwrap_or(&Value::Null),
                fact.get(k).unwrap_or(&Value::Null),
                "tool {name}, field {k}"
            );
        }
    }
}

/// Every parameter, nested ones too, tells the voice model what to put in it.
#[test]
fn every_parameter_is_described() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let env = sipform::front::render::RenderEnv {
        app_url: "http://localhost:3000".into(),
    };
    let report = sipform::front::validate::check(root, &env).unwrap_or_else(|d| panic!("{d}"));
    assert!(
        report.warnings.is_empty(),
        "undescribed parameters: {}",
        report.warnings
    );
}

#[test]
fn every_tool_file_names_its_schema() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools");
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text.lines().next(),
            Some("# yaml-language-server: $schema=../schema/tool.schema.json"),
            "{}",
            p.display()
        );
    }
}
