//! `status`: where each restaurant stands, for people and machines. The report's shape is the
//! one `sipform status --json` prints and the controller serves at `/v1/status`, so a script
//! reads either the same way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::ids::RestaurantId;
use crate::state::RestaurantState;

/// Where one restaurant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// The server matches its row (as of `when`).
    Synced,
    /// The server differs from its row: an apply (or the controller) would change it.
    OutOfSync,
    /// Its last reconcile failed in a way worth retrying (the server or the database was down).
    Failed,
    /// Its last reconcile failed in a way that fails again until its row or the files change.
    Parked,
    /// Something looks due but is not done (a row deleted without `--allow-destroy`).
    Held,
    /// Suspended by `sipform suspend`: never changed until resumed.
    Suspended,
    /// Known, not reconciled yet.
    Pending,
}

impl Health {
    /// Every status, in the order counts are shown.
    pub const ALL: [Health; 7] = [
        Health::Synced,
        Health::OutOfSync,
        Health::Failed,
        Health::Parked,
        Health::Held,
        Health::Suspended,
        Health::Pending,
    ];

    /// The words people read (`out of sync`); JSON uses the snake_case name.
    pub fn words(self) -> &'static str {
        match self {
            Health::Synced => "synced",
            Health::OutOfSync => "out of sync",
            Health::Failed => "failed",
            Health::Parked => "parked",
            Health::Held => "held",
            Health::Suspended => "suspended",
            Health::Pending => "pending",
        }
    }

    /// The JSON name (`out_of_sync`).
    pub fn key(self) -> &'static str {
        match self {
            Health::OutOfSync => "out_of_sync",
            h => h.words(),
        }
    }

    /// Needs someone's attention: shown first, with its reason.
    pub fn is_problem(self) -> bool {
        matches!(self, Health::Failed | Health::Parked | Health::Held)
    }
}

/// One restaurant's line. Its name is tenant data: escaped by whoever shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestaurantStatus {
    pub id: RestaurantId,
    /// From the inventory (or the plan); `None` when only state knows the restaurant.
    pub name: Option<String>,
    pub status: Health,
    /// Why, in a sentence: a failure's error, a hold's note, what is out of sync.
    pub reason: Option<String>,
    /// When this was found (RFC 3339, UTC); `None` when only recorded state says it.
    pub when: Option<String>,
    /// The configuration revision that last reconciled it.
    pub revision: Option<String>,
}

/// The whole report: counts by status and one line per restaurant, in id order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// The revision of the configuration this report was made with.
    pub revision: Option<String>,
    /// When the report was made (RFC 3339, UTC).
    pub generated_at: String,
    /// Every status, zero included, so a script never misses a key.
    pub counts: BTreeMap<Health, usize>,
    pub restaurants: Vec<RestaurantStatus>,
}

impl StatusReport {
    /// A report of `restaurants` (any order: sorted by id here), counted.
    pub fn new(revision: Option<String>, mut restaurants: Vec<RestaurantStatus>) -> StatusReport {
        restaurants.sort_by(|a, b| a.id.cmp(&b.id));
        let mut counts: BTreeMap<Health, usize> = Health::ALL.iter().map(|h| (*h, 0)).collect();
        for r in &restaurants {
            *counts.entry(r.status).or_default() += 1;
        }
        StatusReport {
            revision,
            generated_at: now_rfc3339(),
            counts,
            restaurants,
        }
    }

    /// Only restaurant `id`'s line (`--restaurant`, `?restaurant=`), recounted.
    pub fn only(self, id: &RestaurantId) -> StatusReport {
        let keep = self
            .restaurants
            .into_iter()
            .filter(|r| &r.id == id)
            .collect();
        let mut one = StatusReport::new(self.revision, keep);
        one.generated_at = self.generated_at;
        one
    }
}

/// Now, as RFC 3339 in UTC to the second.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The revision state records as having reconciled `r` last.
// wired at merge: becomes `r.revision.as_ref().map(|v| v.to_string())` with the revision branch.
pub fn applied_revision(_r: &RestaurantState) -> Option<String> {
    None
}
