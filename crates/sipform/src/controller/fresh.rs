//! Freshness: when each restaurant was last read from the server and found in step, so that a
//! restart, a failover or a lock blip goes on with the resync sweep where it was instead of
//! starting a burst of every restaurant.
//!
//! State records it on the restaurant's revision record: its `at` is when a run last
//! reconciled the restaurant (an apply of CI's or the controller's). The controller also
//! stamps it when a background reconcile (a sweep's or a retry's: one that read the
//! restaurant's objects from the server) finishes in step, with the revision recorded left as
//! it is. Stamps are gathered and committed together (one commit every [`CHECKPOINT_EVERY`] at
//! most, never one per restaurant); stamps lost with a killed process only make those
//! restaurants due sooner.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::cache::Cache;
use crate::config::Settings;
use crate::inventory::{Inventory, InventoryRead};
use crate::model::ids::RestaurantId;
use crate::model::revision::ConfigDigest;
use crate::ops::{OpsError, Workspace};
use crate::resources::Kinds;
use crate::state::{Change, RestaurantState, State, StateBackend};

/// How often the stamps gathered are committed, at most (a tenth of the resync interval when
/// that is shorter).
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);

/// Restaurants checked since the last commit of their stamps.
#[derive(Debug)]
pub(crate) struct Marks {
    ids: BTreeSet<RestaurantId>,
    /// When the oldest stamp not yet committed was gathered.
    since: Option<Instant>,
    every: Duration,
}

impl Marks {
    /// Committed every [`CHECKPOINT_EVERY`], or every tenth of `resync_every` if shorter.
    pub fn new(resync_every: Duration) -> Marks {
        Marks {
            ids: BTreeSet::new(),
            since: None,
            every: CHECKPOINT_EVERY.min(resync_every / 10),
        }
    }

    /// `id` was checked at `now`.
    pub fn add(&mut self, id: RestaurantId, now: Instant) {
        self.since.get_or_insert(now);
        self.ids.insert(id);
    }

    /// Whether the stamps gathered are due to be committed.
    pub fn due(&self, now: Instant) -> bool {
        self.since
            .is_some_and(|s| now.saturating_duration_since(s) >= self.every)
    }

    /// The stamps gathered, forgotten here.
    pub fn take(&mut self) -> BTreeSet<RestaurantId> {
        self.since = None;
        std::mem::take(&mut self.ids)
    }
}

/// How long ago `r` was last checked against `digest`, the configuration in use (`None`:
/// never, as far as state says, or at another configuration: a new one's rollout, cut short
/// by a restart, is not left for the sweep). A time ahead of `now` (another machine's clock)
/// counts as just now.
pub(crate) fn age(
    r: &RestaurantState,
    digest: &ConfigDigest,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let recorded = r.revision.as_ref().filter(|v| &v.digest == digest)?;
    Some((now - recorded.at).to_std().unwrap_or(Duration::ZERO))
}

/// The changes stamping `ids` checked at `at`: each keeps the revision state records for it
/// (only its time moves); a restaurant with no recorded revision is left alone.
pub(crate) fn stamps(
    state: &State,
    ids: &BTreeSet<RestaurantId>,
    at: DateTime<Utc>,
) -> Vec<Change> {
    ids.iter()
        .filter_map(|id| {
            let recorded = state.restaurants.get(id)?.revision.as_ref()?;
            let mut revision = recorded.clone();
            revision.at = at;
            Some(Change::Revision {
                restaurant: id.clone(),
                revision,
            })
        })
        .collect()
}

/// Where stamps are committed: the configuration in use, state, the inventory (whose rows the
/// state writer's hook keeps), the kinds.
pub(crate) struct Place<'a> {
    pub settings: &'a Settings,
    pub backend: Arc<dyn StateBackend>,
    pub inventory: &'a dyn Inventory,
    pub kinds: &'a Kinds,
}

/// Commits the stamps of `ids`, under the state lock, from the state the last batch kept (or
/// read); the state after is kept for the next batch. How many were stamped.
pub(crate) async fn commit(
    place: &Place<'_>,
    cache: &mut Cache,
    ids: &BTreeSet<RestaurantId>,
) -> Result<usize, OpsError> {
    let ws = Workspace::for_read(
        place.settings.clone(),
        place.backend.clone(),
        place.inventory,
        InventoryRead::default(),
        place.kinds.clone(),
    )?;
    let _lock = ws.lock("controller").await?;
    let state = cache.state_for(&ws).await?;
    let changes = stamps(&state, ids, Utc::now());
    if changes.is_empty() {
        cache.keep_state(state);
        return Ok(0);
    }
    let n = changes.len();
    let before = (state.lineage, state.serial);
    let writer = ws.writer(state);
    // A failed commit leaves nothing kept: the next batch reads state again.
    writer.record(changes).await?;
    // Taken from the writer, not copied: a copy was a second state of every restaurant.
    let after = writer.into_state();
    // Stamps move no id: the kept owners follow the serial instead of being built again
    // (beside the old ones) by the next batch.
    cache.state_written(place.kinds, before, &after, std::iter::empty());
    cache.keep_state(after);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ids::AgentId;
    use crate::model::revision::Revision;

    fn revision() -> Revision {
        Revision {
            commit: None,
            dirty: false,
            digest: ConfigDigest::parse(&format!("sha256:{}", "ab".repeat(32))).expect("digest"),
        }
    }

    #[test]
    fn a_stamp_moves_the_time_and_keeps_the_revision() {
        let then = Utc::now() - chrono::Duration::minutes(5);
        let mut state = State::new();
        let with = RestaurantState {
            agent_id: Some(AgentId::new("a1")),
            revision: Some(revision().applied(then, None)),
            ..RestaurantState::default()
        };
        let without = RestaurantState {
            agent_id: Some(AgentId::new("a2")),
            ..RestaurantState::default()
        };
        state.restaurants.insert(RestaurantId::new("r1"), with);
        state.restaurants.insert(RestaurantId::new("r2"), without);
        let ids: BTreeSet<RestaurantId> = ["r1", "r2", "gone"].map(RestaurantId::new).into();
        let now = Utc::now();
        let changes = stamps(&state, &ids, now);
        assert_eq!(
            changes.len(),
            1,
            "only a restaurant with a revision is stamped"
        );
        for c in &changes {
            state.apply(c, false);
        }
        let r1 = &state.restaurants[&RestaurantId::new("r1")];
        let stamped = r1.revision.as_ref().expect("revision");
        assert_eq!(stamped.at, now);
        assert_eq!(stamped.revision(), revision());
        let digest = revision().digest;
        assert_eq!(age(r1, &digest, now), Some(Duration::ZERO));
        assert_eq!(
            age(&state.restaurants[&RestaurantId::new("r2")], &digest, now),
            None
        );
        let other = ConfigDigest::parse(&format!("sha256:{}", "cd".repeat(32))).expect("digest");
        assert_eq!(
            age(r1, &other, now),
            None,
            "checked at another configuration"
        );
    }

    #[test]
    fn stamps_are_committed_together_every_checkpoint() {
        let start = Instant::now();
        let mut m = Marks::new(Duration::from_secs(600));
        assert!(
            !m.due(start + Duration::from_secs(3600)),
            "nothing gathered"
        );
        m.add(RestaurantId::new("a"), start);
        m.add(RestaurantId::new("b"), start + Duration::from_secs(5));
        assert!(!m.due(start + Duration::from_secs(9)));
        assert!(m.due(start + CHECKPOINT_EVERY));
        assert_eq!(m.take().len(), 2);
        assert!(!m.due(start + Duration::from_secs(3600)));
        // A short interval: a tenth of it.
        let mut short = Marks::new(Duration::from_secs(4));
        short.add(RestaurantId::new("a"), start);
        assert!(short.due(start + Duration::from_millis(400)));
    }

    #[test]
    fn a_check_time_ahead_of_the_clock_counts_as_now() {
        let now = Utc::now();
        let r = RestaurantState {
            revision: Some(revision().applied(now + chrono::Duration::minutes(3), None)),
            ..RestaurantState::default()
        };
        assert_eq!(age(&r, &revision().digest, now), Some(Duration::ZERO));
    }
}
