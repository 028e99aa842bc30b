//! Issue 25, item 10: slow clients never take the controller down. Three hundred connections
//! each sending a header line now and then, against a controller allowed 200 file
//! descriptors: the listener's connection cap keeps it under the limit, its header timeout
//! closes the slow ones, and `/healthz` still answers.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::controller::*;
use common::db::Engine;
use common::*;
use tokio::io::AsyncWriteExt;

/// A client that opens a request and sends one header line every 300 ms, never ending it.
async fn slow_client(port: u16) {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return;
    };
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if s.write_all(b"X-Slow: 1\r\n").await.is_err() {
            return;
        }
    }
}

/// `/healthz` answered 200, waiting at most 3 s (a connection left in the backlog never is).
async fn healthy(ctl: &Ctl) -> bool {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("client");
    client
        .get(ctl.url("/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_never_take_the_controller_down() {
    let emu = emulator().await;
    let db = platform(Engine::Sqlite).await;
    let dir = project_on(&db);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let log = dir.path().join("controller.log");
    let out = std::fs::File::create(&log).expect("log");
    let err = out.try_clone().expect("log");
    // The controller under a low file-descriptor limit, as a busy host would have it.
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 200 && exec \"$0\" \"$@\"")
        .arg(BIN)
        .args([
            "controller",
            "--listen",
            &listen,
            "--poll-interval",
            "100ms",
        ])
        .current_dir(dir.path())
        .env("SIP_AGENT_SERVER_URL", emu.base_url())
        .env_remove("SIP_ACCOUNT_API_KEY")
        .env_remove("SIPFORM_CONTROLLER_TOKEN")
        .env("SIPFORM_CONTROLLER_HTTP_MAX_CONNECTIONS", "32")
        .env("SIPFORM_CONTROLLER_HTTP_HEADER_TIMEOUT_MS", "500")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn the controller");
    let ctl = Ctl { child, port, log };
    eventually("the controller to listen", 20, || healthy(&ctl)).await;

    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..300 {
        slow.spawn(slow_client(port));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    eventually("/healthz to answer beside 300 slow clients", 60, || {
        healthy(&ctl)
    })
    .await;
    slow.abort_all();
    assert!(
        !ctl.log_text().contains("Too many open files"),
        "{}",
        ctl.log_text()
    );
    emu.shutdown().await;
}
