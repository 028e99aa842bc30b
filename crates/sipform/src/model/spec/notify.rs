//! `notify:` of `sipform.yaml`: where the controller's notifications go.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::secret::Secret;

/// `notify:` as written. The webhook URL is a credential (a Slack incoming webhook is one):
/// held as a [`Secret`], never printed; `SIPFORM_NOTIFY_WEBHOOK` overrides it, so it need not
/// be committed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// An `https://` (or `http://`) URL each notification is POSTed to; no redirect is
    /// followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Secret<String>>,
    /// The body: `json` (sipform's own event document) or `slack` (`{"text": …}`, what Slack,
    /// Mattermost and Teams' incoming webhooks take).
    #[serde(default)]
    pub format: NotifyFormat,
}

impl NotifyConfig {
    pub fn is_empty(&self) -> bool {
        *self == NotifyConfig::default()
    }
}

/// The body a webhook gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyFormat {
    #[default]
    Json,
    Slack,
}
