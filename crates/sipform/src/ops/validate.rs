//! `validate`: every file and every rendered agent, without contacting sip-agent-server.

use std::collections::BTreeSet;

use crate::config::Settings;
use crate::front::validate::{self, Report};
use crate::inventory::PlatformTable;

use super::OpsError;

/// Loads, renders and checks the project; a database inventory is read from the platform's
/// table (never from sip-agent-server). Every problem is in the [`OpsError::Invalid`] list,
/// each invalid row's and restaurant's too (plan and apply skip those; validate reports them).
pub async fn validate(settings: &Settings) -> Result<Report, OpsError> {
    let env = settings.render_env();
    let restaurants = match PlatformTable::from_config(&settings.inventory, &settings.root).await? {
        None => None,
        Some(table) => Some(table.read_checked(&BTreeSet::new()).await?),
    };
    let mut report =
        validate::check_inventory(&settings.root, settings.project(), &env, restaurants)
            .and_then(Report::into_strict)?;
    let s = settings;
    crate::contract::check::check_validated(
        &s.root,
        &s.tools_dir,
        &s.template,
        &s.platform,
        &mut report,
    )?;
    Ok(report)
}
