//! The stages strung together for the commands, as cargo's `ops` are for its commands:
//! load and validate the files, open state, refresh, diff. Each command picks what it needs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Settings;
use crate::diff::{self, PlanOptions};
use crate::front::diagnostics::Diagnostics;
use crate::front::render::RenderEnv;
use crate::front::validate;
use crate::model::ids::RestaurantId;
use crate::model::spec::{Desired, Project};
use crate::plan::{Plan, PLAN_FORMAT_VERSION};
use crate::refresh;
use crate::remote::{Client, ClientError};
use crate::resources::Actual;
use crate::state::{self, LockGuard, LockInfo, State, StateBackend, StateError};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{0}")]
    Invalid(#[from] Diagnostics),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("sip-agent-server at {url}: {source}")]
    Server {
        url: String,
        #[source]
        source: ClientError,
    },
    #[error(transparent)]
    Database(#[from] crate::db::DbError),
    #[error("saved plan {path}: {message}")]
    PlanFile { path: String, message: String },
    #[error("the saved plan is stale: {0}. Run `sipform plan` again")]
    Stale(String),
}

/// A loaded, validated project with its settings and state backend.
pub struct Workspace {
    pub root: PathBuf,
    pub project: Project,
    pub desired: Desired,
    pub settings: Settings,
    pub backend: Arc<dyn StateBackend>,
    /// The platform's `restaurants` table, when the inventory is the database: apply writes
    /// the ids back to it.
    pub inventory: Option<crate::inventory::PlatformTable>,
}

impl Workspace {
    /// Loads and validates everything; opens (but does not lock) the state backend. A files
    /// inventory is read offline; a database inventory is read from the platform's table,
    /// together with every row state knows (its `agent_id` may not have been written back yet).
    pub async fn load(root: &Path) -> Result<Workspace, PipelineError> {
        let project = crate::front::load::load_project_file(root)?;
        let env = RenderEnv::from_env(&project);
        match crate::inventory::PlatformTable::from_config(&project.inventory, root).await? {
            None => {
                let validated = validate::desired(root, &env)?;
                Self::from_validated(root, validated.project, validated.desired)
            }
            Some(table) => {
                let backend = state::open(&project.state, root)?;
                let known = backend.load().await?.map(|s| s.restaurant_ids());
                let rows = table.read(&known.unwrap_or_default()).await?;
                let validated = validate::desired_with(root, &env, rows)?;
                let mut ws = Self::from_validated(root, validated.project, validated.desired)?;
                ws.inventory = Some(table);
                Ok(ws)
            }
        }
    }

    /// Where every recorded change must also go: the platform's rows, in database mode.
    pub fn commit_hook(&self) -> Option<Arc<dyn crate::state::CommitHook>> {
        self.inventory
            .as_ref()
            .map(|t| Arc::new(t.write_back()) as Arc<dyn crate::state::CommitHook>)
    }

    /// Heals rows a crash left behind (state committed, row not yet updated) before applying.
    pub async fn reconcile_inventory(&self, state: &State) -> Result<u64, PipelineError> {
        match &self.inventory {
            Some(t) => Ok(t.write_back().reconcile(state).await?),
            None => Ok(0),
        }
    }

    pub fn from_validated(
        root: &Path,
        project: Project,
        desired: Desired,
    ) -> Result<Workspace, PipelineError> {
        let settings = Settings::resolve(&project);
        let backend = state::open(&project.state, root)?;
        Ok(Workspace {
            root: root.to_path_buf(),
            project,
            desired,
            settings,
            backend,
            inventory: None,
        })
    }

    pub fn client(&self) -> Result<Client, PipelineError> {
        Client::new(&self.settings).map_err(|source| self.server_error(source))
    }

    fn server_error(&self, source: ClientError) -> PipelineError {
        PipelineError::Server {
            url: self.settings.server_url.clone(),
            source,
        }
    }

    /// Takes the state lock for `operation`.
    pub async fn lock(
        &self,
        operation: &str,
        timeout: Duration,
    ) -> Result<Box<dyn LockGuard>, PipelineError> {
        let who = LockInfo::for_this_process(operation);
        Ok(self.backend.lock(&who, timeout).await?)
    }

    /// Current state, or a fresh history when there is none yet.
    pub async fn state(&self) -> Result<State, PipelineError> {
        Ok(self.backend.load().await?.unwrap_or_default())
    }

    /// Reads the server and diffs: the plan, and what it was computed from.
    pub async fn plan(
        &self,
        client: &Client,
        state: &State,
        allow_destroy: bool,
        targets: &BTreeSet<RestaurantId>,
    ) -> Result<(Plan, Actual), PipelineError> {
        let scope = (!targets.is_empty()).then_some(targets);
        let actual = refresh::refresh(
            client,
            &self.project.account.name,
            &self.desired,
            state,
            scope,
        )
        .await
        .map_err(|e| self.server_error(e))?;
        let opts = PlanOptions {
            server_url: self.settings.server_url.clone(),
            allow_destroy,
            targets: targets.clone(),
        };
        let plan = diff::plan(&self.desired, &actual, state, &opts);
        Ok((plan, actual))
    }

    /// Checks that a saved plan still describes what apply would do: same lineage, same state
    /// serial, same remote objects.
    pub async fn check_fresh(
        &self,
        client: &Client,
        saved: &Plan,
        state: &State,
        state_exists: bool,
    ) -> Result<(), PipelineError> {
        // Everything that can be checked offline is, before the first request.
        if saved.server_url != self.settings.server_url {
            return Err(PipelineError::Stale(format!(
                "it was made against {}, but this run talks to {}",
                saved.server_url, self.settings.server_url
            )));
        }
        if state_exists && saved.lineage != state.lineage {
            return Err(PipelineError::Stale(format!(
                "it was made for state lineage {}, but state is lineage {}",
                saved.lineage, state.lineage
            )));
        }
        if saved.state_serial != state.serial {
            return Err(PipelineError::Stale(format!(
                "state has moved from serial {} to {} since",
                saved.state_serial, state.serial
            )));
        }
        let targets: BTreeSet<RestaurantId> = saved.targets.iter().cloned().collect();
        let (now, _) = self
            .plan(client, state, saved.allow_destroy, &targets)
            .await?;
        if now.remote_fingerprint != saved.remote_fingerprint {
            return Err(PipelineError::Stale(
                "the objects on the server changed since".into(),
            ));
        }
        Ok(())
    }
}

/// Reads a plan saved with `plan --out`, refusing another format version.
pub fn read_plan(path: &Path) -> Result<Plan, PipelineError> {
    let err = |message: String| PipelineError::PlanFile {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| err(format!("not valid JSON: {e}")))?;
    match value.get("formatVersion").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(PLAN_FORMAT_VERSION) => {}
        Some(v) => {
            return Err(err(format!(
                "format version {v}; this sipform reads version {PLAN_FORMAT_VERSION}"
            )))
        }
        None if value.get("formatVersion").is_some() => {
            return Err(err("\"formatVersion\" is not a whole number".into()))
        }
        None => return Err(err("missing \"formatVersion\": not a sipform plan".into())),
    }
    serde_path_to_error::deserialize(value).map_err(|e| err(crate::state::file::with_field(&e)))
}

/// Writes a plan for `apply FILE`, owner-readable only (it names ids, never secrets).
pub fn write_plan(path: &Path, plan: &Plan) -> Result<(), PipelineError> {
    let mut bytes = serde_json::to_vec_pretty(plan).map_err(|e| PipelineError::PlanFile {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    bytes.push(b'\n');
    crate::fsio::write_atomic(path, &bytes).map_err(|e| PipelineError::PlanFile {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Parses `30s`, `2m`, `500ms`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 30s, 2m, 500ms"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("invalid duration unit in {s:?}: use ms, s, m or h")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }
}
