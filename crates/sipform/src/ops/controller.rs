//! `controller install-trigger`: the change log and trigger the controller reads. The
//! long-running loop itself is [`crate::controller`], which sits above `ops` (it strings ops
//! together per batch).

use std::path::PathBuf;

use crate::config::Settings;
use crate::inventory::ChangeLog;

use super::OpsError;

/// The change log and trigger for the inventory's table: the SQL, and whether it was run.
pub struct Trigger {
    pub sql: String,
    /// The table, described for messages (no password).
    pub table: String,
    /// The DDL ran (false: the catalog showed the feed installed, nothing was done).
    pub changed: bool,
}

/// The SQL `install-trigger` runs, for the table `inventory:` names (its columns checked).
pub async fn trigger_sql(settings: &Settings) -> Result<Trigger, OpsError> {
    let (log, table) = open(settings).await?;
    Ok(Trigger {
        sql: log.install_sql().await?,
        table,
        changed: false,
    })
}

/// Creates or updates the change log and its triggers in one transaction, unless the catalog
/// shows them installed (then no DDL runs and no lock is taken: safe at every start). Waits at
/// most a short lock timeout for the platform's transactions, then fails saying so.
pub async fn install_trigger(settings: &Settings) -> Result<Trigger, OpsError> {
    let (log, table) = open(settings).await?;
    let changed = log.install().await?;
    Ok(Trigger {
        sql: String::new(),
        table,
        changed,
    })
}

/// The folder a files inventory reads (`controller --watch` watches it); `None` for another
/// source, which has its own change feed.
pub fn inventory_folder(settings: &Settings) -> Option<PathBuf> {
    crate::inventory::folder_of(&settings.inventory, &settings.root)
}

/// The inventory's change log, and the inventory described for messages.
async fn open(settings: &Settings) -> Result<(ChangeLog, String), OpsError> {
    let source = super::workspace::open_inventory(settings).await?;
    let described = source.describe();
    source
        .change_log()
        .map(|log| (log, described))
        .ok_or_else(|| {
            OpsError::Conflict(
                "the inventory is files (sipform.yaml's `inventory.source`): there is no table \
                 to put a trigger on; use `sipform controller --watch`"
                    .into(),
            )
        })
}
