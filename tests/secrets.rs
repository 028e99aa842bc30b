//! Secrets never leak: the account API key, agent apiTokens and publicTokens and SIP passwords
//! appear in no stdout, no stderr and no file sipform writes, whatever the command or the
//! verbosity. The one exception is storage the user opted into (`store_tokens: true`): then the
//! state file may hold the agent tokens, and it is private (0600).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use sipform_emulator::{Emulator, EmulatorConfig, EmulatorHandle, ErrorRule, Faults};

const ACCOUNT_KEY: &str = "acc_SECRET_k3y_7f3a9c21d0e84b5a";
const WRONG_KEY: &str = "acc_SECRET_wr0ng_55aa17c3e9d1";
const SIP_PASSWORD: &str = "sip_SECRET_pw_q8Zx41Lm";

async fn keyed_emulator(faults: Faults) -> EmulatorHandle {
    Emulator::start(EmulatorConfig {
        api_key: Some(sipform_emulator::ApiKey::new(ACCOUNT_KEY)),
        faults,
        seed: 7,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

/// Runs sipform with the account key (or another one) in the environment.
fn run(dir: &Path, url: &str, key: &str, args: &[&str]) -> Output {
    common::command(dir, url, args)
        .env("SIP_ACCOUNT_API_KEY", key)
        .output()
        .expect("run sipform")
}

/// Every secret the server handed out or was given: agent tokens from the emulator's store.
fn server_tokens(h: &EmulatorHandle) -> Vec<String> {
    let mut out = Vec::new();
    for a in common::agents(h) {
        for k in ["apiToken", "publicToken"] {
            if let Some(t) = a[k].as_str() {
                assert!(t.len() >= 8, "token {k} too short to search for: {t:?}");
                out.push(t.to_string());
            }
        }
    }
    out
}

/// Every file under `dir` (recursively), with its bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push((p, bytes));
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    hay.windows(n.len()).any(|w| w == n)
}

/// What every command printed, labelled, for the final scan.
#[derive(Default)]
struct Transcript {
    runs: Vec<(String, Output)>,
}

impl Transcript {
    fn push(&mut self, label: &str, o: Output) -> &Output {
        self.runs.push((label.to_string(), o));
        &self.runs.last().expect("just pushed").1
    }

    /// Panics naming the command and stream where any secret appears.
    fn assert_clean(&self, secrets: &[String]) {
        for (label, o) in &self.runs {
            for s in secrets {
                assert!(
                    !contains(&o.stdout, s),
                    "secret {s:?} leaked on stdout of `{label}`:\n{}",
                    common::stdout(o)
                );
                assert!(
                    !contains(&o.stderr, s),
                    "secret {s:?} leaked on stderr of `{label}`:\n{}",
                    common::stderr(o)
                );
            }
        }
    }
}

fn not_implemented(o: &Output) -> bool {
    common::stderr(o).contains("not implemented")
}

fn assert_mode_0600(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "{} has mode {:o}",
            path.display(),
            mode & 0o777
        );
    }
}

/// Adds a SIP phone line with a password to the first agent, directly on the server.
async fn add_phone_line(h: &EmulatorHandle) {
    let agent = common::agents(h)[0]["id"]
        .as_str()
        .expect("agent id")
        .to_string();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/agents/{agent}/phone-lines", h.base_url()))
        .header("X-API-Key", ACCOUNT_KEY)
        .json(&serde_json::json!({
            "phoneNumber": "+33142000099",
            "provider": "sip",
            "sipTransport": "udp",
            "sipDomain": "sip.example.com",
            "sipUsername": "bistrot",
            "sipPassword": SIP_PASSWORD,
            "isActive": true
        }))
        .send()
        .await
        .expect("phone line request");
    assert_eq!(
        resp.status().as_u16(),
        201,
        "{}",
        resp.text().await.unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_any_output_or_file() {
    let project = common::project_copy();
    let dir = project.path();
    let emu = keyed_emulator(Faults::default()).await;
    let url = emu.base_url();
    let mut t = Transcript::default();

    let o = t.push(
        "validate",
        run(dir, &url, ACCOUNT_KEY, &["validate", "-vvv"]),
    );
    common::expect_code(o, 0);
    for (label, args) in [
        ("plan", vec!["plan", "-vvv"]),
        ("plan --json", vec!["plan", "--json"]),
        ("plan --markdown", vec!["plan", "--markdown"]),
    ] {
        let o = t.push(label, run(dir, &url, ACCOUNT_KEY, &args));
        common::expect_code(o, 0);
    }
    let o = t.push(
        "apply --auto-approve",
        run(dir, &url, ACCOUNT_KEY, &["apply", "--auto-approve", "-vvv"]),
    );
    common::expect_code(o, 0);
    assert_mode_0600(&dir.join("sipform.state.json"));
    assert_mode_0600(&dir.join("sipform.state.json.journal"));

    // Now the server holds tokens and a SIP password: every read of them must stay quiet.
    add_phone_line(&emu).await;
    let mut secrets = server_tokens(&emu);
    assert!(
        secrets.len() >= 6,
        "3 agents × 2 tokens expected: {secrets:?}"
    );
    secrets.push(ACCOUNT_KEY.to_string());
    secrets.push(WRONG_KEY.to_string());
    secrets.push(SIP_PASSWORD.to_string());

    for (label, args) in [
        ("plan after apply", vec!["plan", "-vvv"]),
        ("plan --json after apply", vec!["plan", "--json", "-vv"]),
        ("plan --markdown after apply", vec!["plan", "--markdown"]),
        ("plan --out", vec!["plan", "--out", "plan.json", "-vvv"]),
    ] {
        let o = t.push(label, run(dir, &url, ACCOUNT_KEY, &args));
        common::expect_code(o, 0);
    }
    let o = t.push(
        "apply plan.json",
        run(dir, &url, ACCOUNT_KEY, &["apply", "plan.json", "-vvv"]),
    );
    common::expect_code(o, 0);
    let o = t.push(
        "apply again",
        run(dir, &url, ACCOUNT_KEY, &["apply", "--auto-approve", "-vvv"]),
    );
    common::expect_code(o, 0);

    // state list/show and doctor.
    for (label, args) in [
        ("state list", vec!["state", "list"]),
        (
            "state show",
            vec!["state", "show", "3f6c2a1e-8b4d-4c59-9a2e-1d7f5b6c8e01"],
        ),
        ("doctor", vec!["doctor", "-vvv"]),
    ] {
        let o = t.push(label, run(dir, &url, ACCOUNT_KEY, &args));
        assert!(!not_implemented(o), "`{label}` must be implemented");
        assert_eq!(o.status.code(), Some(0), "`{label}`: {}", common::stderr(o));
    }

    // A failing apply with the wrong key (401), at trace level.
    std::fs::remove_file(dir.join("restaurants/sushi-kyoto.yaml")).expect("rm");
    let o = t.push(
        "apply with a wrong key",
        run(
            dir,
            &url,
            WRONG_KEY,
            &["apply", "--auto-approve", "--allow-destroy", "-vvv"],
        ),
    );
    assert_eq!(o.status.code(), Some(1), "{}", common::stderr(o));
    let o = t.push(
        "plan with a wrong key",
        run(dir, &url, WRONG_KEY, &["plan", "--json", "-vvv"]),
    );
    assert_eq!(o.status.code(), Some(1), "{}", common::stderr(o));

    // A failing apply whose creates fail, at trace level: new restaurants, tools refused.
    common::generate_restaurants(dir, 3);
    emu.set_faults(Faults {
        errors: vec![ErrorRule {
            method: "POST".into(),
            route: "/api/agents/:id/tools".into(),
            rate: 1.0,
            statuses: vec![500],
        }],
        ..Faults::default()
    });
    let o = t.push(
        "apply with failing creates",
        run(
            dir,
            &url,
            ACCOUNT_KEY,
            &["apply", "--auto-approve", "--allow-destroy", "-vvv"],
        ),
    );
    assert_eq!(o.status.code(), Some(1), "{}", common::stderr(o));
    // -vvv really is trace level (the HTTP stack logs too), so the scan below means something.
    assert!(common::stderr(o).contains("TRACE"), "{}", common::stderr(o));
    // The agents created by that apply have tokens too.
    emu.set_faults(Faults::default());
    for tok in server_tokens(&emu) {
        if !secrets.contains(&tok) {
            secrets.push(tok);
        }
    }

    t.assert_clean(&secrets);
    for (path, bytes) in files(dir) {
        for s in &secrets {
            assert!(
                !contains(&bytes, s),
                "secret {s:?} found in {}",
                path.display()
            );
        }
    }
    for name in ["sipform.state.json", "plan.json"] {
        assert_mode_0600(&dir.join(name));
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_tokens_keeps_only_the_api_token_in_a_private_state_file() {
    let project = common::project_copy();
    let dir = project.path();
    let yaml = std::fs::read_to_string(dir.join("sipform.yaml")).expect("sipform.yaml");
    let yaml = yaml.replace(
        "  path: sipform.state.json\n",
        "  path: sipform.state.json\n  store_tokens: true\n",
    );
    std::fs::write(dir.join("sipform.yaml"), yaml).expect("write");
    let emu = keyed_emulator(Faults::default()).await;
    let url = emu.base_url();
    let mut t = Transcript::default();
    let o = t.push("validate", run(dir, &url, ACCOUNT_KEY, &["validate"]));
    common::expect_code(o, 0);
    let o = t.push(
        "apply",
        run(dir, &url, ACCOUNT_KEY, &["apply", "--auto-approve", "-vvv"]),
    );
    common::expect_code(o, 0);
    let o = t.push(
        "plan",
        run(dir, &url, ACCOUNT_KEY, &["plan", "--json", "-vvv"]),
    );
    common::expect_code(o, 0);

    let state_path = dir.join("sipform.state.json");
    assert_mode_0600(&state_path);
    let state = std::fs::read(&state_path).expect("state");
    let mut api_tokens = Vec::new();
    let mut others = vec![ACCOUNT_KEY.to_string()];
    for a in common::agents(&emu) {
        api_tokens.push(a["apiToken"].as_str().expect("apiToken").to_string());
        others.push(a["publicToken"].as_str().expect("publicToken").to_string());
    }
    for tok in &api_tokens {
        assert!(
            contains(&state, tok),
            "store_tokens: the state keeps the apiToken"
        );
    }
    let mut all = api_tokens.clone();
    all.extend(others.iter().cloned());
    t.assert_clean(&all);
    for (path, bytes) in files(dir) {
        for s in &others {
            assert!(
                !contains(&bytes, s),
                "secret {s:?} found in {}",
                path.display()
            );
        }
        if path != state_path {
            for s in &api_tokens {
                assert!(
                    !contains(&bytes, s),
                    "apiToken {s:?} found in {}",
                    path.display()
                );
            }
        }
    }
    emu.shutdown().await;
}

/// Plain http:// to a host that is not loopback: a warning, printed before anything connects.
/// The state file is broken on purpose so that `plan` stops before its first request.
#[test]
fn plain_http_to_a_remote_host_warns() {
    let project = common::project_copy();
    let dir = project.path();
    std::fs::write(dir.join("sipform.state.json"), "{\"version\": 1, \"lin").expect("write");
    let o = common::command(dir, "http://10.255.255.1:9", &["plan"])
        .env("SIP_ACCOUNT_API_KEY", ACCOUNT_KEY)
        .output()
        .expect("run");
    let err = common::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("plain http://"), "{err}");
    assert!(err.contains("10.255.255.1"), "{err}");
    assert!(err.contains("not valid state JSON"), "{err}");
    assert!(!err.contains(ACCOUNT_KEY), "{err}");

    // Loopback and https are quiet.
    let o = common::command(dir, "http://127.0.0.1:9", &["plan"])
        .env("SIP_ACCOUNT_API_KEY", ACCOUNT_KEY)
        .output()
        .expect("run");
    assert!(!common::stderr(&o).contains("plain http://"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_files_are_created_private() {
    let project = common::project_copy();
    let dir = project.path();
    let emu = keyed_emulator(Faults::default()).await;
    let o = run(
        dir,
        &emu.base_url(),
        ACCOUNT_KEY,
        &["apply", "--auto-approve"],
    );
    common::expect_code(&o, 0);
    assert_mode_0600(&dir.join("sipform.state.json"));
    let lock = dir.join("sipform.state.json.lock");
    if lock.exists() {
        assert_mode_0600(&lock);
    }
    emu.shutdown().await;
}

/// Database mode (issue 11): the platform's `ENCRYPTION_KEY` and the SIP passwords it
/// decrypts from the `phone_lines` table reach no output (at trace level), no plan file and no
/// state file; only the server gets the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_platform_key_or_decrypted_password_anywhere() {
    const MASTER: &str = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";
    const DB_PASSWORD: &str = "sip_SECRET_dbpw_Vn27Rq";
    let line = "33333333-0000-4000-8000-000000000001";
    let stored = common::db::platform_encrypt_with_iv(MASTER, line, DB_PASSWORD, [9u8; 12]);

    let db = common::db::TestDb::new(common::db::Engine::Sqlite).await;
    db.create_restaurants("restaurants").await;
    db.create_phone_lines().await;
    db.exec(&format!(
        "INSERT INTO restaurants (id, name, sip_enabled) VALUES ('00000000-0000-4000-8000-000000000001', 'Chez Secret', true);
         INSERT INTO phone_lines (id, restaurant_id, phone_number, provider, sip_domain, sip_username, sip_password) VALUES ('{line}', '00000000-0000-4000-8000-000000000001', '+33144000001', 'sip', 'sip.example.net', 'u1', '{stored}');"
    ))
    .await;
    let project = common::project_copy();
    let dir = project.path();
    std::fs::write(
        dir.join("sipform.yaml"),
        format!(
            "account:\n  name: AlloResto\n  email: tech@alloresto.fr\ninventory:\n  source: database\n  url: \"{}\"\n",
            db.url
        ),
    )
    .expect("sipform.yaml");
    let emu = keyed_emulator(Faults::default()).await;
    let url = emu.base_url();
    let mut t = Transcript::default();
    let with_key = |args: &[&str], key: &str| {
        common::command(dir, &url, args)
            .env("SIP_ACCOUNT_API_KEY", ACCOUNT_KEY)
            .env("ENCRYPTION_KEY", key)
            .output()
            .expect("run sipform")
    };
    for args in [
        &["validate", "-vvv"][..],
        &["plan", "-vvv"][..],
        &["plan", "--json", "-vvv"][..],
        &["plan", "--markdown"][..],
        &["plan", "--out", "plan.json", "-vvv"][..],
        &["apply", "plan.json", "-vvv"][..],
        &["plan", "-vvv"][..],
        &["dedupe", "-vvv"][..],
    ] {
        let o = t.push(&args.join(" "), with_key(args, MASTER));
        common::expect_code(o, 0);
    }
    let agent = &common::agents(&emu)[0];
    assert_eq!(
        agent["phoneLines"][0]["sipPassword"], DB_PASSWORD,
        "the server got it"
    );
    // A wrong key fails, naming the line, showing neither key.
    let wrong = MASTER.replace('5', "6");
    let o = t.push("plan with a wrong key", with_key(&["plan", "-vvv"], &wrong));
    assert_ne!(o.status.code(), Some(0));
    assert!(common::stderr(o).contains(line) || common::stdout(o).contains(line));
    let secrets = [
        MASTER.to_string(),
        wrong,
        MASTER.to_uppercase(),
        DB_PASSWORD.to_string(),
        ACCOUNT_KEY.to_string(),
    ];
    t.assert_clean(&secrets);
    for (path, bytes) in files(dir) {
        for s in &secrets {
            assert!(
                !contains(&bytes, s),
                "secret {s:?} found in {}",
                path.display()
            );
        }
    }
    emu.shutdown().await;
}
