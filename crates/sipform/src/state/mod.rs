//! State: which remote ids belong to which restaurant, kept between runs.
//!
//! The model and its changes are plain data; a [`StateBackend`] persists them. apply records a
//! [`Change`] after every successful create or delete, so a crash at any point loses nothing.
//! Backends: a JSON file (`file`), and tables in SQLite or PostgreSQL (`db`).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::ids::{AccountId, AgentId, FinalCustomerId, RestaurantId, ToolId};
use crate::model::secret::Secret;

pub mod db;
pub mod file;

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

    fn entry(&mut self, r: &RestaurantId) -> &mut RestaurantState {
        self.restaurants.entry(r.clone()).or_default()
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

/// Who holds a lock: shown to the one that waits for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockInfo {
    pub id: Uuid,
    pub host: String,
    pub pid: u32,
    pub operation: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

impl LockInfo {
    pub fn for_this_process(operation: &str) -> Self {
        LockInfo {
            id: Uuid::new_v4(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id(),
            operation: operation.to_string(),
            started_at: chrono::Utc::now(),
        }
    }
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} by pid {} on host {} since {}",
            self.operation,
            self.pid,
            self.host,
            self.started_at.to_rfc3339()
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state {place}: {source}")]
    Io {
        place: String,
        #[source]
        source: std::io::Error,
    },
    #[error("state {place} is not valid state JSON: {message}")]
    Corrupt { place: String, message: String },
    #[error(
        "state {place} has format version {found}, newer than this sipform reads ({STATE_FORMAT_VERSION}); upgrade sipform"
    )]
    FutureVersion { place: String, found: u32 },
    #[error("state is locked ({holder}); waited {waited:?}. Retry later, or raise --lock-timeout")]
    Locked { holder: String, waited: Duration },
    #[error("state {place}: {message}")]
    Backend { place: String, message: String },
    #[error("lineage mismatch: state {place} belongs to lineage {found}, expected {expected}")]
    Lineage {
        place: String,
        found: Uuid,
        expected: Uuid,
    },
}

/// Held while an operation may write state; released on drop.
pub trait LockGuard: Send + Sync {}

/// A place state lives. Implementations must make [`StateBackend::commit`] durable before it
/// returns: apply treats a returned commit as "this id can never be lost".
#[async_trait]
pub trait StateBackend: Send + Sync {
    /// Where this is, for messages (a path or a redacted URL).
    fn describe(&self) -> String;

    /// Takes the exclusive lock, waiting up to `timeout` for another holder to let go.
    async fn lock(
        &self,
        who: &LockInfo,
        timeout: Duration,
    ) -> Result<Box<dyn LockGuard>, StateError>;

    /// Reads state; a backend that holds none yet returns `None`.
    async fn load(&self) -> Result<Option<State>, StateError>;

    /// Persists `state`, which already has `changes` applied and its serial bumped. Backends
    /// that store rows may write just the changes; a file rewrites the whole document.
    async fn commit(&self, state: &State, changes: &[Change]) -> Result<(), StateError>;
}

/// Opens the backend `sipform.yaml` names. Relative paths are relative to the project folder.
pub fn open(
    config: &crate::model::spec::StateConfig,
    project_root: &std::path::Path,
) -> Result<std::sync::Arc<dyn StateBackend>, StateError> {
    match config {
        crate::model::spec::StateConfig::File { path, .. } => {
            let path = if path.is_absolute() {
                path.clone()
            } else {
                project_root.join(path)
            };
            Ok(std::sync::Arc::new(file::FileState::new(path)))
        }
        crate::model::spec::StateConfig::Sqlite { url, .. } => Ok(std::sync::Arc::new(
            db::SqliteState::open(url, project_root)?,
        )),
        crate::model::spec::StateConfig::Postgres { url, .. } => {
            let url = crate::db::url_or_env(url.as_deref(), "state.url")?;
            Ok(std::sync::Arc::new(db::PostgresState::open(&url)?))
        }
    }
}

/// Something else that must learn every change in the same step as state: the platform's
/// `restaurants` row (agent_id, final_customer_id, tokens) when the inventory is its database.
#[async_trait]
pub trait CommitHook: Send + Sync {
    /// Refuses a change that cannot be stored (e.g. an id longer than its column) before
    /// anything at all is written.
    fn check(&self, change: &Change) -> Result<(), String>;
    /// Called after state committed `changes`.
    async fn after_commit(&self, changes: &[Change]) -> Result<(), String>;
}

/// Records changes durably, batching concurrent ones into one write.
///
/// apply calls [`StateWriter::record`] after every create or delete and waits for it: when it
/// returns, the id is on disk. Changes that arrive while a write is in flight go into the next
/// write together ("group commit"), so 14,000 creates do not mean 14,000 fsyncs in a row.
pub struct StateWriter {
    tx: tokio::sync::mpsc::UnboundedSender<Pending>,
    current: std::sync::Arc<std::sync::Mutex<State>>,
}

type Ack = tokio::sync::oneshot::Sender<Result<(), String>>;

struct Pending {
    changes: Vec<Change>,
    ack: Ack,
}

impl StateWriter {
    pub fn new(
        backend: std::sync::Arc<dyn StateBackend>,
        state: State,
        store_tokens: bool,
        hook: Option<std::sync::Arc<dyn CommitHook>>,
    ) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Pending>();
        let current = std::sync::Arc::new(std::sync::Mutex::new(state));
        let shared = current.clone();
        tokio::spawn(async move {
            let mut failed: Option<String> = None;
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                if let Some(err) = &failed {
                    for p in batch {
                        let _ = p.ack.send(Err(err.clone()));
                    }
                    continue;
                }
                // A change the hook refuses is answered alone; the rest of the batch goes on.
                let mut accepted = Vec::with_capacity(batch.len());
                for p in batch {
                    let refused = hook
                        .as_ref()
                        .and_then(|h| p.changes.iter().find_map(|c| h.check(c).err()));
                    match refused {
                        Some(e) => {
                            let _ = p.ack.send(Err(e));
                        }
                        None => accepted.push(p),
                    }
                }
                let batch = accepted;
                if batch.is_empty() {
                    continue;
                }
                let changes: Vec<Change> = batch
                    .iter()
                    .flat_map(|p| p.changes.iter().cloned())
                    .collect();
                let next = {
                    let mut s = match shared.lock() {
                        Ok(s) => s,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    for c in &changes {
                        s.apply(c, store_tokens);
                    }
                    s.serial += 1;
                    s.clone()
                };
                let mut result = backend
                    .commit(&next, &changes)
                    .await
                    .map_err(|e| e.to_string());
                if result.is_ok() {
                    if let Some(h) = &hook {
                        result = h.after_commit(&changes).await;
                    }
                }
                if let Err(e) = &result {
                    failed = Some(e.clone());
                }
                for p in batch {
                    let _ = p.ack.send(result.clone());
                }
            }
        });
        StateWriter { tx, current }
    }

    /// Persists `changes`; returns once they are durable. After a failed write every later call
    /// fails too: apply must stop creating things it could not record.
    pub async fn record(&self, changes: Vec<Change>) -> Result<(), StateError> {
        let (ack, done) = tokio::sync::oneshot::channel();
        self.tx
            .send(Pending { changes, ack })
            .map_err(|_| StateError::Backend {
                place: "state writer".into(),
                message: "the state writer has stopped".into(),
            })?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StateError::Backend {
                place: "state writer".into(),
                message,
            }),
            Err(_) => Err(StateError::Backend {
                place: "state writer".into(),
                message: "the state writer has stopped".into(),
            }),
        }
    }

    /// Looks at the state as last recorded, without copying it.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        match self.current.lock() {
            Ok(s) => f(&s),
            Err(p) => f(&p.into_inner()),
        }
    }

    /// Whether state assigns `id` (agent, final customer or tool) to any restaurant.
    pub fn assigns(&self, id: &str) -> bool {
        self.read(|s| {
            s.restaurants.values().any(|r| {
                r.agent_id.as_ref().is_some_and(|a| a.as_str() == id)
                    || r.final_customer_id
                        .as_ref()
                        .is_some_and(|f| f.as_str() == id)
                    || r.tools.values().any(|t| t.as_str() == id)
            })
        })
    }

    /// The state as last recorded (in memory; what is durable is at least this old).
    pub fn snapshot(&self) -> State {
        match self.current.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
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
