//! The state model: which remote ids belong to which restaurant, and the [`Change`]s apply
//! learns. Plain data with no I/O, so every backend stores the same thing and tests need none.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub(crate) use crate::model::revision::AppliedRevision;

use crate::model::ids::{AccountId, AgentId, FinalCustomerId, ObjectId, RestaurantId, ToolId};
use crate::model::interned::Interned;
use crate::model::rollout::RolloutRecord;
use crate::model::secret::Secret;

/// Version of the state format this build reads and writes. A newer file is refused, never
/// rewritten in an older shape.
///
/// Version 2 added the owning [`ProjectRef`] and the per-kind [`RestaurantState::objects`];
/// version 3 the revision that last reconciled each restaurant; version 4 the salted digest of
/// the tokens written back to each restaurant's platform row ([`RestaurantState::token_digest`]);
/// version 5 the rollout record ([`State::rollout`]), kept before in a file beside state.
/// A version-1 document stays version 1 (byte for byte) until one of them is written into it;
/// then it becomes version 2, so that an older sipform says "upgrade" instead of "corrupt".
/// A small map kept as a sorted vector of pairs: a restaurant's 12 tools are one allocation
/// where a `BTreeMap` takes three nodes (state of 10,000 restaurants: about 20 MB less). Same
/// order, same JSON object.
pub(crate) type SmallMap<K, V> = litemap::LiteMap<K, V>;

pub const STATE_FORMAT_VERSION: u32 = 5;

/// The first format version that may hold a project or generic objects.
const FORMAT_WITH_PROJECT_AND_OBJECTS: u32 = 2;

/// The first format version that may hold a restaurant's [`RestaurantState::revision`]: an
/// older sipform reading one says "upgrade", not "corrupt".
const FORMAT_WITH_REVISIONS: u32 = 3;

/// The first format version that may hold a restaurant's [`RestaurantState::token_digest`].
const FORMAT_WITH_TOKEN_DIGESTS: u32 = 4;

/// The first format version that may hold a [`State::rollout`] record.
const FORMAT_WITH_ROLLOUT: u32 = 5;

/// The project a state belongs to: `sipform.yaml`'s `project:` id (or, when it sets none, its
/// account name) and its account name. A run opening state recorded for another project is
/// refused, so two projects pointed at one backend never read each other's ids; databases
/// keep several projects side by side, keyed by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectRef {
    /// The project's identity: `project:`, else the account name.
    pub id: String,
    /// The account it manages, part of the binding: the same project id with another account
    /// is another project (e.g. a copy pointed at a staging account).
    pub account: String,
}

impl ProjectRef {
    pub fn new(id: impl Into<String>, account: impl Into<String>) -> Self {
        ProjectRef {
            id: id.into(),
            account: account.into(),
        }
    }

    /// `project:` when set, else the account name (see [`ProjectRef::id`]).
    pub fn of(project: Option<&str>, account: &str) -> Self {
        ProjectRef::new(project.unwrap_or(account), account)
    }
}

impl std::fmt::Display for ProjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "project {} (account {})", self.id, self.account)
    }
}

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
    /// The project this state belongs to; `None` in state written before projects were
    /// recorded, which the first project to open it adopts (see [`State::bind`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<ProjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<AccountId>,
    #[serde(default)]
    pub restaurants: BTreeMap<RestaurantId, RestaurantState>,
    /// The last rollout (`rollout:` of `sipform.yaml`), in progress or ended: in state so
    /// every run and controller sharing this state reads and fences it like the ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Box<RolloutRecord>>,
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
    #[serde(default, skip_serializing_if = "SmallMap::is_empty")]
    pub tools: SmallMap<Interned, ToolId>,
    /// The agent's Bearer token; present only when `store_tokens` is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token: Option<Secret<String>>,
    /// Ids of every other kind (kind name → key → id): the slot a new resource kind records
    /// its objects in without a field, column or [`Change`] variant of its own. They hang
    /// under the restaurant's final customer or agent, so deleting either forgets them all.
    #[serde(default, skip_serializing_if = "SmallMap::is_empty")]
    pub objects: SmallMap<String, SmallMap<String, ObjectId>>,
    /// `sipform suspend`: plan, apply and the controller leave this restaurant as it is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspended: bool,
    /// The configuration revision that last reconciled it (applied or checked it): what keeps
    /// an older writer from going back (`--allow-rollback`). Not an id: an entry holding
    /// nothing else is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<AppliedRevision>,
    /// A salted digest ([`token_digest`]) of the agent's two tokens as the server last gave
    /// them, which the write-back puts in the platform's row: never the tokens themselves. It
    /// lets any run (a fresh `apply`, not only the process that wrote them) tell that the row's
    /// tokens were edited. `None` in state written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_digest: Option<String>,
}

impl RestaurantState {
    /// Whether nothing is left to remember: such an entry is dropped rather than stored.
    pub fn is_empty(&self) -> bool {
        self.final_customer_id.is_none()
            && self.agent_id.is_none()
            && self.tools.is_empty()
            && self.api_token.is_none()
            && self.objects.is_empty()
            && !self.suspended
    }

    /// The id recorded for `key` of the kind named `kind`, in [`RestaurantState::objects`].
    pub fn object(&self, kind: &str, key: &str) -> Option<&ObjectId> {
        self.objects.get(kind).and_then(|m| m.get(key))
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
    /// An object of any other kind (its [`RestaurantState::objects`] slot): `kind` is the
    /// kind's name, `key` the object's key within the restaurant. `None` forgets it.
    Object {
        restaurant: RestaurantId,
        kind: String,
        key: String,
        id: Option<ObjectId>,
    },
    /// `sipform suspend` / `resume`: plan, apply and the controller leave it alone while set.
    Suspended {
        restaurant: RestaurantId,
        suspended: bool,
    },
    /// The revision that reconciled a restaurant state holds ids for (none held: ignored).
    Revision {
        restaurant: RestaurantId,
        revision: AppliedRevision,
    },
    /// The rollout record, replaced whole (it is small: [`crate::model::rollout::MAX_RECORD_BYTES`]).
    Rollout(Box<RolloutRecord>),
}

impl Change {
    /// The restaurant the change belongs to (`None` for the project's account): backends that
    /// store rows write only these.
    pub fn restaurant(&self) -> Option<&RestaurantId> {
        match self {
            Change::Account(_) | Change::Rollout(_) => None,
            Change::FinalCustomer { restaurant, .. }
            | Change::Agent { restaurant, .. }
            | Change::Tool { restaurant, .. }
            | Change::Object { restaurant, .. }
            | Change::Suspended { restaurant, .. }
            | Change::Revision { restaurant, .. } => Some(restaurant),
        }
    }
}

/// The salted digest state keeps of `tokens`, the agent's tokens written back to `restaurant`'s
/// platform row: `sha256:` and the hex SHA-256 of a domain tag, the state's lineage and the
/// restaurant id (the salt: the same tokens digest differently in another history or row),
/// then both tokens, each field length-prefixed. Tokens are long random strings, so the digest
/// reveals nothing a guess could confirm cheaply.
pub fn token_digest(lineage: &Uuid, restaurant: &RestaurantId, tokens: &AgentTokens) -> String {
    token_digest_of(
        lineage,
        restaurant.as_str(),
        tokens.api_token.expose(),
        tokens.public_token.expose(),
    )
}

/// [`token_digest`] of a row's two token columns.
pub fn token_digest_of(lineage: &Uuid, restaurant: &str, api: &str, public: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"sipform token digest v1\0");
    h.update(lineage.as_bytes());
    for field in [restaurant, api, public] {
        h.update((field.len() as u64).to_le_bytes());
        h.update(field.as_bytes());
    }
    format!("sha256:{}", hex::encode(h.finalize()))
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
            project: None,
            account_id: None,
            restaurants: BTreeMap::new(),
            rollout: None,
        }
    }

    /// Records that this state belongs to `project` (adopting state that recorded none).
    /// Callers check first that it recorded no other project.
    pub fn bind(&mut self, project: &ProjectRef) {
        if self.project.as_ref() != Some(project) {
            self.project = Some(project.clone());
            self.version = self.version.max(FORMAT_WITH_PROJECT_AND_OBJECTS);
        }
    }

    /// Applies one change in memory. `store_tokens` decides whether the agent token is kept.
    ///
    /// Deleting a restaurant's agent or final customer also forgets its generic
    /// [`RestaurantState::objects`]: the server deletes an agent's sub-objects with it, and
    /// whatever hung under a final customer that is kept on the server is found again by its
    /// key on the next plan (adopted, not duplicated), so forgetting is always safe.
    pub fn apply(&mut self, change: &Change, store_tokens: bool) {
        match change {
            Change::Account(id) => self.account_id = Some(id.clone()),
            Change::FinalCustomer { restaurant, id } => {
                let e = self.entry(restaurant);
                e.final_customer_id = id.clone();
                if id.is_none() {
                    e.objects.clear();
                }
            }
            Change::Agent {
                restaurant,
                id,
                tokens,
            } => {
                let digest = match (id, tokens) {
                    (Some(_), Some(t)) => Some(token_digest(&self.lineage, restaurant, t)),
                    _ => None,
                };
                let e = self.entry(restaurant);
                e.agent_id = id.clone();
                if id.is_none() {
                    // The server deletes an agent's tools and other sub-objects with it.
                    e.tools.clear();
                    e.api_token = None;
                    e.objects.clear();
                    e.token_digest = None;
                } else if let Some(t) = tokens {
                    e.api_token = store_tokens.then(|| t.api_token.clone());
                    e.token_digest = digest;
                    self.version = self.version.max(FORMAT_WITH_TOKEN_DIGESTS);
                }
            }
            Change::Tool {
                restaurant,
                name,
                id,
            } => {
                let tools = &mut self.entry(restaurant).tools;
                match id {
                    Some(id) => tools.insert(Interned::new(name), id.clone()),
                    None => tools.remove(name.as_str()),
                };
            }
            Change::Object {
                restaurant,
                kind,
                key,
                id,
            } => self.apply_object(restaurant, kind, key, id.as_ref()),
            Change::Suspended {
                restaurant,
                suspended,
            } => self.entry(restaurant).suspended = *suspended,
            Change::Revision {
                restaurant,
                revision,
            } => {
                if let Some(e) = self.restaurants.get_mut(restaurant) {
                    e.revision = Some(revision.clone());
                    self.version = self.version.max(FORMAT_WITH_REVISIONS);
                }
            }
            Change::Rollout(record) => {
                self.rollout = Some(record.clone());
                self.version = self.version.max(FORMAT_WITH_ROLLOUT);
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

    /// [`Change::Object`]: one generic object recorded (`Some`) or forgotten (`None`).
    fn apply_object(
        &mut self,
        restaurant: &RestaurantId,
        kind: &str,
        key: &str,
        id: Option<&ObjectId>,
    ) {
        let e = self.entry(restaurant);
        match id {
            Some(id) => {
                e.objects
                    .entry(kind.to_string())
                    .or_default()
                    .insert(key.to_string(), id.clone());
                self.version = self.version.max(FORMAT_WITH_PROJECT_AND_OBJECTS);
            }
            None => {
                if let Some(of_kind) = e.objects.get_mut(kind) {
                    of_kind.remove(key);
                    if of_kind.is_empty() {
                        e.objects.remove(kind);
                    }
                }
            }
        }
    }

    /// The restaurants `sipform suspend` set aside: never planned, applied or reconciled.
    pub fn suspended(&self) -> BTreeSet<RestaurantId> {
        self.restaurants
            .iter()
            .filter(|(_, r)| r.suspended)
            .map(|(id, _)| id.clone())
            .collect()
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

    fn note(key: &str, id: Option<&str>) -> Change {
        Change::Object {
            restaurant: rid(),
            kind: "note".into(),
            key: key.into(),
            id: id.map(|i| ObjectId::parse(i).unwrap()),
        }
    }

    #[test]
    fn objects_are_recorded_forgotten_and_go_with_the_agent_or_final_customer() {
        let mut s = State::new();
        s.apply(&note("welcome", Some("n1")), false);
        assert_eq!(
            s.restaurants[&rid()]
                .object("note", "welcome")
                .map(ObjectId::as_str),
            Some("n1")
        );
        s.apply(&note("welcome", None), false);
        assert!(s.restaurants.is_empty(), "nothing left: the entry goes");

        for gone in [
            Change::Agent {
                restaurant: rid(),
                id: None,
                tokens: None,
            },
            Change::FinalCustomer {
                restaurant: rid(),
                id: None,
            },
        ] {
            s.apply(
                &Change::FinalCustomer {
                    restaurant: rid(),
                    id: Some(FinalCustomerId::new("f")),
                },
                false,
            );
            s.apply(&note("welcome", Some("n1")), false);
            s.apply(&gone, false);
            assert!(
                s.restaurants
                    .get(&rid())
                    .is_none_or(|r| r.objects.is_empty()),
                "{gone:?}"
            );
        }
    }

    #[test]
    fn a_version_1_state_keeps_its_shape_until_it_holds_something_new() {
        let text = r#"{"version":1,"lineage":"6f1c2a4e-0000-4000-8000-000000000001","serial":3,"restaurants":{"r1":{"agentId":"a"}}}"#;
        let mut s: State = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), text);
        s.bind(&ProjectRef::of(None, "AlloResto"));
        assert_eq!(s.version, FORMAT_WITH_PROJECT_AND_OBJECTS);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json["project"],
            serde_json::json!({"id": "AlloResto", "account": "AlloResto"})
        );
        let mut s: State = serde_json::from_str(text).unwrap();
        s.apply(&note("welcome", Some("n1")), false);
        assert_eq!(s.version, FORMAT_WITH_PROJECT_AND_OBJECTS);
        assert_eq!(
            ProjectRef::of(Some("prod"), "AlloResto").to_string(),
            "project prod (account AlloResto)"
        );
    }

    #[test]
    fn a_revision_is_recorded_for_a_known_restaurant_only_and_needs_format_3() {
        use crate::model::revision::{ConfigDigest, GitCommit, Revision};
        let revision = Revision {
            commit: GitCommit::parse(&"e".repeat(40)).ok(),
            dirty: false,
            digest: ConfigDigest::from_sha256([2; 32]),
        }
        .applied(chrono::Utc::now(), None);
        let text = r#"{"version":2,"lineage":"6f1c2a4e-0000-4000-8000-000000000001","serial":3,"restaurants":{"r1":{"agentId":"a"}}}"#;
        let mut s: State = serde_json::from_str(text).unwrap();
        let record = |r: &str| Change::Revision {
            restaurant: RestaurantId::new(r),
            revision: revision.clone(),
        };
        s.apply(&record("nobody"), false);
        assert!(!s.restaurants.contains_key(&RestaurantId::new("nobody")));
        assert_eq!(s.version, 2, "nothing recorded, nothing new");
        s.apply(&record("r1"), false);
        assert_eq!(s.restaurants[&rid()].revision.as_ref(), Some(&revision));
        assert_eq!(s.version, FORMAT_WITH_REVISIONS);
        let back: State = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        // Deleting its agent leaves only the revision: the entry goes.
        s.apply(
            &Change::Agent {
                restaurant: rid(),
                id: None,
                tokens: None,
            },
            false,
        );
        assert!(s.restaurants.is_empty());
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
