//! The health gate between waves, from what sip-agent-server exposes: the call records of the
//! wave's agents since their change (`GET /api/calls` with each agent's own Bearer token).
//! Reading is I/O ([`observe`]); judging is pure ([`judge`]).

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use serde_json::Value;

use crate::model::ids::AgentId;
use crate::model::secret::Secret;
use crate::model::spec::HealthPolicy;
use crate::remote::routes::Route;
use crate::remote::Client;

/// Call records read per agent at most (newest first): a hostile server cannot make the gate
/// read without end.
pub const CALLS_PER_AGENT: usize = 200;

/// Agents read at once.
const AT_ONCE: usize = 8;

/// What the calls of a wave's agents showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calls {
    /// Finished calls (anything but `in_progress`).
    pub observed: u64,
    /// Calls with outcome `error`.
    pub errors: u64,
    /// Calls with an `errorLog`, or a tool call that reports an error.
    pub tool_errors: u64,
    /// Agents whose calls could not be read (a non-2xx is unknown, not healthy), with why.
    pub unknown: Vec<(AgentId, String)>,
}

/// The gate's verdict on a wave.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    Healthy,
    /// Not enough known yet: the rollout waits (paused, not halted).
    Waiting(String),
    /// Over a threshold: the rollout halts.
    Unhealthy(String),
}

/// Judges `calls` against the policy. Unknown agents keep the wave waiting: a server that
/// does not answer never counts as healthy.
pub fn judge(policy: &HealthPolicy, calls: &Calls) -> Health {
    let rate = |n: u64| n as f64 / calls.observed.max(1) as f64;
    if calls.observed > 0 && rate(calls.errors) > policy.max_error_rate {
        return Health::Unhealthy(format!(
            "{} of {} calls ended in error ({:.0}% > max_error_rate {:.0}%)",
            calls.errors,
            calls.observed,
            rate(calls.errors) * 100.0,
            policy.max_error_rate * 100.0
        ));
    }
    if calls.observed > 0 && rate(calls.tool_errors) > policy.max_tool_error_rate {
        return Health::Unhealthy(format!(
            "{} of {} calls had a tool error ({:.0}% > max_tool_error_rate {:.0}%)",
            calls.tool_errors,
            calls.observed,
            rate(calls.tool_errors) * 100.0,
            policy.max_tool_error_rate * 100.0
        ));
    }
    if let Some((agent, why)) = calls.unknown.first() {
        return Health::Waiting(format!(
            "the calls of {} agent(s) are unknown (agent {agent}: {why})",
            calls.unknown.len()
        ));
    }
    if calls.observed < u64::from(policy.min_calls) {
        return Health::Waiting(format!(
            "waiting for calls: {} of min_calls {} observed",
            calls.observed, policy.min_calls
        ));
    }
    Health::Healthy
}

/// Reads the calls of `agents` since `since`: each agent's token (`GET /api/agents/:id`, or
/// the one state keeps), then its calls.
pub async fn observe(
    client: &Client,
    agents: Vec<(AgentId, Option<Secret<String>>)>,
    since: DateTime<Utc>,
) -> Calls {
    let from = since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let results: Vec<(AgentId, Result<Vec<Value>, String>)> = stream::iter(agents)
        .map(|(agent, token)| {
            let from = from.clone();
            async move {
                let calls = agent_calls(client, &agent, token, &from).await;
                (agent, calls)
            }
        })
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    let mut out = Calls::default();
    for (agent, result) in results {
        match result {
            Ok(records) => count(&mut out, &records, since),
            Err(why) => out.unknown.push((agent, why)),
        }
    }
    out.unknown.sort();
    out
}

async fn agent_calls(
    client: &Client,
    agent: &AgentId,
    token: Option<Secret<String>>,
    from: &str,
) -> Result<Vec<Value>, String> {
    let token = match token {
        Some(t) => t,
        None => {
            let one = client
                .get_one(&Route::new("/api/agents/:id", &[agent.as_str()]))
                .await
                .map_err(|e| e.to_string())?;
            match one.get("apiToken").and_then(Value::as_str) {
                Some(t) if !t.is_empty() => Secret::new(t.to_string()),
                _ => return Err("the server returned no apiToken".into()),
            }
        }
    };
    let route = Route::new("/api/calls", &[])
        .query("from", from)
        .query("limit", &CALLS_PER_AGENT.to_string());
    match client.get_as_agent(&route, &token).await {
        Ok(Value::Array(records)) => Ok(records.into_iter().take(CALLS_PER_AGENT).collect()),
        Ok(_) => Err("GET /api/calls answered something other than an array".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Adds one agent's records (those started at or after `since`) to `out`.
fn count(out: &mut Calls, records: &[Value], since: DateTime<Utc>) {
    for r in records {
        let started = r
            .get("startedAt")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
        if started.is_some_and(|t| t < since) {
            continue;
        }
        let outcome = r.get("outcome").and_then(Value::as_str).unwrap_or("");
        if outcome == "in_progress" {
            continue;
        }
        out.observed += 1;
        if outcome == "error" {
            out.errors += 1;
        }
        let logged = r.get("errorLog").is_some_and(|e| !e.is_null());
        let tool_failed = r
            .get("toolCalls")
            .and_then(Value::as_array)
            .is_some_and(|t| {
                t.iter()
                    .any(|c| c.get("error").is_some_and(|e| !e.is_null()))
            });
        if logged || tool_failed {
            out.tool_errors += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min_calls: u32, max_error_rate: f64) -> HealthPolicy {
        HealthPolicy {
            min_calls,
            max_error_rate,
            max_tool_error_rate: 1.0,
        }
    }

    #[test]
    fn records_are_counted_since_the_change() {
        let since: DateTime<Utc> = "2026-01-01T10:00:00Z".parse().unwrap();
        let records = serde_json::json!([
            {"outcome": "error", "startedAt": "2026-01-01T10:05:00Z", "errorLog": "boom"},
            {"outcome": "completed", "startedAt": "2026-01-01T10:04:00Z",
             "toolCalls": [{"name": "x", "error": "timeout"}]},
            {"outcome": "in_progress", "startedAt": "2026-01-01T10:06:00Z"},
            {"outcome": "error", "startedAt": "2026-01-01T09:00:00Z"}
        ]);
        let mut out = Calls::default();
        count(&mut out, records.as_array().unwrap(), since);
        assert_eq!((out.observed, out.errors, out.tool_errors), (2, 1, 2));
    }

    #[test]
    fn error_rate_over_the_threshold_is_unhealthy() {
        let calls = Calls {
            observed: 4,
            errors: 3,
            ..Calls::default()
        };
        let Health::Unhealthy(why) = judge(&policy(3, 0.5), &calls) else {
            panic!("expected unhealthy");
        };
        assert!(why.contains("3 of 4 calls ended in error"), "{why}");
        assert_eq!(judge(&policy(3, 0.8), &calls), Health::Healthy);
    }

    #[test]
    fn too_few_calls_or_unknown_agents_wait() {
        let few = Calls {
            observed: 1,
            ..Calls::default()
        };
        assert!(
            matches!(judge(&policy(3, 0.5), &few), Health::Waiting(w) if w.contains("1 of min_calls 3"))
        );
        let unknown = Calls {
            observed: 10,
            unknown: vec![(AgentId::new("a1"), "HTTP 500".into())],
            ..Calls::default()
        };
        assert!(
            matches!(judge(&policy(3, 0.5), &unknown), Health::Waiting(w) if w.contains("unknown"))
        );
    }
}
