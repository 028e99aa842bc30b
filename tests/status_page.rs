//! The controller's status page in a real headless browser (Debian's `chromium`): after its
//! script refreshed it from `/v1/status`, the rendered DOM shows the counts and a failing
//! restaurant with its reason, and a restaurant named like an HTML tag as text, no element.
//! Without chromium the browser part prints SKIPPED, and fails when `SIPFORM_REQUIRE_BROWSER`
//! is set (`.ci/run` sets it once chromium is installed).

mod common;
use common::controller::{eventually, start};
use common::*;

use serde_json::Value;
use sipform_emulator::{ErrorRule, Faults};

const HOSTILE: &str = "<img src=x onerror=alert(1)>";
const FAILING: &str = "Trattoria Fallita";

/// A restaurant file with SIP on.
fn add_restaurant(dir: &std::path::Path, file: &str, id: &str, name: &str) {
    let yaml = format!(
        "id: {id}\nname: {}\nphone: \"+33142000099\"\ncontact_email: x@example.com\nsip_enabled: true\n",
        serde_json::Value::String(name.into())
    );
    std::fs::write(dir.join("restaurants").join(file), yaml).expect("write restaurant");
}

/// Every agent create answered 422: a restaurant not provisioned yet fails, fatally.
fn agent_creates_refused() -> Faults {
    Faults {
        errors: vec![ErrorRule {
            method: "POST".into(),
            route: "/api/agents".into(),
            rate: 1.0,
            statuses: vec![422],
        }],
        ..Faults::default()
    }
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|b| {
        std::process::Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// The DOM after the page's script ran (virtual time lets its first refresh finish).
fn dump_dom(browser: &str, url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_counts_failures_and_escaped_names_in_a_browser() {
    let emu = emulator().await;
    let dir = project_copy();
    let (d, url) = (dir.path(), emu.base_url());
    let synced = restaurant_files(d).len();
    apply_ok(d, &url).await;
    let failing_id = rid(901);
    add_restaurant(d, "fallita.yaml", &failing_id, FAILING);
    add_restaurant(d, "hostile.yaml", &rid(902), HOSTILE);
    emu.set_faults(agent_creates_refused());

    let ctl = start(d, &url, &[], &[]);
    let status_url = ctl.url("/v1/status");
    let report = || async {
        let (code, body) = ctl.get("/v1/status").await?;
        (code == 200).then(|| serde_json::from_str::<Value>(&body).ok())?
    };
    eventually("two restaurants parked, the others synced", 60, || async {
        report()
            .await
            .is_some_and(|r| r["counts"]["parked"] == 2 && r["counts"]["synced"] == synced)
    })
    .await;
    let r = report().await.expect("status");
    let failing = r["restaurants"]
        .as_array()
        .and_then(|rows| rows.iter().find(|x| x["name"] == FAILING))
        .cloned()
        .expect("the failing restaurant is listed by name");
    assert_eq!(failing["status"], "parked", "{r}");
    let reason = failing["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("422"), "{reason}");
    assert!(failing["when"].is_string(), "{r}");
    assert_eq!(r["feed"]["connected"], true, "{r}");

    // One restaurant; an unknown one is 404.
    let one = reqwest::get(format!("{status_url}?restaurant={failing_id}"))
        .await
        .expect("GET");
    let one: Value = one.json().await.expect("JSON");
    assert_eq!(
        one["restaurants"].as_array().map(Vec::len),
        Some(1),
        "{one}"
    );
    let none = reqwest::get(format!("{status_url}?restaurant=nope"))
        .await
        .expect("GET");
    assert_eq!(none.status().as_u16(), 404);

    // `sipform status --controller` reads the same report, as a table and as JSON.
    let base = ctl.url("");
    let table = run(d, &url, &["status", "--controller", &base]).await;
    expect_code(&table, 0);
    let text = stdout(&table);
    assert!(
        text.contains(&format!("{} restaurants:", synced + 2)),
        "{text}"
    );
    assert!(
        text.contains("Queue: ") && text.contains("Feed: connected"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains(FAILING))
        .unwrap_or_default();
    assert!(line.contains("parked") && line.contains("422"), "{text}");
    let one = run(
        d,
        &url,
        &[
            "status",
            "--controller",
            &base,
            "--json",
            "--restaurant",
            &failing_id,
        ],
    )
    .await;
    expect_code(&one, 0);
    let one: Value = serde_json::from_str(&stdout(&one)).expect("JSON");
    assert_eq!(one["restaurants"][0]["name"], FAILING, "{one}");

    // The page: a strict policy, the hostile name escaped by the server already.
    let page = reqwest::get(ctl.url("/")).await.expect("GET /");
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let html = page.text().await.expect("page");
    assert!(!html.contains("<img"), "{html}");

    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("SIPFORM_REQUIRE_BROWSER").is_none(),
            "SIPFORM_REQUIRE_BROWSER is set but chromium is not installed"
        );
        eprintln!("SKIPPED: the status page's browser check (chromium is not installed)");
        return;
    };
    let page_url = ctl.url("/");
    let dom = tokio::task::spawn_blocking(move || dump_dom(browser, &page_url))
        .await
        .expect("join");
    assert!(
        dom.contains("live, refreshed"),
        "the page's script did not run:\n{dom}"
    );
    assert!(
        dom.contains(&format!("<td data-status=\"synced\">{synced}</td>")),
        "{dom}"
    );
    assert!(dom.contains("<td data-status=\"parked\">2</td>"), "{dom}");
    assert!(dom.contains(FAILING), "{dom}");
    assert!(dom.contains("422"), "the reason is shown:\n{dom}");
    assert!(
        dom.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "the hostile name is shown as text:\n{dom}"
    );
    assert!(
        !dom.contains("<img"),
        "an element was made from a name:\n{dom}"
    );
}
