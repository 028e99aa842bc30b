//! `sipform call`: the exact request a tool makes, offline, and with `--send` the same request
//! on the wire (a local stub platform records it) and what the server derives from the answer.

mod common;
mod contract_stub;

use serde_json::{json, Value};

use common::{expect_code, project_copy, sipform, stderr, stdout};

const NO_SERVER: &str = "http://127.0.0.1:9";
const SUSHI: &str = "c4e8b7a3-2f61-4d0e-8c95-6b3a1f0e9d23";
const BISTROT: &str = "7a1d9e42-5c3b-4f18-b6a0-2e9c4d8f7b12";
const PIZZERIA: &str = "3f6c2a1e-8b4d-4c59-9a2e-1d7f5b6c8e01";

#[test]
fn the_phone_is_encoded_in_the_query() {
    let dir = project_copy();
    let o = sipform(
        dir.path(),
        NO_SERVER,
        &[
            "call",
            "check_order_status",
            "--restaurant",
            SUSHI,
            "--param",
            "customer_phone=+33612345678",
        ],
    );
    expect_code(&o, 0);
    let out = stdout(&o);
    assert_eq!(
        out.lines().next(),
        Some(format!("GET http://localhost:3000/api/orders/status?restaurantId={SUSHI}&phone=%2B33612345678").as_str()),
        "{out}"
    );
    assert!(out.contains("Accept: application/json"), "{out}");
    assert!(!out.contains("Content-Type"), "a GET has no body: {out}");
}

#[test]
fn json_shows_the_typed_body() {
    let dir = project_copy();
    let o = sipform(
        dir.path(),
        NO_SERVER,
        &[
            "call",
            "confirm_reservation",
            "--restaurant",
            BISTROT,
            "--param",
            "customer_name=Martin",
            "--param",
            "customer_phone=+33612345678",
            "--param",
            "party_size=4",
            "--param",
            "service_id=svc-1",
            "--param",
            "offer_id=menu",
            "--ctx",
            r#"last_availability_check={"estimatedTimeISO":"2026-12-08T19:00:00.000Z"}"#,
            "--ctx",
            "call_id=call-9",
            "--json",
        ],
    );
    expect_code(&o, 0);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let body = &v["request"]["body"];
    assert_eq!(v["request"]["method"], "POST");
    assert_eq!(
        v["request"]["url"],
        "http://localhost:3000/api/reservations"
    );
    assert_eq!(body["partySize"], json!(4));
    assert_eq!(body["serviceId"], "svc-1");
    assert_eq!(body["offerId"], "menu");
    assert_eq!(body["reservationTime"], "2026-12-08T19:00:00.000Z");
    assert_eq!(body["callId"], "call-9");
    assert_eq!(body["restaurantId"], BISTROT);
    assert_eq!(
        body["notes"],
        Value::Null,
        "a missing argument is sent as null"
    );
    assert!(v.get("answer").is_none());
}

#[test]
fn bad_arguments_are_refused() {
    let dir = project_copy();
    let o = sipform(
        dir.path(),
        NO_SERVER,
        &[
            "call",
            "check_order_status",
            "--restaurant",
            SUSHI,
            "--param",
            "phone=+33612345678",
        ],
    );
    expect_code(&o, 1);
    assert!(
        stderr(&o).contains(
            "tool `check_order_status` has no parameter `phone` (its parameters: customer_phone)"
        ),
        "{}",
        stderr(&o)
    );
    let o = sipform(
        dir.path(),
        NO_SERVER,
        &[
            "call",
            "cancel_order",
            "--restaurant",
            SUSHI,
            "--param",
            "order_number=forty",
        ],
    );
    expect_code(&o, 1);
    assert!(
        stderr(&o).contains("parameter `order_number` is integer"),
        "{}",
        stderr(&o)
    );
    let o = sipform(
        dir.path(),
        NO_SERVER,
        &["call", "nope", "--restaurant", SUSHI],
    );
    expect_code(&o, 1);
    assert!(
        stderr(&o).contains("no tool named `nope`"),
        "{}",
        stderr(&o)
    );
    let o = sipform(
        dir.path(),
        NO_SERVER,
        &["call", "end_call", "--restaurant", "missing"],
    );
    expect_code(&o, 1);
    assert!(
        stderr(&o).contains("no restaurant with id `missing`"),
        "{}",
        stderr(&o)
    );
    let o = sipform(
        dir.path(),
        NO_SERVER,
        &["call", "end_call", "--restaurant", SUSHI],
    );
    expect_code(&o, 1);
    assert!(stderr(&o).contains("built in"), "{}", stderr(&o));
}

#[test]
fn send_puts_exactly_the_printed_request_on_the_wire() {
    let stub = contract_stub::start();
    let dir = project_copy();
    let args = [
        "call",
        "check_availability",
        "--restaurant",
        PIZZERIA,
        "--param",
        "mode=delivery",
        "--param",
        "customer_address=12 rue de la Paix",
        "--param",
        "customer_city=Paris",
        "--param",
        "customer_postal_code=75002",
        "--ctx",
        "customer_delivery_lat=48.869",
        "--base-url",
        &stub.url,
        "--json",
    ];
    let printed = sipform(dir.path(), NO_SERVER, &args);
    expect_code(&printed, 0);
    let printed: Value = serde_json::from_str(&stdout(&printed)).unwrap();
    assert!(stub.requests().is_empty(), "offline by default");

    let mut send_args = args.to_vec();
    send_args.push("--send");
    let o = sipform(dir.path(), NO_SERVER, &send_args);
    expect_code(&o, 0);
    let sent: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(sent["request"], printed["request"]);
    let got = stub.requests();
    assert_eq!(got.len(), 1, "{got:?}");
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        format!("{}{}", stub.url, r.path_and_query),
        printed["request"]["url"].as_str().unwrap()
    );
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(r.body.as_ref(), Some(&printed["request"]["body"]));
    assert_eq!(r.body.as_ref().unwrap()["customerLat"], json!(48.869));
    assert_eq!(r.body.as_ref().unwrap()["customerLng"], Value::Null);

    // The answer and what the server derives from it.
    assert_eq!(sent["answer"]["status"], 200);
    let d = &sent["derived"];
    assert_eq!(d["contextUpdates"]["customer_delivery_lat"], json!(48.869));
    assert_eq!(
        d["contextUpdates"]["last_availability_check"]["googleApiCalls"],
        json!(1)
    );
    assert_eq!(
        d["extraCost"],
        json!(1),
        "googleApiCalls, not the absent apiCosts"
    );
}

#[test]
fn send_encodes_the_phone_on_the_wire_and_shows_the_mapping() {
    let stub = contract_stub::start();
    let dir = project_copy();
    let o = sipform(
        dir.path(),
        NO_SERVER,
        &[
            "call",
            "lookup_reservation",
            "--restaurant",
            BISTROT,
            "--param",
            "customer_phone=+33 6 12",
            "--base-url",
            &stub.url,
            "--send",
        ],
    );
    expect_code(&o, 0);
    let got = stub.requests();
    assert_eq!(got[0].method, "GET");
    assert_eq!(
        got[0].path_and_query,
        format!("/api/reservations/lookup?restaurantId={BISTROT}&phone=%2B33%206%2012")
    );
    assert_eq!(got[0].body, None);
    let out = stdout(&o);
    assert!(out.contains("=> 200"), "{out}");
    assert!(out.contains("\"found\": false"), "{out}");

    // responseMapping: the model sees the fixed answer.
    let o = sipform(
        dir.path(),
        NO_SERVER,
        &[
            "call",
            "leave_message",
            "--restaurant",
            SUSHI,
            "--param",
            "content=Rappel",
            "--param",
            "category=other",
            "--param",
            "is_urgent=true",
            "--base-url",
            &stub.url,
            "--send",
        ],
    );
    expect_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("the model sees:\n{\n  \"message\": \"Message transmis au restaurant\""),
        "{out}"
    );
    assert_eq!(
        stub.requests()[1].body.as_ref().unwrap()["isUrgent"],
        json!(true)
    );
}
