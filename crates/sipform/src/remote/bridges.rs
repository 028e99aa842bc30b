//! `GET /api/bridges` (account key): the calls in progress per agent, so an update never lands
//! on an agent in the middle of a call.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::Value;

use super::{Client, ClientError, Route};
use crate::model::ids::ObjectId;

/// The route (`sipform doctor` probes it when `windows.live_call_wait` is set).
pub const ROUTE: &str = "/api/bridges";

/// Calls in progress by agent; an agent absent has none (the contract's rule).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActiveCalls(BTreeMap<ObjectId, u64>);

impl ActiveCalls {
    /// Calls in progress on `agent`.
    pub fn of(&self, agent: &ObjectId) -> u64 {
        self.0.get(agent).copied().unwrap_or(0)
    }

    /// Reads `activeCalls` out of the answer. A missing map, or a count that is not a
    /// non-negative integer, makes the answer unusable (unknown is never read as idle); a key
    /// that is no server id names no agent of ours and is skipped.
    pub fn from_answer(answer: &serde_json::Map<String, Value>) -> Result<ActiveCalls, String> {
        let Some(Value::Object(calls)) = answer.get("activeCalls") else {
            return Err("no `activeCalls` object".into());
        };
        let mut out = BTreeMap::new();
        for (agent, n) in calls {
            let n = n
                .as_u64()
                .ok_or_else(|| format!("activeCalls of an agent is {n}, not a count"))?;
            if let Ok(id) = ObjectId::parse(agent) {
                out.insert(id, n);
            }
        }
        Ok(ActiveCalls(out))
    }
}

/// The account's calls in progress, by agent (the answer read within the client's size limit).
pub async fn active_calls(client: &Client) -> Result<ActiveCalls, ClientError> {
    let route = Route::new(ROUTE, &[]);
    let answer = client.get_one(&route).await?;
    ActiveCalls::from_answer(&answer).map_err(|message| ClientError::Decode {
        method: Method::GET,
        route: ROUTE.to_string(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<ActiveCalls, String> {
        ActiveCalls::from_answer(v.as_object().unwrap())
    }

    #[test]
    fn counts_are_read_and_absent_agents_have_none() {
        let c = read(json!({"bridges": [], "activeCalls": {"a1": 2, "a2": 0, "../x": 9}})).unwrap();
        assert_eq!(c.of(&ObjectId::parse("a1").unwrap()), 2);
        assert_eq!(c.of(&ObjectId::parse("a2").unwrap()), 0);
        assert_eq!(c.of(&ObjectId::parse("a3").unwrap()), 0);
    }

    #[test]
    fn an_answer_without_counts_is_unknown_not_idle() {
        assert!(read(json!({"bridges": []})).is_err());
        assert!(read(json!({"activeCalls": {"a1": "two"}})).is_err());
        assert!(read(json!({"activeCalls": {"a1": -1}})).is_err());
    }
}
