//! Answer bodies, never trusted to be small or well-behaved: read with a running limit, an
//! error body read only when it says it is JSON and only its message kept (cut, control
//! characters replaced), and a body decoded with the route in its error.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::error::ClientError;
use super::routes::Route;

/// An error body larger than this is not read: its message is at most 200 characters anyway.
pub(super) const ERROR_BODY_MAX_BYTES: u64 = 64 * 1024;

/// Whether the answer says it is JSON (`application/json`, `…+json`).
pub(super) fn is_json(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.to_ascii_lowercase().contains("json"))
}

/// The body, read chunk by chunk with a running limit: `None` as soon as it would exceed
/// `limit` bytes (or says it will, in `Content-Length`), so a huge answer is never held.
pub(super) async fn read_capped(
    mut resp: reqwest::Response,
    limit: u64,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Ok(None);
    }
    // Sized once when the server says the length (within the cap): a list of 100,000 agents
    // grown by doubling would copy itself and hold up to twice its size meanwhile.
    let mut body = Vec::with_capacity(resp.content_length().map_or(0, |n| n as usize));
    while let Some(chunk) = resp.chunk().await? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The `error` field of a JSON error body.
fn error_message(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(bytes)
        .ok()?
        .get("error")?
        .as_str()
        .map(str::to_string)
}

/// The message of an error answer: its JSON body's `error` field when it says it is JSON (an
/// HTML page is not read at all), else the status's reason; at most 200 characters.
pub(super) async fn error_text(resp: reqwest::Response) -> String {
    let status = resp.status();
    // Error bodies are `{"error": "…"}`; only that message is kept, never the rest.
    let message = if is_json(&resp) {
        match read_capped(resp, ERROR_BODY_MAX_BYTES).await {
            Ok(Some(bytes)) => error_message(&bytes),
            _ => None,
        }
    } else {
        None
    }
    .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    truncate(&message, 200)
}

/// The wait a `Retry-After` header asks for, in whole seconds (the API's form).
pub(super) fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// At most `max` characters of a message from the server, control characters (a terminal's
/// escape sequences) replaced, so it cannot flood or rewrite the screen.
fn truncate(s: &str, max: usize) -> String {
    let clean = |c: char| if c.is_control() { ' ' } else { c };
    if s.chars().count() <= max {
        s.chars().map(clean).collect()
    } else {
        let t: String = s.chars().take(max).map(clean).collect();
        format!("{t}…")
    }
}

/// An answer body parsed as `T`; no body is `None`.
pub(super) fn decode<T: serde::de::DeserializeOwned>(
    method: &Method,
    route: &Route,
    bytes: Option<&[u8]>,
) -> Result<Option<T>, ClientError> {
    bytes
        .map(|b| {
            serde_json::from_slice(b).map_err(|e| ClientError::Decode {
                method: method.clone(),
                route: route.template().to_string(),
                message: e.to_string(),
            })
        })
        .transpose()
}
