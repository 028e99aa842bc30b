//! `sipform doctor` tells what works and what does not, with exit 1 on any failure.

mod common;

use std::time::Duration;

use common::*;
use sipform::state::{file::FileState, LockInfo, StateBackend};
use sipform_emulator::{Emulator, EmulatorConfig};

async fn doctor(dir: &std::path::Path, url: &str, key: Option<&str>) -> std::process::Output {
    let mut c = command(dir, url, &["doctor"]);
    if let Some(k) = key {
        c.env("SIP_ACCOUNT_API_KEY", k);
    }
    tokio::task::spawn_blocking(move || c.output().expect("run"))
        .await
        .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_green_against_the_emulator_with_the_right_key() {
    let emu = Emulator::start(EmulatorConfig {
        api_key: Some(sipform_emulator::ApiKey::new("acc_right")),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator");
    let dir = project_copy();
    let out = doctor(dir.path(), &emu.base_url(), Some("acc_right")).await;
    expect_code(&out, 0);
    let text = stdout(&out);
    assert_eq!(text.matches("present").count(), 9, "{text}");
    assert!(text.contains("the API key is accepted"), "{text}");
    assert!(!text.contains("acc_right"));

    let out = doctor(dir.path(), &emu.base_url(), Some("acc_wrong")).await;
    expect_code(&out, 1);
    assert!(
        stdout(&out).contains("FAIL authentication"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("acc_wrong") && !stderr(&out).contains("acc_wrong"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_and_a_held_lock_fail() {
    let dir = project_copy();
    // A port nothing listens on: bind, read the port, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let out = doctor(dir.path(), &format!("http://127.0.0.1:{port}"), None).await;
    expect_code(&out, 1);
    assert!(stdout(&out).contains("FAIL server"), "{}", stdout(&out));

    let emu = emulator().await;
    let state = FileState::new(dir.path().join("sipform.state.json"));
    let _guard = state
        .lock(&LockInfo::for_this_process("apply"), Duration::from_secs(1))
        .await
        .expect("lock");
    let out = doctor(dir.path(), &emu.base_url(), None).await;
    expect_code(&out, 1);
    assert!(stdout(&out).contains("FAIL state lock"), "{}", stdout(&out));
    assert!(stdout(&out).contains("apply by pid"), "{}", stdout(&out));
}
