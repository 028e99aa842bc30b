//! What a hostile or broken server does to sipform (issue 14, the network edge and secrets):
//! each test puts the proxy of `tests/common/hostile.rs` in front of the emulator and rewrites answers.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use common::hostile::{Answer, Hostile, Reply};
use common::*;
use serde_json::{json, Value};

/// Runs a prepared command off the async runtime (the proxy lives on it).
async fn run_cmd(mut c: Command) -> Output {
    tokio::task::spawn_blocking(move || c.output().expect("run sipform"))
        .await
        .expect("join")
}

/// Adds `key: value` under `server:` in the copied sipform.yaml.
fn set_server(dir: &Path, key: &str, value: &str) {
    let p = dir.join("sipform.yaml");
    let text = std::fs::read_to_string(&p).expect("sipform.yaml");
    let text = text.replace("server:\n", &format!("server:\n  {key}: {value}\n"));
    std::fs::write(&p, text).expect("write sipform.yaml");
}

/// An emulator with the bundled project applied to it directly.
async fn applied() -> (sipform_emulator::EmulatorHandle, tempfile::TempDir) {
    let emu = emulator().await;
    let dir = project_copy();
    apply_ok(dir.path(), &emu.base_url()).await;
    (emu, dir)
}

/// The emulator's request log, as `GET /__emulator/requests` gives it.
async fn emulator_log(emu: &sipform_emulator::EmulatorHandle) -> Vec<Value> {
    let v: Value = reqwest::get(format!("{}/__emulator/requests", emu.base_url()))
        .await
        .expect("request log")
        .json()
        .await
        .expect("JSON");
    v["log"].as_array().cloned().unwrap_or_default()
}

// --- #1 a server id is never a path segment it can escape ---------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dotdot_tool_id_is_refused_naming_it_and_nothing_is_written() {
    let (emu, dir) = applied().await;
    let mark = writes(&emu);
    let proxy = Hostile::proxy(&emu.base_url(), |s| {
        if s.is("GET") && s.route().ends_with("/tools") {
            Reply::edit(|v| {
                if let Some(first) = v.as_array_mut().and_then(|a| a.first_mut()) {
                    first["id"] = json!("..");
                }
            })
        } else {
            Reply::Pass
        }
    })
    .await;

    for args in [
        &["plan"][..],
        &["apply", "--auto-approve"][..],
        &["apply", "--auto-approve", "--allow-destroy"][..],
    ] {
        let out = run(dir.path(), &proxy.base_url(), args).await;
        expect_code(&out, 1);
        let err = stderr(&out);
        assert!(err.contains("GET /api/agents/:id/tools"), "{args:?}: {err}");
        assert!(err.contains("entry 0 (\""), "names the entry: {err}");
        assert!(err.contains("'.'"), "says what is wrong with the id: {err}");
    }
    assert!(writes_since(&emu, &mark).is_empty(), "{:?}", writes(&emu));
    let log = emulator_log(&emu).await;
    let bad: Vec<&Value> = log
        .iter()
        .filter(|e| e["method"] == "DELETE" || e["method"] == "PUT")
        .collect();
    assert!(bad.is_empty(), "the emulator saw writes: {bad:?}");
    let state = std::fs::read_to_string(dir.path().join("sipform.state.json")).expect("state");
    assert!(!state.contains("\"..\""), "the hostile id reached state");
}

/// URL parsers read `%2E%2E` as `..` (the WHATWG rules reqwest follows), so no encoding keeps a
/// dot-only segment in place: such a route is never sent. Other segments arrive encoded as is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dot_segment_is_never_sent_and_other_segments_arrive_encoded() {
    use sipform::config::{Overrides, Settings};
    use sipform::remote::{Client, Route};

    let recorder = Hostile::recorder().await;
    let project: sipform::model::spec::Project = serde_json::from_value(json!({
        "account": {"name": "A", "email": "a@b.c"},
        "server": {"url": recorder.base_url()}
    }))
    .expect("project");
    let settings = Settings::resolve(Path::new("."), project, &|_| None, &Overrides::default());
    let client = Client::new(&settings).expect("client");
    for dots in ["..", "."] {
        let e = client
            .delete(&Route::new("/api/agents/:id/tools/:toolId", &["a", dots]))
            .await
            .expect_err("a dot-only segment is refused");
        let msg = e.to_string();
        assert!(
            msg.starts_with("DELETE /api/agents/:id/tools/:toolId: not sent"),
            "{msg}"
        );
    }
    assert!(recorder.seen().is_empty(), "{:?}", recorder.seen());

    client
        .delete(&Route::new(
            "/api/agents/:id/tools/:toolId",
            &["a", "../x.y"],
        ))
        .await
        .expect("the recorder answers 200");
    let seen = recorder.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "DELETE");
    assert_eq!(seen[0].path, "/api/agents/a/tools/%2E%2E%2Fx%2Ey");
}

// --- #5 a list entry without an id is the server's error, never "missing" -------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_entry_without_an_id_is_an_error_about_the_list_and_nothing_is_created() {
    let (emu, dir) = applied().await;
    let mark = writes(&emu);
    let proxy = Hostile::proxy(&emu.base_url(), |s| {
        if s.is("GET") && s.route().ends_with("/tools") {
            Reply::edit(|v| {
                if let Some(first) = v.as_array_mut().and_then(|a| a.first_mut()) {
                    first.as_object_mut().map(|o| o.remove("id"));
                }
            })
        } else {
            Reply::Pass
        }
    })
    .await;
    for args in [&["plan"][..], &["apply", "--auto-approve"][..]] {
        let out = run(dir.path(), &proxy.base_url(), args).await;
        expect_code(&out, 1);
        let err = stderr(&out);
        assert!(err.contains("GET /api/agents/:id/tools"), "{err}");
        assert!(err.contains("its id is missing"), "{err}");
    }

    // A list entry that is not an object at all.
    let proxy = Hostile::proxy(&emu.base_url(), |s| {
        if s.is("GET") && s.route() == "/api/agents" {
            Reply::edit(|v| {
                if let Some(a) = v.as_array_mut() {
                    a.push(json!(42));
                }
            })
        } else {
            Reply::Pass
        }
    })
    .await;
    let out = run(dir.path(), &proxy.base_url(), &["apply", "--auto-approve"]).await;
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("GET /api/agents"), "{err}");
    assert!(err.contains("is not an object"), "{err}");

    assert!(
        writes_since(&emu, &mark).is_empty(),
        "no duplicate may be created: {:?}",
        writes_since(&emu, &mark)
    );
}

// --- #7 redirects are never followed ----------------------------------------------------------

const KEY: &str = "acc_live_must_stay_home";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_refused_and_the_key_never_leaves() {
    let elsewhere = Hostile::recorder().await;
    let location = format!(
        "http://thief:locpass@127.0.0.1:{}/api/accounts",
        elsewhere.port()
    );

    // A read redirected (302), by plan and by doctor.
    let emu = emulator().await;
    let dir = project_copy();
    let loc = location.clone();
    let proxy = Hostile::proxy(&emu.base_url(), move |s| {
        if s.route() == "/api/accounts" {
            Reply::Answer(Answer::redirect(302, &loc))
        } else {
            Reply::Pass
        }
    })
    .await;
    let mut c = command(dir.path(), &proxy.base_url(), &["plan"]);
    c.env("SIP_ACCOUNT_API_KEY", KEY);
    let out = run_cmd(c).await;
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains(
            "GET /api/accounts: the server answered 302; sipform does not follow redirects"
        ),
        "{err}"
    );
    let mut c = command(dir.path(), &proxy.base_url(), &["doctor"]);
    c.env("SIP_ACCOUNT_API_KEY", KEY);
    let doctor = run_cmd(c).await;
    expect_code(&doctor, 1);
    assert!(
        stdout(&doctor).contains("answered 302; sipform does not follow redirects"),
        "{}",
        stdout(&doctor)
    );

    // A create redirected with 307 (which would re-send the body and the key).
    let loc = location.clone();
    let proxy = Hostile::proxy(&emu.base_url(), move |s| {
        if s.is("POST") {
            Reply::Answer(Answer::redirect(307, &loc))
        } else {
            Reply::Pass
        }
    })
    .await;
    let mut c = command(dir.path(), &proxy.base_url(), &["apply", "--auto-approve"]);
    c.env("SIP_ACCOUNT_API_KEY", KEY);
    let apply = run_cmd(c).await;
    expect_code(&apply, 1);
    assert!(
        all_output(&apply).contains("POST /api/accounts: the server answered 307"),
        "{}",
        all_output(&apply)
    );

    for o in [&out, &doctor, &apply] {
        let text = all_output(o);
        assert!(
            !text.contains("locpass") && !text.contains("thief"),
            "{text}"
        );
        assert!(!text.contains(KEY), "{text}");
    }
    assert!(
        elsewhere.seen().is_empty(),
        "the redirect target was called: {:?}",
        elsewhere.seen()
    );
    assert_eq!(writes(&emu).values().sum::<u64>(), 0);
}

// --- #8 #9 passwords in URLs --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_server_url_is_never_shown_or_saved() {
    let emu = emulator().await;
    let dir = project_copy();
    let port = emu.addr().port();
    let url = format!("http://sipuser:s3cretpw@127.0.0.1:{port}");
    let secret_free = |what: &str, text: &str| {
        assert!(
            !text.contains("s3cretpw") && !text.contains("sipuser"),
            "{what} shows the URL's user-info:\n{text}"
        );
    };

    let human = run(dir.path(), &url, &["plan"]).await;
    expect_code(&human, 0);
    assert!(
        stdout(&human).contains(&format!("plan for http://***@127.0.0.1:{port}")),
        "{}",
        stdout(&human)
    );
    let json_plan = run(dir.path(), &url, &["plan", "--json"]).await;
    let markdown = run(dir.path(), &url, &["plan", "--markdown"]).await;
    let saved = dir.path().join("plan.json");
    let out = run(
        dir.path(),
        &url,
        &["plan", "--out", saved.to_str().expect("utf-8")],
    )
    .await;
    expect_code(&out, 0);
    let file = std::fs::read_to_string(&saved).expect("saved plan");
    secret_free("the saved plan", &file);
    for (what, o) in [
        ("plan", &human),
        ("plan --json", &json_plan),
        ("plan --markdown", &markdown),
        ("plan --out", &out),
    ] {
        expect_code(o, 0);
        secret_free(what, &all_output(o));
    }

    // The saved plan (redacted) is still the plan for this server.
    let apply = run(dir.path(), &url, &["apply", saved.to_str().expect("utf-8")]).await;
    expect_code(&apply, 0);
    secret_free("apply", &all_output(&apply));

    let doctor = run(dir.path(), &url, &["doctor"]).await;
    secret_free("doctor", &all_output(&doctor));

    // An error from the server.
    let proxy = Hostile::proxy(&emu.base_url(), |s| {
        if s.route() == "/api/accounts" {
            Reply::Answer(Answer::json(400, &json!({"error": "no"})))
        } else {
            Reply::Pass
        }
    })
    .await;
    let bad = format!("http://sipuser:s3cretpw@127.0.0.1:{}", proxy.port());
    let failed = run(dir.path(), &bad, &["plan"]).await;
    expect_code(&failed, 1);
    assert!(stderr(&failed).contains("HTTP 400"), "{}", stderr(&failed));
    secret_free("an error", &all_output(&failed));
    // And a server that cannot be reached at all.
    let closed = format!("http://sipuser:s3cretpw@127.0.0.1:{}", free_port());
    let failed = run(dir.path(), &closed, &["doctor"]).await;
    expect_code(&failed, 1);
    secret_free("doctor, unreachable", &all_output(&failed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_password_with_url_syntax_is_never_printed() {
    let dir = project_copy();
    let yaml = dir.path().join("sipform.yaml");
    let text = std::fs::read_to_string(&yaml).expect("sipform.yaml");
    let text = text.replace(
        "state:\n  backend: file\n  path: sipform.state.json\n",
        "state:\n  backend: postgres\n",
    );
    std::fs::write(&yaml, text).expect("write");
    for password in ["pa5s/wo7d?zq9k#mm3x", "1234/hunt3r?qq9z", "ab1k#cd2q@ef3z"] {
        let db = format!("postgres://app:{password}@127.0.0.1:1/platform");
        for args in [&["state", "list"][..], &["plan"][..], &["doctor"][..]] {
            let mut c = command(dir.path(), "http://127.0.0.1:1", args);
            c.env("DATABASE_URL", &db).env("PGCONNECT_TIMEOUT", "2");
            let out = run_cmd(c).await;
            let text = all_output(&out);
            assert_ne!(out.status.code(), Some(0), "{args:?}: {text}");
            for part in password.split(['/', '?', '#', '@']) {
                assert!(
                    !text.contains(part),
                    "{args:?} prints part {part:?} of the password {password:?}:\n{text}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_http_warning_reads_the_host_not_the_user_info() {
    let dir = project_copy();
    set_server(dir.path(), "timeout_sec", "1");
    let out = run(dir.path(), "http://localhost:pw@192.0.2.1", &["doctor"]).await;
    let text = stdout(&out);
    assert!(
        text.contains("plain http:// to the non-loopback host 192.0.2.1"),
        "{text}"
    );
    assert!(!all_output(&out).contains(":pw@"), "{}", all_output(&out));
}

// --- #10 answer size ------------------------------------------------------------------------

const HUNDRED_MB: u64 = 100 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_answer_fails_fast_naming_the_route_and_the_limit() {
    let emu = emulator().await;
    let dir = project_copy();
    // 8 MiB rather than the default 256 MiB: the same check, without reading 256 MiB.
    set_server(dir.path(), "max_answer_bytes", "8388608");
    let proxy = Hostile::proxy(&emu.base_url(), |s| {
        if s.is("GET") && s.route() == "/api/accounts" {
            Reply::Answer(Answer::inflated(
                200,
                "application/json",
                "[",
                "{\"id\":\"00000000-0000-4000-8000-000000000000\",\"name\":\"x\"},",
                HUNDRED_MB,
                "{}]",
            ))
        } else {
            Reply::Pass
        }
    })
    .await;
    let out = run(dir.path(), &proxy.base_url(), &["plan"]).await;
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("GET /api/accounts: the answer is larger than 8388608 bytes"),
        "{err}"
    );
    assert_eq!(err.matches("larger than").count(), 1, "not retried: {err}");
    assert!(
        proxy.bytes_sent() < HUNDRED_MB / 2,
        "sipform read on: {} bytes",
        proxy.bytes_sent()
    );

    // The limit is a setting.
    let p = dir.path().join("sipform.yaml");
    let text = std::fs::read_to_string(&p).expect("sipform.yaml");
    std::fs::write(
        &p,
        text.replace("max_answer_bytes: 8388608", "max_answer_bytes: 2048"),
    )
    .expect("write sipform.yaml");
    let small = Hostile::proxy(&emu.base_url(), |s| {
        if s.is("GET") && s.route() == "/api/accounts" {
            Reply::Answer(Answer::inflated(
                200,
                "application/json",
                "[",
                "{},",
                1 << 20,
                "{}]",
            ))
        } else {
            Reply::Pass
        }
    })
    .await;
    let out = run(dir.path(), &small.base_url(), &["plan"]).await;
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains("larger than 2048 bytes"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_html_error_page_is_not_read() {
    let emu = emulator().await;
    let dir = project_copy();
    let proxy = Hostile::proxy(&emu.base_url(), |s| {
        if s.is("GET") && s.route() == "/api/accounts" {
            Reply::Answer(
                Answer::inflated(
                    502,
                    "text/html",
                    "<html><body>",
                    "<p>{\"error\": \"not this\"}</p>",
                    HUNDRED_MB,
                    "</body></html>",
                )
                .header("retry-after", "0"),
            )
        } else {
            Reply::Pass
        }
    })
    .await;
    let out = run(dir.path(), &proxy.base_url(), &["plan"]).await;
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("GET /api/accounts: HTTP 502: Bad Gateway"),
        "{err}"
    );
    assert!(!err.contains("not this") && !err.contains("<p>"), "{err}");
    assert!(
        proxy.bytes_sent() < HUNDRED_MB,
        "error pages were read: {} bytes",
        proxy.bytes_sent()
    );
}

// --- #11 throttling forever -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_throttling_gives_up_at_the_cap_and_says_so() {
    let emu = emulator().await;
    let dir = project_copy();
    set_server(dir.path(), "max_throttle_secs", "2");
    let proxy = Hostile::proxy(&emu.base_url(), |_| {
        Reply::Answer(Answer::json(429, &json!({"error": "slow down"})).header("retry-after", "1"))
    })
    .await;
    let out = run(dir.path(), &proxy.base_url(), &["plan"]).await;
    expect_code(&out, 1);
    let err = stderr(&out);
    assert_eq!(
        err.matches("the server is throttling: waiting 1s (Retry-After)")
            .count(),
        1,
        "told once, at default verbosity: {err}"
    );
    assert!(
        err.contains("GET /api/accounts: the server has been throttling this request (HTTP 429)"),
        "{err}"
    );
    assert!(
        err.contains("gave up at the 2s limit (server.max_throttle_secs)"),
        "{err}"
    );
    let calls = proxy.seen().len();
    assert!((2..=4).contains(&calls), "{calls} requests within a 2s cap");
}

// --- #18 each error once ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_is_said_once() {
    let emu = emulator().await;
    let dir = project_copy();
    let proxy = Hostile::proxy(&emu.base_url(), |s| {
        if s.is("GET") && s.route() == "/api/accounts" {
            Reply::Answer(
                Answer::json(500, &json!({"error": "database on fire"})).header("retry-after", "0"),
            )
        } else {
            Reply::Pass
        }
    })
    .await;
    let out = run(dir.path(), &proxy.base_url(), &["plan"]).await;
    expect_code(&out, 1);
    let err = stderr(&out);
    assert_eq!(err.matches("HTTP 500").count(), 1, "{err}");
    assert_eq!(err.matches("GET /api/accounts").count(), 1, "{err}");
    assert_eq!(err.matches("database on fire").count(), 1, "{err}");
    assert!(err.contains("run again later"), "says what to do: {err}");
}

// --- issue 25 #4 an unsolicited answer on a kept-alive connection is never the next answer ----
// hyper's client (under reqwest) already closes a pooled connection that receives bytes while
// idle, as Go's net/http and curl do: this pins it, for both timings (the extra answer in the
// same write as the real one, or a moment later). Bytes arriving only after the next request
// was written cannot be told from its answer by any HTTP/1.1 client reusing connections.

/// A raw HTTP/1.1 server on 127.0.0.1 that answers each GET with `{"id":"req-N"}` (N counting
/// requests over all connections) and, after the first answer of each connection, writes a
/// second, unsolicited answer `{"id":"bogus"}` on the same connection: `together` in the same
/// write as the real answer, else a moment later.
async fn unsolicited_server(together: bool) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn answer(id: &str) -> Vec<u8> {
        let body = format!("{{\"id\":\"{id}\"}}");
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut first = true;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map_or(0, |p| p + 4);
                    buf.drain(..end);
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    let mut out = answer(&format!("req-{n}"));
                    if first && together {
                        out.extend(answer("bogus"));
                    }
                    if sock.write_all(&out).await.is_err() {
                        return;
                    }
                    if first && !together {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        if sock.write_all(&answer("bogus")).await.is_err() {
                            return;
                        }
                    }
                    first = false;
                }
            });
        }
    });
    (format!("http://{addr}"), count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsolicited_answer_on_a_pooled_connection_is_never_read_as_the_next_answer() {
    use sipform::config::{Overrides, Settings};
    use sipform::remote::{Client, Route};

    for together in [true, false] {
        let (url, _count) = unsolicited_server(together).await;
        let project: sipform::model::spec::Project = serde_json::from_value(json!({
            "account": {"name": "A", "email": "a@b.c"},
            "server": {"url": url}
        }))
        .expect("project");
        let settings = Settings::resolve(Path::new("."), project, &|_| None, &Overrides::default());
        let client = Client::new(&settings).expect("client");
        for round in 0..10 {
            let first = client
                .get_one(&Route::new("/api/agents/:id", &["a"]))
                .await
                .expect("first answer");
            assert_ne!(first["id"], "bogus", "round {round}, together {together}");
            // The unsolicited answer is on the wire before the next request is sent.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let second = client
                .get_one(&Route::new("/api/agents/:id", &["b"]))
                .await
                .expect("second answer");
            assert_ne!(
                second["id"], "bogus",
                "round {round}, together {together}: the unsolicited answer was read as the next one"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
