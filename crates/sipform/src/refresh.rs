//! refresh: read what exists on the server, in as few requests as the API allows.
//!
//! Three list calls (accounts, final customers, agents of the account), then one tool list per
//! agent that matters, in parallel (bounded by the client's slots).

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::Value;

use crate::client::{Client, ClientError, Object};
use crate::model::ids::{AccountId, AgentId, RestaurantId};
use crate::model::spec::Desired;
use crate::state::State;

/// The server's objects, as read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Actual {
    /// The account found (by state id, else by name); `None` when it must be created.
    pub account: Option<Object>,
    pub final_customers: Vec<Object>,
    pub agents: Vec<Object>,
    /// Tool lists of the agents that matter, by agent id.
    pub tools: BTreeMap<AgentId, Vec<Object>>,
}

/// `id` of a server object.
pub fn id_of(o: &Object) -> Option<&str> {
    o.get("id").and_then(Value::as_str)
}

/// `config.restaurantId` of an agent.
pub fn restaurant_of(agent: &Object) -> Option<&str> {
    agent
        .get("config")
        .and_then(|c| c.get("restaurantId"))
        .and_then(Value::as_str)
}

/// Reads account, final customers, agents, and the tools of every agent that belongs to a
/// restaurant in scope (desired or in state). `scope` limits restaurants (`--target`).
pub async fn refresh(
    client: &Client,
    account_name: &str,
    desired: &Desired,
    state: &State,
    scope: Option<&BTreeSet<RestaurantId>>,
) -> Result<Actual, ClientError> {
    let accounts = client.list_accounts().await?;
    let account = state
        .account_id
        .as_ref()
        .and_then(|id| accounts.iter().find(|a| id_of(a) == Some(id.as_str())))
        .or_else(|| {
            accounts
                .iter()
                .find(|a| a.get("name").and_then(Value::as_str) == Some(account_name))
        })
        .cloned();
    let Some(account) = account else {
        return Ok(Actual::default());
    };
    let account_id = AccountId::new(id_of(&account).unwrap_or_default());
    let (final_customers, agents) = tokio::try_join!(
        client.list_final_customers(account_id.as_str()),
        client.list_agents(account_id.as_str())
    )?;

    let in_scope = |r: &str| scope.is_none_or(|s| s.contains(&RestaurantId::new(r)));
    let wanted: BTreeSet<String> = desired
        .restaurants
        .iter()
        .map(|r| r.id.as_str().to_string())
        .chain(state.restaurants.keys().map(|r| r.as_str().to_string()))
        .filter(|r| in_scope(r))
        .collect();
    let state_agents: BTreeSet<&str> = state
        .restaurants
        .iter()
        .filter(|(r, _)| in_scope(r.as_str()))
        .filter_map(|(_, s)| s.agent_id.as_ref().map(|a| a.as_str()))
        .collect();
    let agent_ids: Vec<String> = agents
        .iter()
        .filter(|a| {
            let id = id_of(a).unwrap_or_default();
            state_agents.contains(id) || restaurant_of(a).is_some_and(|r| wanted.contains(r))
        })
        .filter_map(|a| id_of(a).map(str::to_string))
        .collect();

    let tools: BTreeMap<AgentId, Vec<Object>> = stream::iter(agent_ids)
        .map(|id| async move {
            let list = client.list_tools(&id).await?;
            Ok::<_, ClientError>((AgentId::new(id), list))
        })
        .buffer_unordered(64)
        .try_collect()
        .await?;

    Ok(Actual {
        account: Some(account),
        final_customers,
        agents,
        tools,
    })
}

/// A digest of what was read, to tell whether the server changed between plan and apply.
/// Tokens are left out (they are secrets and not ours to compare); keys are sorted.
pub fn fingerprint(actual: &Actual) -> String {
    let mut h = Fnv::new();
    let mut feed = |o: &Object| {
        let mut clean = o.clone();
        for k in ["apiToken", "publicToken", "sipPassword"] {
            clean.remove(k);
        }
        h.write(canonical(&Value::Object(clean)).as_bytes());
        h.write(b"\n");
    };
    if let Some(a) = &actual.account {
        feed(a);
    }
    for o in sorted(&actual.final_customers) {
        feed(o);
    }
    for o in sorted(&actual.agents) {
        feed(o);
    }
    for list in actual.tools.values() {
        for o in sorted(list) {
            feed(o);
        }
    }
    format!("{:016x}", h.0)
}

fn sorted(list: &[Object]) -> Vec<&Object> {
    let mut v: Vec<&Object> = list.iter().collect();
    v.sort_by(|a, b| id_of(a).cmp(&id_of(b)));
    v
}

/// JSON with object keys sorted, for hashing.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, String> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            let inner: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), v))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// FNV-1a, 64 bits: stable across builds, unlike `DefaultHasher`.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        match v {
            Value::Object(o) => o,
            _ => unreachable!(),
        }
    }

    #[test]
    fn fingerprint_ignores_key_order_and_tokens_but_not_values() {
        let a = Actual {
            account: Some(obj(json!({"id": "1", "name": "A"}))),
            agents: vec![obj(json!({"id": "x", "aiVoice": "sage", "apiToken": "t1"}))],
            ..Default::default()
        };
        let mut b = a.clone();
        b.account = Some(obj(json!({"name": "A", "id": "1"})));
        b.agents = vec![obj(json!({"aiVoice": "sage", "id": "x", "apiToken": "t2"}))];
        assert_eq!(fingerprint(&a), fingerprint(&b));
        b.agents = vec![obj(json!({"aiVoice": "alloy", "id": "x"}))];
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }
}
