//! Restaurants whose changes wait: an existing agent inside a change window of its own time
//! zone, or with calls in progress. Held is not failed: the changes stay planned, apply leaves
//! them alone and says so, the controller comes back when the hold ends.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::ids::RestaurantId;

/// Why a restaurant's changes wait.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// Inside a deny window (or outside every allow window) of `windows:`, in the
    /// restaurant's own time zone.
    Window,
    /// Its agent still had calls in progress when `windows.live_call_wait` ran out.
    LiveCalls,
}

impl HoldReason {
    /// The label metrics and JSON use.
    pub fn key(self) -> &'static str {
        match self {
            HoldReason::Window => "window",
            HoldReason::LiveCalls => "live_calls",
        }
    }
}

/// One restaurant held, until when, and why in a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hold {
    pub restaurant_id: RestaurantId,
    /// Tenant data: escaped by whoever shows it.
    pub name: String,
    pub reason: HoldReason,
    /// When the changes may go (UTC); absent when no window opens in the next days, or when
    /// it depends on calls ending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// The restaurant's time zone, and the local time the hold ends, for people.
    pub message: String,
}
