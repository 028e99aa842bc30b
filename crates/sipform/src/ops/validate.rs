//! `validate`: every file and every rendered agent, without contacting sip-agent-server.

use std::collections::BTreeSet;

use crate::config::Settings;
use crate::front::validate::{self, Report};

use super::OpsError;

/// Loads, renders and checks the project; a database inventory is read from the platform's
/// table (never from sip-agent-server). Every problem is in the [`OpsError::Invalid`] list,
/// each invalid row's and restaurant's too (plan and apply skip those; validate reports them).
pub async fn validate(settings: &Settings) -> Result<Report, OpsError> {
    let source = super::workspace::open_inventory(settings).await?;
    let read = source.read_all(&BTreeSet::new()).await;
    let read = read.map_err(|e| super::workspace::read_failed(settings, e))?;
    let env = settings.render_env();
    let mut report =
        validate::check_inventory(&settings.root, settings.project(), &env, Some(read))
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
