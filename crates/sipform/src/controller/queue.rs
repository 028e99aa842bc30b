//! The work queue: which restaurants to reconcile, and when.
//!
//! Pure (no I/O, time passed in) so its rules are unit-tested: one entry per restaurant however
//! often it changes (the reconcile reads its latest row), an item never handed out twice at
//! once, exponential backoff per item after a transient failure, and a fatal failure parks the
//! item until its row changes again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::model::ids::RestaurantId;

#[derive(Debug, Clone, Copy)]
struct Item {
    due: Instant,
    /// Transient failures in a row: the next backoff is `base × 2^attempts`.
    attempts: u32,
}

/// Restaurants waiting to be reconciled, those being reconciled, and those parked.
#[derive(Debug)]
pub struct WorkQueue {
    pending: BTreeMap<RestaurantId, Item>,
    /// Handed out and not yet finished, with their attempts so far.
    in_flight: BTreeMap<RestaurantId, u32>,
    /// Failed fatally, with why: left alone until their row changes (or a reload).
    parked: BTreeMap<RestaurantId, String>,
    base: Duration,
    max: Duration,
}

impl WorkQueue {
    /// Backoff doubles from `base` up to `max`.
    pub fn new(base: Duration, max: Duration) -> WorkQueue {
        WorkQueue {
            pending: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            parked: BTreeMap::new(),
            base: base.max(Duration::from_millis(1)),
            max: max.max(base),
        }
    }

    /// `id` changed (or is asked for): due now, unless it is backing off after a transient
    /// failure (the server is likely still down: changing the row does not make it come back).
    /// A parked item is unparked: the change may be the fix.
    pub fn push(&mut self, id: RestaurantId, now: Instant) {
        self.parked.remove(&id);
        self.pending.entry(id).or_insert(Item {
            due: now,
            attempts: 0,
        });
    }

    /// Up to `max` items due at `now`, in id order; each is in flight until reported.
    pub fn take_due(&mut self, now: Instant, max: usize) -> Vec<RestaurantId> {
        let due: Vec<RestaurantId> = self
            .pending
            .iter()
            .filter(|(id, item)| item.due <= now && !self.in_flight.contains_key(*id))
            .map(|(id, _)| id.clone())
            .take(max)
            .collect();
        for id in &due {
            if let Some(item) = self.pending.remove(id) {
                self.in_flight.insert(id.clone(), item.attempts);
            }
        }
        due
    }

    /// Reconciled: forgotten (a change that came meanwhile stays pending).
    pub fn succeeded(&mut self, id: &RestaurantId) {
        self.in_flight.remove(id);
    }

    /// Failed in a way worth retrying: due again after its backoff, which is returned.
    pub fn transient(&mut self, id: &RestaurantId, now: Instant) -> Duration {
        let attempts = self.in_flight.remove(id).unwrap_or(0).saturating_add(1);
        let delay = self.backoff(attempts);
        let item = self.pending.entry(id.clone()).or_insert(Item {
            due: now + delay,
            attempts,
        });
        item.attempts = attempts;
        item.due = item.due.max(now + delay);
        delay
    }

    /// Not started (the run was stopping): due again at once, without counting an attempt.
    pub fn not_started(&mut self, id: &RestaurantId, now: Instant) {
        let attempts = self.in_flight.remove(id).unwrap_or(0);
        self.pending
            .entry(id.clone())
            .or_insert(Item { due: now, attempts });
    }

    /// Failed in a way that will fail again the same way: parked, with why. A change that came
    /// while it was in flight keeps it pending instead (the change may be the fix).
    pub fn fatal(&mut self, id: &RestaurantId, why: String) {
        self.in_flight.remove(id);
        if !self.pending.contains_key(id) {
            self.parked.insert(id.clone(), why);
        }
    }

    /// Every parked item back in the queue (after a reload: the new files may fix them).
    pub fn unpark_all(&mut self, now: Instant) {
        for id in std::mem::take(&mut self.parked).into_keys() {
            self.push(id, now);
        }
    }

    /// When the earliest pending item is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.values().map(|i| i.due).min()
    }

    /// Items waiting (due or backing off).
    pub fn depth(&self) -> usize {
        self.pending.len()
    }

    /// Items due at `now` (not backing off).
    pub fn due(&self, now: Instant) -> usize {
        self.pending.values().filter(|i| i.due <= now).count()
    }

    pub fn parked(&self) -> &BTreeMap<RestaurantId, String> {
        &self.parked
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        self.base.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> RestaurantId {
        RestaurantId::new(s)
    }

    fn queue() -> WorkQueue {
        WorkQueue::new(Duration::from_secs(1), Duration::from_secs(8))
    }

    #[test]
    fn many_changes_of_one_restaurant_are_one_item() {
        let mut q = queue();
        let now = Instant::now();
        for _ in 0..5 {
            q.push(id("a"), now);
        }
        q.push(id("b"), now);
        assert_eq!(q.depth(), 2);
        assert_eq!(q.take_due(now, 10), vec![id("a"), id("b")]);
        assert_eq!(q.depth(), 0);
    }

    #[test]
    fn an_item_in_flight_is_never_handed_out_twice() {
        let mut q = queue();
        let now = Instant::now();
        q.push(id("a"), now);
        assert_eq!(q.take_due(now, 10), vec![id("a")]);
        // Changed again while being reconciled: pending, but not handed out until done.
        q.push(id("a"), now);
        assert!(q.take_due(now, 10).is_empty());
        q.succeeded(&id("a"));
        assert_eq!(q.take_due(now, 10), vec![id("a")]);
    }

    #[test]
    fn transient_failures_back_off_exponentially_up_to_the_cap() {
        let mut q = queue();
        let now = Instant::now();
        q.push(id("a"), now);
        let mut delays = Vec::new();
        for _ in 0..6 {
            let t = q.next_due().unwrap();
            assert_eq!(q.take_due(t, 10), vec![id("a")]);
            delays.push(q.transient(&id("a"), t).as_secs());
        }
        assert_eq!(delays, vec![1, 2, 4, 8, 8, 8]);
        // Not due before its backoff.
        let t = q.next_due().unwrap();
        assert!(q.take_due(t - Duration::from_millis(1), 10).is_empty());
        q.take_due(t, 10);
        q.succeeded(&id("a"));
        q.push(id("a"), t);
        assert_eq!(
            q.take_due(t, 10),
            vec![id("a")],
            "success resets the backoff"
        );
        assert_eq!(q.transient(&id("a"), t), Duration::from_secs(1));
    }

    #[test]
    fn fatal_parks_until_the_row_changes() {
        let mut q = queue();
        let now = Instant::now();
        q.push(id("a"), now);
        q.push(id("b"), now);
        q.take_due(now, 10);
        q.fatal(&id("a"), "bad".into());
        q.succeeded(&id("b"));
        assert_eq!(q.parked().len(), 1);
        assert_eq!(q.depth(), 0);
        assert!(q.next_due().is_none());
        q.push(id("a"), now);
        assert!(q.parked().is_empty());
        assert_eq!(q.take_due(now, 10), vec![id("a")]);
        q.fatal(&id("a"), "bad".into());
        q.unpark_all(now);
        assert_eq!(q.take_due(now, 10), vec![id("a")]);
    }

    #[test]
    fn take_due_is_bounded() {
        let mut q = queue();
        let now = Instant::now();
        for i in 0..10 {
            q.push(id(&format!("r{i}")), now);
        }
        assert_eq!(q.take_due(now, 3).len(), 3);
        assert_eq!(q.depth(), 7);
        q.not_started(&id("r0"), now);
        assert_eq!(q.depth(), 8);
    }
}
