//! Phone lines are watched (issue 23 item 4, reference fact 4): the SIP form commits
//! `restaurants`, derives the new encrypted SIP password (PBKDF2, tens of milliseconds), then
//! commits `phone_lines`. A controller woken by the first commit must still see the second: the
//! `phone_lines` trigger logs the line's restaurant, so the new password reaches the server
//! without waiting for the full resync (10 minutes here). A change of the line alone too.

mod common;

use common::controller::*;
use common::db::{platform_encrypt, Engine, TestDb};
use common::*;

const KEY: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn line_id(i: usize) -> String {
    format!("11111111-0000-4000-8000-{i:012}")
}

fn password(i: usize, round: u32) -> String {
    format!("Feed{round}pw{i}-Zr51-sipsecret")
}

/// The password the emulator holds for restaurant `i`'s line.
fn server_password(emu: &sipform_emulator::EmulatorHandle, i: usize) -> Option<String> {
    let agent = agent_of(emu, i)?;
    let line = agent["phoneLines"].as_array()?.first()?.clone();
    line["sipPassword"].as_str().map(str::to_string)
}

async fn set_password(db: &TestDb, i: usize, round: u32) {
    db.exec(&format!(
        "UPDATE phone_lines SET sip_password = '{}' WHERE id = {}",
        platform_encrypt(KEY, &line_id(i), &password(i, round)),
        db.id_literal(&line_id(i))
    ))
    .await;
}

async fn the_sip_forms_two_commits_reach_the_server(engine: Engine) {
    let emu = emulator().await;
    let db = platform(engine).await;
    db.create_phone_lines().await;
    insert(&db, 0..1).await;
    db.exec(&format!(
        "INSERT INTO phone_lines (id, restaurant_id, phone_number, provider, sip_transport, sip_domain, sip_username, sip_password) VALUES ({}, {}, '+33141000000', 'sip', 'udp', 'sip.example.net', 'user0', '{}')",
        db.id_literal(&line_id(0)),
        db.id_literal(&rid(0)),
        platform_encrypt(KEY, &line_id(0), &password(0, 1)),
    ))
    .await;
    let dir = project_on(&db);
    install_trigger(dir.path(), &emu.base_url());
    let ctl = start(
        dir.path(),
        &emu.base_url(),
        &["--resync", "10m"],
        &[("ENCRYPTION_KEY", KEY)],
    );
    eventually("the first password on the server", 60, || async {
        server_password(&emu, 0).as_deref() == Some(password(0, 1).as_str())
    })
    .await;

    // The SIP form: restaurants first, then (after the key derivation) the line.
    db.exec(&format!(
        "UPDATE restaurants SET sip_enabled = true, phone = '+33141000000' WHERE id = {}",
        db.id_literal(&rid(0))
    ))
    .await;
    let encrypted = platform_encrypt(KEY, &line_id(0), &password(0, 2));
    db.exec(&format!(
        "UPDATE phone_lines SET sip_password = '{encrypted}' WHERE id = {}",
        db.id_literal(&line_id(0))
    ))
    .await;
    eventually("the SIP form's new password on the server", 30, || async {
        server_password(&emu, 0).as_deref() == Some(password(0, 2).as_str())
    })
    .await;

    // The line alone.
    set_password(&db, 0, 3).await;
    eventually("the line's own change on the server", 30, || async {
        server_password(&emu, 0).as_deref() == Some(password(0, 3).as_str())
    })
    .await;
    assert!(
        !ctl.log_text().contains(&password(0, 3)),
        "a password in the log"
    );
    assert_no_duplicates(&emu);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_sip_forms_two_commits_reach_the_server() {
    the_sip_forms_two_commits_reach_the_server(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_sip_forms_two_commits_reach_the_server() {
    the_sip_forms_two_commits_reach_the_server(Engine::Postgres).await;
}
