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
    applied_revision, now_rfc3339, rolled_back_from, Feed, Health, Queue, RestaurantStatus,
    StatusReport,
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
                row.rolled_back_from = None;
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
                let current = b.revision.clone();
                let row = b.rows.entry(id.clone()).or_insert_with(|| {
                    let revision = recorded.and_then(applied_revision);
                    let mut row = RestaurantStatus {
                        rolled_back_from: recorded.and_then(rolled_back_from),
                        ..blank(id)
                    };
                    // Recorded by another revision than the one in use: out of sync until
                    // this controller reconciles it.
                    // Recorded at the revision in use: in sync as of its last check (state
                    // stamps each one), which a start no longer repeats for every restaurant
                    // (the sweep resumes): shown synced, as of then, not pending for a sweep.
                    if let (Some(old), Some(new)) = (&revision, &current) {
                        if old != new {
                            row.status = Health::OutOfSync;
                            row.reason = Some(behind(old, new));
                        } else {
                            row.status = Health::Synced;
                            row.when = recorded
                                .and_then(|r| r.revision.as_ref())
                                .map(|a| a.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                        }
                    }
                    row.revision = revision;
                    row
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

    /// The revision of the configuration in use. Restaurants synced at another revision are
    /// out of sync until a reconcile at this one says otherwise.
    pub(crate) fn set_revision(&self, revision: Option<String>) {
        self.with(|b| {
            if let Some(new) = &revision {
                for row in b.rows.values_mut() {
                    let Some(old) = &row.revision else { continue };
                    if row.status == Health::Synced && old != new {
                        row.status = Health::OutOfSync;
                        row.reason = Some(behind(old, new));
                        row.when = Some(now_rfc3339());
                    }
                }
            }
            b.revision = revision;
        });
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
        rolled_back_from: None,
    }
}

/// Why a restaurant is out of sync with the revision in use.
fn behind(old: &str, new: &str) -> String {
    format!("runs revision {old}; {new} not applied yet")
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

    #[test]
    fn a_new_revision_makes_synced_restaurants_out_of_sync_until_reconciled() {
        let board = Board::default();
        board.set_revision(Some("aaaaaaa".into()));
        board.known(&BTreeSet::from([id("a"), id("b")]), &State::new());
        board.record(&id("a"), None, &Verdict::Done { changes: 0 });
        board.record(&id("b"), None, &Verdict::Done { changes: 0 });
        board.set_revision(Some("bbbbbbb".into()));
        let snap = board.snapshot(true);
        assert_eq!(snap.counts[&Health::OutOfSync], 2);
        let reason = snap.restaurants[0].reason.clone().unwrap_or_default();
        assert!(
            reason.contains("aaaaaaa") && reason.contains("bbbbbbb"),
            "{reason}"
        );
        board.record(&id("a"), None, &Verdict::Done { changes: 1 });
        let snap = board.snapshot(true);
        assert_eq!(snap.restaurants[0].status, Health::Synced);
        assert_eq!(snap.restaurants[0].revision.as_deref(), Some("bbbbbbb"));
        assert_eq!(snap.restaurants[1].status, Health::OutOfSync);
    }

    /// State recording restaurant `r` reconciled at commit `c…c` (40 times `commit`) at `at`,
    /// going back from `rollback_from…` when set.
    fn recorded_at(
        commit: char,
        at: chrono::DateTime<chrono::Utc>,
        rollback_from: Option<char>,
    ) -> State {
        let c = |h: char| crate::model::revision::GitCommit::parse(&h.to_string().repeat(40));
        let applied = crate::model::revision::AppliedRevision {
            commit: c(commit).ok(),
            dirty: false,
            digest: crate::model::revision::ConfigDigest::from_sha256([7; 32]),
            at,
            rollback_from: rollback_from.and_then(|h| c(h).ok()),
        };
        let mut state = State::new();
        state.restaurants.insert(
            id("r"),
            crate::state::RestaurantState {
                revision: Some(applied),
                ..Default::default()
            },
        );
        state
    }

    #[test]
    fn a_recorded_rollback_and_an_older_revision_show_when_first_seen() {
        let state = recorded_at('a', chrono::Utc::now(), Some('b'));
        let board = Board::default();
        board.set_revision(Some("bbbbbbb".into()));
        board.known(&BTreeSet::from([id("r")]), &state);
        let snap = board.snapshot(true);
        let r = &snap.restaurants[0];
        assert_eq!(r.status, Health::OutOfSync);
        assert_eq!(r.revision.as_deref(), Some("aaaaaaa"));
        assert_eq!(r.rolled_back_from.as_deref(), Some("bbbbbbb"));
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json["restaurants"][0]["rolledBackFrom"], "bbbbbbb");
        board.record(&id("r"), None, &Verdict::Done { changes: 3 });
        let r = board.snapshot(true).restaurants.remove(0);
        assert_eq!((r.status, r.rolled_back_from), (Health::Synced, None));
    }

    /// A start no longer re-reads a fresh fleet: a restaurant state records at the revision
    /// in use shows synced as of its last check, not pending until the sweep reaches it.
    #[test]
    fn a_restaurant_recorded_at_the_revision_in_use_starts_synced_as_of_its_check() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let state = recorded_at('b', at, None);
        let board = Board::default();
        board.set_revision(Some("bbbbbbb".into()));
        board.known(&BTreeSet::from([id("r"), id("new")]), &state);
        let snap = board.snapshot(true);
        let r = snap.restaurants.iter().find(|r| r.id == id("r")).unwrap();
        assert_eq!(r.status, Health::Synced);
        assert_eq!(r.when.as_deref(), Some("2026-12-07T10:00:00Z"));
        let new = snap.restaurants.iter().find(|r| r.id == id("new")).unwrap();
        assert_eq!(new.status, Health::Pending, "nothing recorded: pending");
    }
}
