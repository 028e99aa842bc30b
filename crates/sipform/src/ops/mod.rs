//! One function per command, as cargo's `ops` are for its commands: options in, data out.
//!
//! Nothing here prints, prompts or exits; warnings and findings are returned as data and the
//! CLI decides how to show them. The stages are strung together here and only here: settings →
//! [`Workspace`] (load, render, validate, open state) → refresh → diff → plan → apply → state.
//! A new command is one file here plus its thin shell in the binary.

pub mod apply;
pub mod call;
pub mod controller;
pub mod dedupe;
pub mod demo;
pub mod doctor;
pub mod guardrails;
pub(crate) mod hold;
pub mod import;
pub mod plan;
pub mod render;
pub(crate) mod repair;
pub(crate) mod revision_guard;
pub mod rollout;
pub mod schema;
pub mod state;
pub mod status;
pub mod tooltest;
pub(crate) mod twins;
pub mod validate;
mod workspace;

pub(crate) use workspace::open_inventory;
pub use workspace::Workspace;

use crate::config::ConfigError;
use crate::db::DbError;
use crate::front::diagnostics::Diagnostics;
use crate::plan::file::PlanFileError;
use crate::remote::ClientError;
use crate::state::StateError;

/// Why a command could not do its job. Each says what and where once; the CLI adds nothing.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The project's files (or its database rows) are invalid; every problem is listed.
    #[error("{0}")]
    Invalid(#[from] Diagnostics),
    #[error(transparent)]
    State(#[from] StateError),
    /// A call to the server failed: where (server, method, route), what, and what to do.
    #[error("sip-agent-server at {url}: {source}{}", hint_suffix(.source))]
    Server {
        /// Redacted ([`crate::model::secret::redact_url`]): never carries a password.
        url: String,
        #[source]
        source: ClientError,
    },
    #[error(transparent)]
    Database(#[from] DbError),
    /// What exists on the server contradicts itself in a way sipform will not guess about.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    PlanFile(#[from] PlanFileError),
    #[error("the saved plan is stale: {0}. Run `sipform plan` again")]
    Stale(String),
    /// `render --restaurant ID` for an id the inventory does not have.
    #[error("no restaurant with id `{0}`")]
    NoSuchRestaurant(String),
    #[error("account {0:?} does not exist on the server: nothing to import")]
    NoAccountToImport(String),
    /// A `state` command that needs state found none.
    #[error("no state in {0}")]
    NoState(String),
    #[error("restaurant {restaurant} is not in state ({place})")]
    NotInState { restaurant: String, place: String },
    #[error("not in state ({place}): {missing}; nothing was removed")]
    NotRemoved { place: String, missing: String },
    /// `status --controller`: the controller's `/v1/status` could not be read.
    #[error("the controller at {url}: {message}")]
    Controller { url: String, message: String },
    /// `state migrate` refused; the message says why and what was left as it was.
    #[error("{0}")]
    Migrate(String),
    /// The configuration's revision could not be computed (git failed, a file unreadable).
    #[error("the configuration's revision: {0}")]
    Revision(#[from] crate::revision::RevisionError),
    /// A rollout's record is unreadable, or a rollout command cannot do what it was asked.
    #[error("rollout: {0}")]
    Rollout(String),
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl OpsError {
    /// A failed call to the server at `url` (redacted here, so no caller can forget).
    pub fn server(url: &str, source: ClientError) -> OpsError {
        OpsError::Server {
            url: crate::model::secret::redact_url(url),
            source,
        }
    }
}

fn hint_suffix(e: &ClientError) -> String {
    e.hint().map(|h| format!(" ({h})")).unwrap_or_default()
}

impl From<crate::inventory::InventoryError> for OpsError {
    fn from(e: crate::inventory::InventoryError) -> Self {
        match e {
            crate::inventory::InventoryError::Invalid(d) => OpsError::Invalid(d),
            crate::inventory::InventoryError::Database(e) => OpsError::Database(e),
        }
    }
}

impl From<ConfigError> for OpsError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Invalid(d) => OpsError::Invalid(d),
        }
    }
}
