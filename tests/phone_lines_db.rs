//! Phone lines in database mode (issue 11), in SQLite and PostgreSQL: the platform's
//! `phone_lines` table read beside `restaurants`, its passwords encrypted exactly as the
//! platform does (Node: PBKDF2-HMAC-SHA256 of the hex-decoded `ENCRYPTION_KEY` salted with the
//! line id, 100,000 rounds; `createCipheriv('aes-256-gcm', key, iv)`; `iv:authTag:ciphertext`
//! in base64), decrypted by sipform and sent to the server; a rotation is one PUT; a wrong key
//! skips only the restaurants it cannot decrypt, naming the line; neither the key nor a
//! password appears anywhere.

mod common;

use std::path::Path;
use std::process::Output;

use common::db::{platform_encrypt, Engine, TestDb};
use common::*;
use serde_json::Value;

const KEY: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const OTHER_KEY: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
const LINES: &str = "POST /api/agents/:id/phone-lines";
const LINE: &str = "PUT /api/agents/:id/phone-lines/:lineId";

fn line_id(i: usize) -> String {
    format!("11111111-0000-4000-8000-{i:012}")
}

fn number(i: usize) -> String {
    format!("+3314100{i:04}")
}

fn password(i: usize, round: u32) -> String {
    format!("Db{round}pw{i}-Kq83-sipsecret")
}

/// `n` restaurants, each with its line: SIP with credentials encrypted under `KEY`, except
/// the last, a Twilio line with a legacy plaintext password.
async fn platform(engine: Engine, n: usize) -> TestDb {
    let db = TestDb::new(engine).await;
    db.create_restaurants("restaurants").await;
    db.create_phone_lines().await;
    let mut sql = String::new();
    for i in 0..n {
        sql.push_str(&format!(
            "INSERT INTO restaurants (id, name, contact_email, sip_enabled) VALUES ({}, 'Restaurant {i}', 'r{i}@example.com', true);\n",
            db.id_literal(&rid(i)),
        ));
        let (provider, domain, stored) = if i + 1 == n {
            ("twilio", "NULL".to_string(), password(i, 1))
        } else {
            (
                "sip",
                "'sip.example.net'".to_string(),
                platform_encrypt(KEY, &line_id(i), &password(i, 1)),
            )
        };
        sql.push_str(&format!(
            "INSERT INTO phone_lines (id, restaurant_id, phone_number, provider, sip_transport, stun_server, sip_domain, sip_username, sip_password, twilio_trunk_sid) VALUES ({}, {}, '{}', '{provider}', 'udp', 'stun.example.net:3478', {domain}, 'user{i}', '{stored}', 'TK{i}');\n",
            db.id_literal(&line_id(i)),
            db.id_literal(&rid(i)),
            number(i),
        ));
    }
    db.exec(&sql).await;
    db
}

/// A project reading `db`, its state a file in the project.
const ON_TABLE: TableProject = TableProject {
    timeout_sec: Some(5),
    state_in_db: false,
    extra: "",
};

async fn run_key(dir: &Path, url: &str, args: &[&str], key: Option<&str>) -> Output {
    let mut c = command(dir, url, args);
    match key {
        Some(k) => c.env("ENCRYPTION_KEY", k),
        None => c.env_remove("ENCRYPTION_KEY"),
    };
    tokio::task::spawn_blocking(move || c.output().expect("run sipform"))
        .await
        .expect("join")
}

/// Neither key, nor any password of any round, in `text`.
fn assert_clean(what: &str, text: &str, n: usize) {
    for k in [KEY, OTHER_KEY] {
        assert!(!text.contains(k), "{what} holds ENCRYPTION_KEY:\n{text}");
    }
    for i in 0..n {
        for r in 1..=3 {
            assert!(
                !text.contains(&password(i, r)),
                "{what} holds a SIP password:\n{text}"
            );
        }
    }
}

fn line_of(emu: &sipform_emulator::EmulatorHandle, i: usize) -> Option<Value> {
    let agent = agents(emu)
        .into_iter()
        .find(|a| a["config"]["restaurantId"] == rid(i).as_str())?;
    let lines = agent["phoneLines"].as_array().cloned().unwrap_or_default();
    assert!(lines.len() <= 1, "one line per agent: {lines:?}");
    lines.into_iter().next()
}

async fn decrypted_lines_reach_the_server_and_rotate_with_one_put(engine: Engine) {
    let emu = emulator().await;
    let n = 3;
    let db = platform(engine, n).await;
    let dir = project_on_table(&db, ON_TABLE);
    let url = emu.base_url();

    let out = run_key(dir.path(), &url, &["apply", "--auto-approve"], Some(KEY)).await;
    expect_code(&out, 0);
    assert_clean("apply's output", &all_output(&out), n);
    assert!(
        stdout(&out).contains("+ sipPassword: (sensitive)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(count(&emu, LINES), n as u64);
    for i in 0..n {
        let l = line_of(&emu, i).expect("the restaurant's line");
        assert_eq!(l["phoneNumber"], number(i).as_str());
        assert_eq!(
            l["sipPassword"],
            password(i, 1).as_str(),
            "decrypted, line {i}"
        );
        assert_eq!(l["sipTransport"], "udp");
        assert_eq!(l["stunServer"], "stun.example.net:3478");
        assert_eq!(l["sipUsername"], format!("user{i}").as_str());
        assert_eq!(l["twilioTrunkSid"], format!("TK{i}").as_str());
        assert_eq!(l["isActive"], true);
        if i + 1 == n {
            assert_eq!(l["provider"], "twilio");
            assert_eq!(l["sipDomain"], Value::Null);
        } else {
            assert_eq!(l["provider"], "sip");
            assert_eq!(l["sipDomain"], "sip.example.net");
        }
    }
    let state = serde_json::to_string(&read_state(dir.path())).expect("json");
    assert_clean("state", &state, n);

    // Re-encrypted with a fresh IV, same password: nothing to do.
    db.exec(&format!(
        "UPDATE phone_lines SET sip_password = '{}' WHERE id = {}",
        platform_encrypt(KEY, &line_id(0), &password(0, 1)),
        db.id_literal(&line_id(0))
    ))
    .await;
    let out = run_key(
        dir.path(),
        &url,
        &["plan", "--detailed-exitcode"],
        Some(KEY),
    )
    .await;
    expect_code(&out, 0);

    // Rotated on the platform: one PUT, the plan shows that it changes and never the value.
    db.exec(&format!(
        "UPDATE phone_lines SET sip_password = '{}' WHERE id = {}",
        platform_encrypt(KEY, &line_id(1), &password(1, 2)),
        db.id_literal(&line_id(1))
    ))
    .await;
    for args in [
        &["plan", "--detailed-exitcode"][..],
        &["plan", "--json"][..],
        &["plan", "--out", "rotate.json"][..],
    ] {
        let out = run_key(dir.path(), &url, args, Some(KEY)).await;
        assert!(
            matches!(out.status.code(), Some(0 | 2)),
            "{args:?}: {}",
            all_output(&out)
        );
        let text = all_output(&out);
        assert_clean(&format!("{args:?}"), &text, n);
        assert!(text.contains("sipPassword") || args[1] == "--out", "{text}");
        if args[1] == "--detailed-exitcode" {
            assert!(
                text.contains("~ sipPassword: (sensitive, changed)"),
                "{text}"
            );
        }
    }
    let saved = std::fs::read_to_string(dir.path().join("rotate.json")).expect("saved plan");
    assert_clean("the saved plan", &saved, n);
    assert!(
        saved.contains("fromPlatform"),
        "the plan names the line, not the value"
    );
    let before = writes(&emu);
    let out = run_key(dir.path(), &url, &["apply", "rotate.json"], Some(KEY)).await;
    expect_code(&out, 0);
    assert_clean("apply's output", &all_output(&out), n);
    let w = writes_since(&emu, &before);
    assert_eq!(w.get(LINE).copied(), Some(1), "{w:?}");
    assert_eq!(w.len(), 1, "only the rotated line was written: {w:?}");
    assert_eq!(
        line_of(&emu, 1).expect("line")["sipPassword"],
        password(1, 2).as_str()
    );
    let out = run_key(
        dir.path(),
        &url,
        &["plan", "--detailed-exitcode"],
        Some(KEY),
    )
    .await;
    expect_code(&out, 0);
}

async fn a_wrong_key_skips_only_what_it_cannot_decrypt(engine: Engine) {
    let emu = emulator().await;
    let n = 3;
    let db = platform(engine, n).await;
    // Line 1 was encrypted under another key: only restaurant 1 is refused.
    db.exec(&format!(
        "UPDATE phone_lines SET sip_password = '{}' WHERE id = {}",
        platform_encrypt(OTHER_KEY, &line_id(1), &password(1, 1)),
        db.id_literal(&line_id(1))
    ))
    .await;
    let dir = project_on_table(&db, ON_TABLE);
    let url = emu.base_url();

    let out = run_key(dir.path(), &url, &["apply", "--auto-approve"], Some(KEY)).await;
    assert_ne!(out.status.code(), Some(0), "{}", all_output(&out));
    let text = all_output(&out);
    assert_clean("apply's output", &text, n);
    assert!(text.contains(&line_id(1)), "names the phone line:\n{text}");
    assert!(text.contains(&rid(1)), "names the restaurant:\n{text}");
    assert!(text.contains("ENCRYPTION_KEY"), "{text}");
    assert!(line_of(&emu, 0).is_some() && line_of(&emu, 2).is_some());
    assert!(
        agents(&emu)
            .iter()
            .all(|a| a["config"]["restaurantId"] != rid(1).as_str()),
        "nothing is sent for the refused restaurant"
    );
    assert_eq!(count(&emu, LINES), 2);

    // No key at all: the encrypted lines' restaurants are refused, the legacy one is not
    // (already applied: nothing to do for it), and nothing is written.
    let before = writes(&emu);
    let out = run_key(dir.path(), &url, &["apply", "--auto-approve"], None).await;
    assert_ne!(out.status.code(), Some(0));
    let text = all_output(&out);
    assert_clean("apply's output", &text, n);
    assert!(
        text.contains(&line_id(0)) && text.contains("is not set"),
        "{text}"
    );
    assert!(
        writes_since(&emu, &before).is_empty(),
        "{:?}",
        writes_since(&emu, &before)
    );

    // A malformed key is named, never shown.
    let out = run_key(dir.path(), &url, &["plan"], Some("not-hex-at-all")).await;
    let text = all_output(&out);
    assert!(text.contains("64 hexadecimal"), "{text}");
    assert!(!text.contains("not-hex-at-all"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_decrypted_lines_reach_the_server_and_rotate_with_one_put() {
    decrypted_lines_reach_the_server_and_rotate_with_one_put(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_decrypted_lines_reach_the_server_and_rotate_with_one_put() {
    decrypted_lines_reach_the_server_and_rotate_with_one_put(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_wrong_key_skips_only_what_it_cannot_decrypt() {
    a_wrong_key_skips_only_what_it_cannot_decrypt(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_wrong_key_skips_only_what_it_cannot_decrypt() {
    a_wrong_key_skips_only_what_it_cannot_decrypt(Engine::Postgres).await;
}
