//! Answer bodies, never trusted to be small or well-behaved: read with a running limit, an
//! error body read only when it says it is JSON and only its message kept (cut, control
//! characters replaced), and a body decoded with the route in its error.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// The answer bodies the whole run may hold at once, shared by every request of a client
/// (issue 25, item 12): a cap per answer alone let two answers just under it cost twice. It is
/// `server.max_answer_bytes` (256 MiB by default), counted in KiB; an answer waits for room
/// before it is read (or, without a `Content-Length`, as it grows).
#[derive(Clone)]
pub(super) struct AnswerBudget {
    room: Arc<Semaphore>,
    kib: u32,
}

impl AnswerBudget {
    pub(super) fn new(bytes: u64) -> AnswerBudget {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX >> 4)
            .max(1);
        AnswerBudget {
            room: Arc::new(Semaphore::new(kib as usize)),
            kib,
        }
    }

    /// The KiB `bytes` takes, at most the whole budget (a bigger answer is refused by the
    /// per-answer cap anyway).
    fn kib_of(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.kib)
    }

    /// Room for `bytes`, waiting until other answers are dropped.
    pub(super) async fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        self.room
            .clone()
            .acquire_many_owned(self.kib_of(bytes))
            .await
            .ok()
    }

    /// Grows `held` to cover `bytes`: at once if there is room, else by giving back what it
    /// held and waiting for the whole (never holding while waiting, so two growing answers
    /// cannot wait on each other).
    async fn grow(&self, held: &mut Option<OwnedSemaphorePermit>, bytes: usize) {
        let need = self.kib_of(bytes);
        let have = held.as_ref().map_or(0, |p| p.num_permits() as u32);
        if need <= have {
            return;
        }
        match self.room.clone().try_acquire_many_owned(need - have) {
            Ok(more) => match held {
                Some(p) => p.merge(more),
                None => *held = Some(more),
            },
            Err(_) => {
                *held = None;
                *held = self.reserve(bytes).await;
            }
        }
    }
}

/// An answer body and its room in the run's [`AnswerBudget`], given back when it is dropped.
pub(super) struct Answer {
    bytes: Vec<u8>,
    _room: Option<OwnedSemaphorePermit>,
}

impl Answer {
    /// The bytes, the room given back (for an answer parsed at once, a create's).
    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl std::ops::Deref for Answer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// The body, read chunk by chunk with a running limit: `None` as soon as it would exceed
/// `limit` bytes (or says it will, in `Content-Length`), so a huge answer is never held; and
/// within the run's `budget`, so several answers together are bounded too.
pub(super) async fn read_capped(
    mut resp: reqwest::Response,
    limit: u64,
    budget: Option<&AnswerBudget>,
) -> Result<Option<Answer>, reqwest::Error> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Ok(None);
    }
    let mut room = None;
    if let (Some(b), Some(n)) = (budget, resp.content_length()) {
        room = b.reserve(usize::try_from(n).unwrap_or(usize::MAX)).await;
    }
    // Sized once when the server says the length (within the cap): a list of 100,000 agents
    // grown by doubling would copy itself and hold up to twice its size meanwhile.
    let mut body = Vec::with_capacity(resp.content_length().map_or(0, |n| n as usize));
    while let Some(chunk) = resp.chunk().await? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        if let Some(b) = budget {
            b.grow(&mut room, body.len() + chunk.len()).await;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(Answer {
        bytes: body,
        _room: room,
    }))
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
        match read_capped(resp, ERROR_BODY_MAX_BYTES, None).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 25, item 12: two answers that together exceed the run's budget are never held at
    /// once: the second waits for the first to be dropped.
    #[tokio::test]
    async fn the_run_holds_at_most_its_budget_of_answers() {
        use futures::FutureExt;
        let budget = AnswerBudget::new(1024 * 1024);
        let first = budget.reserve(700 * 1024).await;
        assert!(first.is_some());
        let mut second = Box::pin(budget.reserve(700 * 1024));
        assert!(
            (&mut second).now_or_never().is_none(),
            "waits while the first is held"
        );
        drop(first);
        assert!(second.await.is_some(), "room once the first is dropped");
        // Growing answers (no Content-Length) never wait on each other holding room.
        let mut a = None;
        budget.grow(&mut a, 600 * 1024).await;
        drop(a);
        let mut b = None;
        budget.grow(&mut b, 900 * 1024).await;
        assert_eq!(b.map(|p| p.num_permits()), Some(900));
    }
}
