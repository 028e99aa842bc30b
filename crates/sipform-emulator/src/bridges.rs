//! `GET /api/bridges`: the SIP bridge of each phone line, and the calls in progress per agent,
//! which a test sets through `POST /__emulator/active-calls` (`{"<agentId>": n}`; 0 ends
//! them). Calls are not objects of the store: they are not snapshotted and a reset ends them.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{json, Value};

use super::store::Store;

/// The route, as requests are counted and faulted by it.
pub(crate) const ROUTE: &str = "/api/bridges";

/// The most agents calls can be set for (a test needs a few).
const MAX_AGENTS: usize = 100_000;

/// Calls in progress by agent id (agents with none are absent, as the server answers).
#[derive(Default)]
pub(crate) struct Calls(Mutex<BTreeMap<String, u64>>);

impl Calls {
    /// Sets the agents of `body` (`{"<agentId>": n}`) to their counts; other agents keep theirs.
    pub(crate) fn set(&self, body: &[u8]) -> Result<Value, String> {
        let wanted: BTreeMap<String, u64> = serde_json::from_slice(body)
            .map_err(|e| format!("expected {{\"<agentId>\": <calls>}}: {e}"))?;
        let mut calls = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (agent, n) in wanted {
            if n == 0 {
                calls.remove(&agent);
            } else if calls.len() < MAX_AGENTS || calls.contains_key(&agent) {
                calls.insert(agent, n);
            } else {
                return Err(format!("calls are set for at most {MAX_AGENTS} agents"));
            }
        }
        Ok(json!(*calls))
    }

    /// Every call ends.
    pub(crate) fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The answer of `GET /api/bridges`: one bridge per phone line, and `activeCalls`.
    pub(crate) fn answer(&self, store: &Store) -> String {
        let bridges: Vec<Value> = store
            .bridged_lines()
            .into_iter()
            .map(|(line, agent)| {
                json!({
                    "phoneLineId": line,
                    "agentId": agent,
                    "host": "127.0.0.1",
                    "wsUrl": format!("ws://127.0.0.1/bridge/{line}"),
                    // The emulator registers nothing with a SIP provider.
                    "sipRegistered": false,
                    "lastCodec": "PCMU",
                })
            })
            .collect();
        let calls = self.0.lock().unwrap_or_else(|e| e.into_inner());
        json!({"bridges": bridges, "activeCalls": *calls}).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_set_merged_and_ended() {
        let c = Calls::default();
        c.set(br#"{"a1": 2, "a2": 1}"#).unwrap();
        c.set(br#"{"a2": 0}"#).unwrap();
        let answer: Value = serde_json::from_str(&c.answer(&Store::default())).unwrap();
        assert_eq!(answer["activeCalls"], json!({"a1": 2}));
        assert_eq!(answer["bridges"], json!([]));
        assert!(c.set(br#"{"a1": -1}"#).is_err());
        assert!(c.set(b"[]").is_err());
        c.clear();
        let answer: Value = serde_json::from_str(&c.answer(&Store::default())).unwrap();
        assert_eq!(answer["activeCalls"], json!({}));
    }
}
