//! `sipform emulator` as a user runs it: the real binary on a random port.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Kills the child even when an assertion fails first.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn emulator_binary_prints_its_address_and_serves() {
    let child = Command::new(env!("CARGO_BIN_EXE_sipform"))
        .args(["emulator", "--port", "0", "--api-key", "acc_cli", "-vv"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipform starts");
    let mut child = Kill(child);
    let stdout = child.0.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("a line");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, body, unauthorized) = rt.block_on(async {
        let client = reqwest::Client::new();
        let ok = client
            .get(format!("{base}/api/accounts"))
            .header("X-API-Key", "acc_cli")
            .send()
            .await
            .expect("the emulator answers");
        let status = ok.status().as_u16();
        let body = ok.text().await.unwrap();
        let no_key = client
            .get(format!("{base}/api/accounts"))
            .send()
            .await
            .unwrap();
        (status, body, no_key.status().as_u16())
    });
    assert_eq!(status, 200);
    assert_eq!(body, "[]");
    assert_eq!(unauthorized, 401);

    let _ = child.0.kill();
    let out = child.0.wait_with_output_stderr();
    assert!(
        out.contains("emulator request"),
        "one debug line per request: {out}"
    );
    assert!(
        !out.contains("acc_cli"),
        "the api key never reaches the logs"
    );
    assert!(!out.contains("beyond loopback"), "{out}");
}

/// Listening beyond loopback is said on stderr: the admin routes serve every secret
/// (issue 25 #9).
#[test]
fn an_emulator_beyond_loopback_is_warned_about() {
    let child = Command::new(env!("CARGO_BIN_EXE_sipform"))
        .args(["emulator", "--port", "0", "--bind", "0.0.0.0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipform starts");
    let mut child = Kill(child);
    let stdout = child.0.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("a line");
    assert!(line.starts_with("listening on "), "{line}");
    let _ = child.0.kill();
    let out = child.0.wait_with_output_stderr();
    assert!(
        out.contains("beyond loopback") && out.contains("no --api-key"),
        "{out}"
    );
}

trait StderrAfterKill {
    fn wait_with_output_stderr(&mut self) -> String;
}

impl StderrAfterKill for Child {
    fn wait_with_output_stderr(&mut self) -> String {
        let _ = self.wait();
        let mut s = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    }
}
