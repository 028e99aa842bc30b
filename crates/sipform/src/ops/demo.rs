//! `demo`: the whole job against a server the caller started (the bundled emulator), with state
//! in a scratch folder, so a first look never touches the project's real state or rows.

use std::collections::BTreeSet;
use std::path::Path;

use crate::apply::{Progress, Report};
use crate::config::{Overrides, Settings};
use crate::model::ids::RestaurantId;
use crate::model::spec::StateConfig;
use crate::plan::Plan;
use crate::remote::Client;

use super::plan::PlanOptions;
use super::{OpsError, Workspace};

/// Where the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The server to apply to; no API key is sent.
    pub server_url: String,
    pub parallelism: crate::config::Parallelism,
    /// Restaurants to consider; empty means all.
    pub targets: BTreeSet<RestaurantId>,
}

/// The project loaded against the demo's server, its state in a folder removed on drop.
pub struct Demo {
    ws: Workspace,
    client: Client,
    plan: PlanOptions,
    _scratch: tempfile::TempDir,
}

impl Demo {
    /// Loads and validates the project at `root`; state goes to a fresh scratch folder and
    /// nothing is written back to a database inventory.
    pub async fn open(root: &Path, opts: DemoOptions) -> Result<Demo, OpsError> {
        let scratch = tempfile::tempdir().map_err(|source| OpsError::Io {
            what: "creating a scratch folder in",
            path: std::env::temp_dir().display().to_string(),
            source,
        })?;
        let overrides = Overrides {
            server_url: Some(opts.server_url),
            api_key: Some(None),
            parallelism: Some(opts.parallelism),
            state: Some(StateConfig::File {
                path: scratch.path().join("sipform.state.json"),
                store_tokens: false,
            }),
            ..Overrides::default()
        };
        let settings = Settings::load(root, &overrides)?;
        let ws = Workspace::load(settings).await?.detached();
        let client = ws.client()?;
        Ok(Demo {
            ws,
            client,
            plan: PlanOptions {
                allow_destroy: false,
                allow_replace: false,
                targets: opts.targets,
                only_changes: false,
                allow_rollback: false,
                allow_dirty: false,
                ignore_windows: false,
            },
            _scratch: scratch,
        })
    }

    /// What apply would do now.
    pub async fn plan(&self) -> Result<Plan, OpsError> {
        let state = self.ws.state().await?;
        self.ws.plan(&self.client, &state, &self.plan).await
    }

    /// Carries `plan` out into the scratch state.
    pub async fn apply(&self, plan: &Plan, progress: &dyn Progress) -> Result<Report, OpsError> {
        let state = self.ws.state().await?;
        let (report, _) =
            super::apply::apply_plan(&self.ws, &self.client, plan, state, progress).await;
        Ok(report)
    }
}
