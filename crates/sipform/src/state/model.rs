//! The state model: which remote ids belong to which restaurant, and the [`Change`]s apply
//! learns. Plain data with no I/O, so every backend stores the same thing and tests need none.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::ids::{AccountId, AgentId, FinalCustomerId, RestaurantId, ToolId};
use crate::model::secret::Secret;

/// Version of the state format this build reads and writes. A newer file is refused, never
/// rewritten in an older shape.
pub const STATE_FORMAT_VERSION: u32 = 1;

/// Everything sipform knows it manages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct State {
    /// Format version of this document.
    pub version: u32,
    /// Identifies one project's history; a saved plan or a migration from another lineage is
    /// refused.
    pub lineage: Uuid,
    /// Bumped on every write; a saved plan made at another serial is stale.
    pub serial: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<AccountId>,
    #[serde(default)]
    pub restaurants: BTreeMap<RestaurantId, RestaurantState>,
}

/// One restaurant's remote ids.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestaurantState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_customer_id: Option<FinalCustomerId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    /// Tool ids by tool name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, ToolId>,
    /// The agent's Bearer token; present only when `store_tokens` is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token: Option<Secret<String>>,
}

impl RestaurantState {
    /// Whether nothing is left to remember: such an entry is dropped rather than stored.
    pub fn is_empty(&self) -> bool {
        self.final_customer_id.is_none()
            && self.agent_id.is_none()
            && self.tools.is_empty()
            && self.api_token.is_none()
    }
}

/// One fact learned by apply. `None` ids mean "deleted".
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Account(AccountId),
    FinalCustomer {
        restaurant: RestaurantId,
        id: Option<FinalCustomerId>,
    },
    Agent {
        restaurant: RestaurantId,
        id: Option<AgentId>,
        /// Tokens the server returned; stored only where configured, never printed.
        tokens: Option<AgentTokens>,
    },
    Tool {
        restaurant: RestaurantId,
        name: String,
        id: Option<ToolId>,
    },
}

impl Change {
    /// The restaurant the change belongs to (`None` for the project's account): backends that
    /// store rows write only these.
    pub fn restaurant(&self) -> Option<&RestaurantId> {
        match self {
            Change::Account(_) => None,
            Change::FinalCustomer { restaurant, .. }
            | Change::Agent { restaurant, .. }
            | Change::Tool { restaurant, .. } => Some(restaurant),
        }
    }
}

/// The agent's two tokens, as the server returned them.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentTokens {
    pub api_token: Secret<String>,
    pub public_token: Secret<String>,
}

impl State {
    /// A new, empty history.
    pub fn new() -> Self {
        State {
            version: STATE_FORMAT_VERSION,
            lineage: Uuid::new_v4(),
            serial: 0,
            account_id: None,
            restaurants: BTreeMap::new(),
        }
    }

    /// Applies one change in memory. `store_tokens` decides whether the agent token is kept.
    pub fn apply(&mut self, change: &Change, store_tokens: bool) {
        match change {
            Change::Account(id) => self.account_id = Some(id.clone()),
            Change::FinalCustomer { restaurant, id } => {
                self.entry(restaurant).final_customer_id = id.clone();
            }
            Change::Agent {
                restaurant,
                id,
                tokens,
            } => {
                let e = self.entry(restaurant);
                e.agent_id = id.clone();
                if id.is_none() {
                    // The server deletes an agent's tools with it.
                    e.tools.clear();
                    e.api_token = None;
                } else if let Some(t) = tokens {
                    e.api_token = store_tokens.then(|| t.api_token.clone());
                }
            }
            Change::Tool {
                restaurant,
                name,
                id,
            } => {
                let e = self.entry(restaurant);
                match id {
                    Some(id) => {
                        e.tools.insert(name.clone(), id.clone());
                    }
                    None => {
                        e.tools.remove(name);
                    }
                }
            }
        }
        if let Some(r) = change.restaurant() {
            if self
                .restaurants
                .get(r)
                .is_some_and(RestaurantState::is_empty)
            {
                self.restaurants.remove(r);
            }
        }
    }

    /// The restaurants state holds ids for: what a reader of the platform's table must keep
    /// even when their row no longer says so (a crash may have lost the write-back).
    pub fn restaurant_ids(&self) -> BTreeSet<RestaurantId> {
        self.restaurants.keys().cloned().collect()
    }

    fn entry(&mut self, r: &RestaurantId) -> &mut RestaurantState {
        self.restaurants.entry(r.clone()).or_default()
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rid() -> RestaurantId {
        RestaurantId::new("r1")
    }

    #[test]
    fn deleting_an_agent_forgets_its_tools_and_token() {
        let mut s = State::new();
        let tokens = AgentTokens {
            api_token: Secret::new("t".into()),
            public_token: Secret::new("pk_t".into()),
        };
        s.apply(
            &Change::Agent {
                restaurant: rid(),
                id: Some(AgentId::new("a")),
                tokens: Some(tokens),
            },
            true,
        );
        s.apply(
            &Change::Tool {
                restaurant: rid(),
                name: "end_call".into(),
                id: Some(ToolId::new("t1")),
            },
            true,
        );
        assert!(s.restaurants[&rid()].api_token.is_some());
        s.apply(
            &Change::Agent {
                restaurant: rid(),
                id: None,
                tokens: None,
            },
            true,
        );
        assert!(!s.restaurants.contains_key(&rid()));
    }

    #[test]
    fn tokens_are_kept_only_when_asked() {
        let mut s = State::new();
        let c = Change::Agent {
            restaurant: rid(),
            id: Some(AgentId::new("a")),
            tokens: Some(AgentTokens {
                api_token: Secret::new("t".into()),
                public_token: Secret::new("pk".into()),
            }),
        };
        s.apply(&c, false);
        assert!(s.restaurants[&rid()].api_token.is_none());
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("\"t\""));
    }
}
