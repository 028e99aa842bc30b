//! The controller's view of the fleet, for `/v1/status` and the page at `/`: each restaurant's
//! last verdict with its reason and time, counts by status, the feed and the queue.
//!
//! The loop writes it from the places that already know (a reconcile's verdicts, the queue's
//! gauges, the full resync's list); readers take a [`Snapshot`]. It holds names, reasons and
//! ids only: errors are typed and never carry a secret.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use super::reconcile::Verdict;
use crate::model::ids::RestaurantId;
use crate::ops::status::{
    applied_revision, now_rfc3339, Feed, Health, Queue, RestaurantStatus, StatusReport,
};
use crate::state::State;

/// What `/v1/status` answers: the report with the controller's feed and queue.
pub type Snapshot = StatusReport;

/// The board the loop writes and readers copy.
#[derive(Debug, Default)]
pub struct Board(Mutex<Inner>);

#[derive(Debug, Default)]
struct Inner {
    rows: BTreeMap<RestaurantId, RestaurantStatus>,
    revision: Option<String>,
    feed_installed: bool,
    queue: Queue,
    rollout: Option<crate::ops::rollout::RolloutStatus>,
}

impl Board {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A reconcile's verdict for `id` (named `name` when its row or plan said so).
    pub fn record(&self, id: &RestaurantId, name: Option<&str>, verdict: &Verdict) {
        let (status, reason) = match verdict {
            Verdict::Done { changes: 0 } => (Health::Synced, None),
            Verdict::Done { changes } => {
                (Health::Synced, Some(format!("{changes} change(s) applied")))
            }
            Verdict::Transient(e) => (Health::Failed, Some(format!("will retry: {e}"))),
            Verdict::Fatal(e) => (Health::Parked, Some(e.clone())),
            Verdict::Held(why) => (Health::Held, Some(why.clone())),
            Verdict::Suspended => (Health::Suspended, None),
            // Back in the queue at once: nothing new to say.
            Verdict::NotStarted => return,
        };
        self.with(|b| {
            let revision = match status {
                Health::Synced => b.revision.clone(),
                _ => None,
            };
            let row = b.rows.entry(id.clone()).or_insert_with(|| blank(id));
            if let Some(n) = name {
                row.name = Some(n.to_string());
            }
            row.status = status;
            row.reason = reason;
            row.when = Some(now_rfc3339());
            // A failure keeps the revision that last reconciled it.
            if revision.is_some() || status == Health::Synced {
                row.revision = revision;
            }
        });
    }

    /// The full resync's list (inventory and state): restaurants not seen yet are pending,
    /// with the revision state recorded; state's suspended ones say so.
    pub fn known(&self, ids: &BTreeSet<RestaurantId>, state: &State) {
        self.with(|b| {
            // A restaurant neither the inventory nor state knows any more is gone.
            b.rows.retain(|id, _| ids.contains(id));
            for id in ids {
                let recorded = state.restaurants.get(id);
                let row = b
                    .rows
                    .entry(id.clone())
                    .or_insert_with(|| RestaurantStatus {
                        revision: recorded.and_then(applied_revision),
                        ..blank(id)
                    });
                if recorded.is_some_and(|r| r.suspended) {
                    row.status = Health::Suspended;
                    row.reason = None;
                }
            }
        });
    }

    /// The queue as the gauges see it; parked restaurants get their reason, and one the queue
    /// let go (its row changed, or a reload) is pending again.
    pub fn queue(&self, queue: Queue, parked: &BTreeMap<RestaurantId, String>) {
        self.with(|b| {
            b.queue = queue;
            for (id, row) in b.rows.iter_mut() {
                if row.status == Health::Parked && !parked.contains_key(id) {
                    row.status = Health::Pending;
                }
            }
            for (id, why) in parked {
                let row = b.rows.entry(id.clone()).or_insert_with(|| blank(id));
                if row.status != Health::Parked {
                    row.status = Health::Parked;
                    row.reason = Some(why.clone());
                    row.when = Some(now_rfc3339());
                }
            }
        });
    }

    /// Whether the change-log trigger is installed (read when the controller starts leading).
    pub fn feed_installed(&self, installed: bool) {
        self.with(|b| b.feed_installed = installed);
    }

    /// The rollout in progress (or the last one), as `/v1/status` and the page show it.
    pub(crate) fn set_rollout(&self, rollout: Option<crate::ops::rollout::RolloutStatus>) {
        self.with(|b| b.rollout = rollout);
    }

    /// The revision of the configuration in use.
    pub(crate) fn set_revision(&self, revision: Option<String>) {
        self.with(|b| b.revision = revision);
    }

    /// A copy for readers; `connected` is the feed's live flag.
    pub fn snapshot(&self, connected: bool) -> Snapshot {
        self.with(|b| StatusReport {
            feed: Some(Feed {
                connected,
                installed: b.feed_installed,
            }),
            queue: Some(b.queue),
            rollout: b.rollout.clone(),
            ..StatusReport::new(b.revision.clone(), b.rows.values().cloned().collect())
        })
    }
}

fn blank(id: &RestaurantId) -> RestaurantStatus {
    RestaurantStatus {
        id: id.clone(),
        name: None,
        status: Health::Pending,
        reason: None,
        when: None,
        revision: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> RestaurantId {
        RestaurantId::new(s)
    }

    #[test]
    fn verdicts_become_statuses_with_reasons_and_counts() {
        let board = Board::default();
        let mut state = State::new();
        state.restaurants.insert(
            id("s"),
            crate::state::RestaurantState {
                suspended: true,
                ..Default::default()
            },
        );
        let all: BTreeSet<_> = ["a", "b", "c", "p", "s"].into_iter().map(id).collect();
        board.known(&all, &state);
        board.record(&id("a"), Some("Chez A"), &Verdict::Done { changes: 2 });
        board.record(&id("b"), None, &Verdict::Transient("server down".into()));
        board.record(&id("c"), None, &Verdict::Held("row deleted".into()));
        let parked = BTreeMap::from([(id("p"), "invalid row".to_string())]);
        board.queue(
            Queue {
                depth: 1,
                due: 0,
                parked: 1,
            },
            &parked,
        );
        let snap = board.snapshot(true);
        let c = &snap.counts;
        assert_eq!(
            [
                c[&Health::Synced],
                c[&Health::Failed],
                c[&Health::Held],
                c[&Health::Parked],
                c[&Health::Suspended],
                c[&Health::Pending]
            ],
            [1, 1, 1, 1, 1, 0]
        );
        let a = &snap.restaurants[0];
        assert_eq!(a.name.as_deref(), Some("Chez A"));
        assert!(a.when.is_some());
        let p = snap.restaurants.iter().find(|r| r.id == id("p"));
        assert_eq!(
            p.and_then(|r| r.reason.as_deref()),
            Some("invalid row"),
            "a parked restaurant says why"
        );
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json["counts"]["out_of_sync"], 0);
        assert_eq!(json["queue"]["depth"], 1);
        assert_eq!(json["feed"]["connected"], true);
        // Unparked (its row changed, or a reload): pending again, its last reason kept.
        board.queue(Queue::default(), &BTreeMap::new());
        let p = board.snapshot(true);
        let p = p.restaurants.iter().find(|r| r.id == id("p"));
        assert_eq!(p.map(|r| r.status), Some(Health::Pending));
        // Gone from both the inventory and state: gone from the board.
        board.known(&BTreeSet::from([id("a")]), &State::new());
        assert_eq!(board.snapshot(true).restaurants.len(), 1);
    }
}
