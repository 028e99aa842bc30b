//! Where restaurants come from, behind one trait, [`Inventory`], as cargo's `Source` is for
//! packages: a folder of YAML files ([`files::Files`]) or the platform's own `restaurants`
//! table ([`PlatformTable`], its phone lines beside it, ids written back to its rows). Every
//! source hands over an [`InventoryRead`]: the valid restaurants, and those whose file or row
//! is invalid as skipped (one bad restaurant never blocks the others). A third source (an HTTP
//! API of the platform, a CSV export) is one file implementing the trait and one arm in
//! [`open`].

mod cells;
pub mod changes;
pub mod files;
pub mod phone_lines;
pub mod table;
pub(crate) mod writeback;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::db::{Db, DbError};
use crate::front::diagnostics::Diagnostics;
use crate::model::ids::RestaurantId;
use crate::model::spec::InventoryConfig;

pub(crate) use crate::front::InventoryRead;
pub(crate) use changes::ChangeLog;
pub use files::Files;
pub use table::{read_restaurants, PlatformTable};
pub(crate) use writeback::WriteBack;

/// Why an inventory could not be read at all (a single bad restaurant is skipped instead).
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The source itself is invalid (a folder that cannot be listed), every problem listed.
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error(transparent)]
    Database(#[from] DbError),
}

/// A source of restaurants.
#[async_trait]
pub trait Inventory: Send + Sync {
    /// Where restaurants come from, for messages (no password).
    fn describe(&self) -> String;

    /// Whether [`Inventory::read_all`] wants the ids state knows: a table keeps those rows
    /// even when nothing is enabled (a crash may have lost the written-back ids).
    fn reads_known(&self) -> bool {
        false
    }

    /// Every restaurant to plan; `known` are the ids state holds ([`Inventory::reads_known`]).
    async fn read_all(
        &self,
        known: &BTreeSet<RestaurantId>,
    ) -> Result<InventoryRead, InventoryError>;

    /// The restaurants of `ids` only (the controller's targeted reconcile). An id the source
    /// does not have is simply absent.
    async fn read_some(
        &self,
        ids: &BTreeSet<RestaurantId>,
    ) -> Result<InventoryRead, InventoryError>;

    /// Every id the source holds (the controller's full resync queues them all).
    async fn all_ids(&self) -> Result<Vec<RestaurantId>, InventoryError>;

    /// The log of changed restaurants a trigger fills, when the source has one.
    fn change_log(&self) -> Option<ChangeLog> {
        None
    }

    /// The state commit hook writing remote ids back to the source, when it takes them.
    fn write_back(&self) -> Option<WriteBack> {
        None
    }

    /// The database the source lives in, when it is one (the controller's leader lock and
    /// LISTEN go there).
    fn database(&self) -> Option<&Db> {
        None
    }

    /// What tells this source apart among those sharing a database (a table's name), for the
    /// scope of the leader lock.
    fn scope(&self) -> String {
        String::new()
    }
}

/// The inventory `sipform.yaml` names; a table is opened and its columns checked.
pub async fn open(
    config: &InventoryConfig,
    project_root: &Path,
) -> Result<Arc<dyn Inventory>, InventoryError> {
    match config {
        InventoryConfig::Files { path } => Ok(Arc::new(Files::new(&project_root.join(path)))),
        InventoryConfig::Database {
            url,
            table,
            columns,
            write_back_tokens,
        } => {
            let url = crate::db::url_or_env(url.as_deref(), "inventory.url")?;
            let t =
                PlatformTable::open(&url, project_root, table, columns, *write_back_tokens).await?;
            Ok(Arc::new(t))
        }
    }
}

/// The folder the inventory `config` names reads, when it is files (the controller's
/// `--watch` watches it instead of a change feed). Nothing is opened.
pub(crate) fn folder_of(config: &InventoryConfig, project_root: &Path) -> Option<PathBuf> {
    match config {
        InventoryConfig::Files { path } => Some(project_root.join(path)),
        InventoryConfig::Database { .. } => None,
    }
}
