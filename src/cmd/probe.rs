//! `sipform probe [URL]`: exit 0 when an HTTP GET of URL answers 2xx within the timeout, 1
//! otherwise. The container image's `HEALTHCHECK` runs it against the controller's `/healthz`:
//! the runtime image holds no curl or wget, and sipform itself knows HTTP enough to ask.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(clap::Args)]
pub struct Args {
    /// A plain `http://` URL (the controller's health endpoint by default).
    #[arg(default_value = "http://127.0.0.1:9464/healthz")]
    pub url: String,
    /// How long to wait for the whole answer (e.g. 3s).
    #[arg(long, default_value = "3s", value_parser = sipform::config::parse_duration)]
    pub timeout: Duration,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (host, path) = split(&args.url)?;
    let status = tokio::time::timeout(args.timeout, get(host, path))
        .await
        .map_err(|_| anyhow::anyhow!("{}: no answer within {:?}", args.url, args.timeout))??;
    if (200..300).contains(&status) {
        println!("ok: {} answered {status}", args.url);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: {} answered {status}", args.url);
        Ok(ExitCode::FAILURE)
    }
}

/// `http://HOST[:PORT]/PATH` → ("HOST:PORT", "/PATH"). Only plain HTTP: the probe runs beside
/// the listener, which serves no TLS.
fn split(url: &str) -> anyhow::Result<(&str, &str)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: the probe takes a plain http:// URL"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    anyhow::ensure!(!host.is_empty(), "{url}: no host");
    Ok((host, path))
}

/// The status code of `GET path` on `host` (HTTP/1.0: the server closes after answering).
async fn get(host: &str, path: &str) -> anyhow::Result<u16> {
    let addr = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    // The status line is all the probe reads; a few hundred bytes hold it.
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("{addr}: not an HTTP answer"))?;
    Ok(status)
}
