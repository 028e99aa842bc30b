//! `sipform render`: YAML by default, JSON with --json, one restaurant with --restaurant.

use assert_cmd::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SUSHI: &str = "c4e8b7a3-2f61-4d0e-8c95-6b3a1f0e9d23";

fn sipform() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sipform"));
    c.args(["-C", ROOT]).env_remove("NEXT_PUBLIC_APP_URL");
    c
}

#[test]
fn json_for_one_restaurant() {
    let out = sipform()
        .args(["render", "--json", "--restaurant", SUSHI])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = &v[0]["agent"];
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(a["aiVoice"], "shimmer");
    assert_eq!(a["config"]["transferEnabled"], true);
    assert_eq!(a["basePrompt"], "={{data.systemPrompt}}");
    assert_eq!(a["apiBaseUrl"], "http://localhost:3000");
    assert_eq!(v[0]["finalCustomer"]["currency"], "EUR");
}

#[test]
fn app_url_comes_from_the_environment() {
    let out = sipform()
        .env("NEXT_PUBLIC_APP_URL", "https://alloresto.example")
        .args(["render", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[0]["agent"]["apiBaseUrl"], "https://alloresto.example");
    assert_eq!(
        v[0]["agent"]["externalSessionUrl"],
        "=https://alloresto.example/api/ai?restaurantId={{config.restaurantId}}&callerPhone={{callerPhone}}"
    );
}

#[test]
fn yaml_by_default_parses_back() {
    let out = sipform().arg("render").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("\n---\n").count(), 2);
    let first = text.split("\n---\n").next().unwrap();
    let (v, _) = sipform::front::yaml::parse(first).unwrap();
    assert_eq!(v["agent"]["onCallEndWebhook"], "={{BASE_URL}}/api/calls");
}

#[test]
fn unknown_restaurant_is_an_error() {
    sipform()
        .args(["render", "--restaurant", "nope"])
        .assert()
        .code(1);
}
