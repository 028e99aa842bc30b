//! State: which remote ids belong to which restaurant, kept between runs.
//!
//! The model and its changes are plain data ([`model`]); a [`StateBackend`] persists them
//! ([`backend`]): a JSON file ([`file`](mod@file)), or tables in SQLite or PostgreSQL ([`db`]). apply
//! records a [`Change`] after every successful create or delete through the [`StateWriter`]
//! ([`writer`]), which batches concurrent changes into one durable write, so a crash at any
//! point loses nothing. Every backend passes one conformance suite
//! (`tests/state_conformance.rs`).
//!
//! Inside, the layers go one way: `model` ← `backend` ← `file`, `db` ← `writer`, and this file
//! (which opens the configured backend) on top. Other modules use the re-exports below.

pub mod backend;
pub mod db;
pub mod file;
pub mod journal;
pub mod model;
pub mod writer;

pub use backend::{LockGuard, LockInfo, StateBackend, StateError};
pub use db::{PostgresState, SqliteState};
pub use file::FileState;
pub use model::{
    token_digest, token_digest_of, AgentTokens, Change, ProjectRef, RestaurantState, State,
    STATE_FORMAT_VERSION,
};
pub use writer::{CommitHook, StateWriter};

/// The attribute [`StateBackend`] and [`CommitHook`] are written with, so that code outside
/// the library (a test's own backend) can implement them without depending on `async-trait`.
pub use async_trait::async_trait;

use std::path::Path;
use std::sync::Arc;

use crate::model::spec::StateConfig;

/// Opens the backend `sipform.yaml` names. Relative paths are relative to the project folder.
///
/// `project` binds it: state recorded for another project is refused, state recorded for none
/// is adopted, and a database shared by several projects gives this one its own rows. `None`
/// (a `state` command outside a project) takes whatever state is there.
pub fn open(
    config: &StateConfig,
    project_root: &Path,
    project: Option<&ProjectRef>,
) -> Result<Arc<dyn StateBackend>, StateError> {
    let project = project.cloned();
    match config {
        StateConfig::File { path, .. } => {
            let path = if path.is_absolute() {
                path.clone()
            } else {
                project_root.join(path)
            };
            Ok(Arc::new(FileState::new(path).for_project(project)))
        }
        StateConfig::Sqlite { url, .. } => Ok(Arc::new(
            SqliteState::open(url, project_root)?.for_project(project),
        )),
        StateConfig::Postgres { url, .. } => {
            let url = crate::db::url_or_env(url.as_deref(), "state.url")?;
            Ok(Arc::new(PostgresState::open(&url)?.for_project(project)))
        }
    }
}
