//! Call records: `GET /api/calls?from=&limit=` answers an agent's own calls to its Bearer
//! token (newest first, the contract's shape); `POST /__emulator/calls` records calls for an
//! agent, so a test can make a rollout's wave healthy or not.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::store::Store;

/// Calls kept per agent (the oldest go first).
const MAX_CALLS_PER_AGENT: usize = 10_000;

/// The largest `limit` served.
const MAX_LIMIT: usize = 1_000;

/// The outcomes the contract names.
const OUTCOMES: &[&str] = &[
    "completed",
    "abandoned",
    "error",
    "in_progress",
    "transferred",
    "no_balance",
];

/// Every agent's call records, oldest first.
#[derive(Default)]
pub(crate) struct CallLog {
    by_agent: HashMap<String, Vec<Value>>,
    seq: u64,
}

impl CallLog {
    /// `POST /__emulator/calls` with `{"agentId": id, "calls": [{outcome, …}]}`: each record
    /// gets the contract's fields it lacks (`id`, `startedAt` now, …). Answers how many.
    pub(crate) fn record(&mut self, store: &Store, body: &[u8]) -> Result<usize, String> {
        let body: Value =
            serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
        let agent = body
            .get("agentId")
            .and_then(Value::as_str)
            .ok_or("agentId (a string) is required")?;
        if !store.has_agent(agent) {
            return Err(format!("no agent {agent}"));
        }
        let calls = body
            .get("calls")
            .and_then(Value::as_array)
            .ok_or("calls (an array of call records) is required")?;
        let mut filled = Vec::with_capacity(calls.len());
        for c in calls {
            let Value::Object(c) = c else {
                return Err("each call record is an object".into());
            };
            filled.push(self.fill(c.clone())?);
        }
        let n = filled.len();
        let log = self.by_agent.entry(agent.to_string()).or_default();
        log.extend(filled);
        let excess = log.len().saturating_sub(MAX_CALLS_PER_AGENT);
        log.drain(..excess);
        Ok(n)
    }

    fn fill(&mut self, mut c: Map<String, Value>) -> Result<Value, String> {
        let outcome = c
            .get("outcome")
            .and_then(Value::as_str)
            .unwrap_or("completed");
        if !OUTCOMES.contains(&outcome) {
            return Err(format!("outcome {outcome:?} is not one of {OUTCOMES:?}"));
        }
        self.seq += 1;
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let defaults = [
            ("id", Value::from(format!("call-{}", self.seq))),
            ("callerNumber", Value::from("+33100000000")),
            ("outcome", Value::from(outcome)),
            ("toolCalls", Value::Array(Vec::new())),
            ("startedAt", Value::from(now.clone())),
            ("endedAt", Value::from(now)),
            ("durationSec", Value::from(30)),
            ("costTelecom", Value::from(0.01)),
            ("costAi", Value::from(0.02)),
            ("aiModel", Value::from("emulated")),
            ("inputTokens", Value::from(100)),
            ("outputTokens", Value::from(50)),
            ("transcript", Value::Array(Vec::new())),
            ("errorLog", Value::Null),
        ];
        for (k, v) in defaults {
            c.entry(k).or_insert(v);
        }
        Ok(Value::Object(c))
    }

    /// `GET /api/calls`: the calls of the agent whose `apiToken` is `token`, started at or
    /// after `from`, newest first, at most `limit`. `Err((status, message))` otherwise.
    pub(crate) fn list(
        &self,
        store: &Store,
        token: Option<&str>,
        from: Option<&str>,
        limit: Option<&str>,
    ) -> Result<String, (u16, String)> {
        let agent = token
            .and_then(|t| store.agent_with_token(t))
            .ok_or((401, "missing or unknown Bearer token".to_string()))?;
        let from = match from {
            Some(f) => Some(
                DateTime::parse_from_rfc3339(f)
                    .map_err(|e| (400, format!("from: not an ISO 8601 time: {e}")))?,
            ),
            None => None,
        };
        let limit = match limit {
            Some(l) => l
                .parse::<usize>()
                .map_err(|_| (400, "limit: not a number".to_string()))?,
            None => 50,
        }
        .min(MAX_LIMIT);
        let started = |c: &Value| {
            c.get("startedAt")
                .and_then(Value::as_str)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        };
        let calls: Vec<&Value> = self
            .by_agent
            .get(&agent)
            .map(|v| v.iter().rev().collect())
            .unwrap_or_default();
        let kept: Vec<&Value> = calls
            .into_iter()
            .filter(|c| from.is_none_or(|f| started(c).is_none_or(|s| s >= f)))
            .take(limit)
            .collect();
        serde_json::to_string(&kept).map_err(|e| (500, e.to_string()))
    }

    pub(crate) fn clear(&mut self) {
        *self = CallLog::default();
    }
}
