//! The work queue: which restaurants to reconcile, and when.
//!
//! Pure (no I/O, time passed in) so its rules are unit-tested: one entry per restaurant however
//! often it changes (the reconcile reads its latest row), an item never handed out twice at
//! once, exponential backoff per item after a transient failure, and a fatal failure parks the
//! item until its row changes again (or a reload).
//!
//! Two lanes, as controller-runtime's priority queue has: a change seen on the feed or the
//! webhook is `Fresh` and handed out before any `Background` work (a full resync's sweep, a
//! retry), so a restaurant inserted during a resync of 10,000 waits for one batch, not for the
//! sweep. A retry is due again at a time, on a heap: it never holds a worker while it waits.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use crate::model::ids::RestaurantId;

/// Which work goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// A restaurant state does not hold yet, seen on the feed or the webhook: ahead of
    /// everything else, so an insert during a storm of updates of 10,000 rows waits for one
    /// batch, not for the storm.
    New,
    /// A change seen on the feed or the webhook: ahead of the background.
    Fresh,
    /// A resync's sweep, a retry after a failure, a reload.
    Background,
}

#[derive(Debug, Clone, Copy)]
struct Item {
    due: Instant,
    /// Transient failures in a row: the next backoff is `base × 2^attempts`.
    attempts: u32,
    lane: Lane,
    /// The heap entry that stands for this item; older entries for it are stale.
    token: u64,
}

/// A heap entry: due time, then insertion order (first in, first out among equals).
type Entry = Reverse<(Instant, u64, RestaurantId)>;

/// Restaurants waiting to be reconciled, those being reconciled, and those parked.
#[derive(Debug)]
pub(crate) struct WorkQueue {
    pending: HashMap<RestaurantId, Item>,
    /// One heap per lane; an entry is live while its token is its item's.
    new: BinaryHeap<Entry>,
    fresh: BinaryHeap<Entry>,
    background: BinaryHeap<Entry>,
    /// Handed out and not yet finished, with their attempts so far and lane.
    in_flight: HashMap<RestaurantId, (u32, Lane)>,
    /// Failed fatally, with why: left alone until their row changes (or a reload); a resync
    /// does not wake them.
    parked: BTreeMap<RestaurantId, String>,
    base: Duration,
    max: Duration,
    seq: u64,
}

impl WorkQueue {
    /// Backoff doubles from `base` up to `max`.
    pub fn new(base: Duration, max: Duration) -> WorkQueue {
        WorkQueue {
            pending: HashMap::new(),
            new: BinaryHeap::new(),
            fresh: BinaryHeap::new(),
            background: BinaryHeap::new(),
            in_flight: HashMap::new(),
            parked: BTreeMap::new(),
            base: base.max(Duration::from_millis(1)),
            max: max.max(base),
            seq: 0,
        }
    }

    /// `id` changed (its row, the webhook): due now in the fresh lane, unless it is backing
    /// off after a transient failure (the server is likely still down: changing the row does
    /// not make it come back). A parked item is unparked: the change may be the fix.
    pub fn push(&mut self, id: RestaurantId, now: Instant) {
        self.push_in(id, now, Lane::Fresh);
    }

    /// [`WorkQueue::push`] for a restaurant state does not hold yet: in the new lane, ahead
    /// of every change of a known one.
    pub(crate) fn push_new(&mut self, id: RestaurantId, now: Instant) {
        self.push_in(id, now, Lane::New);
    }

    fn push_in(&mut self, id: RestaurantId, now: Instant, lane: Lane) {
        self.parked.remove(&id);
        match self.pending.get(&id) {
            Some(item) if item.attempts > 0 || item.lane == lane || item.lane == Lane::New => {}
            _ => self.put(id, now, 0, lane),
        }
    }

    /// `id` is swept by a resync: due at `at` in the background lane, unless it is already
    /// due sooner (or in a lane ahead), backing off, or parked (only a change of its row or a
    /// reload unparks it). A sweep item waiting for a later turn moves up: `POST
    /// /v1/reconcile` makes a resumed sweep's restaurants due now.
    pub(crate) fn push_resync(&mut self, id: RestaurantId, at: Instant) {
        match self.pending.get(&id) {
            Some(i) if i.attempts == 0 && i.lane == Lane::Background && i.due > at => {
                self.put(id, at, 0, Lane::Background)
            }
            Some(_) => {}
            None if self.parked.contains_key(&id) => {}
            None => self.put(id, at, 0, Lane::Background),
        }
    }

    /// Up to `max` items due at `now`: new ones alone when any is due (a new restaurant's
    /// batch waits for no update), else fresh ones (at most [`FRESH_BATCH`]) then the
    /// background, each lane in due order; each is in flight until reported. A retry (an item
    /// that failed before) is handed out alone: a restaurant whose calls keep failing fails no
    /// batch-mate with it.
    pub(crate) fn take_due(&mut self, now: Instant, max: usize) -> Vec<RestaurantId> {
        let mut due = Vec::new();
        for lane in [Lane::New, Lane::Fresh, Lane::Background] {
            if lane != Lane::New && self.new_only(&due) {
                return due;
            }
            let cap = match lane {
                Lane::Fresh => due.len() + FRESH_BATCH,
                _ => max,
            };
            while due.len() < max.min(cap) {
                self.clean(lane);
                let top = match self.heap(lane).peek() {
                    Some(Reverse((at, _, id))) if *at <= now => id.clone(),
                    _ => break,
                };
                let retry = self.pending.get(&top).is_some_and(|i| i.attempts > 0);
                if retry && !due.is_empty() {
                    break;
                }
                let Some(Reverse((_, _, id))) = self.heap(lane).pop() else {
                    break;
                };
                if let Some(item) = self.pending.remove(&id) {
                    self.in_flight
                        .insert(id.clone(), (item.attempts, item.lane));
                    due.push(id);
                }
                if retry {
                    return due;
                }
            }
        }
        due
    }

    /// Whether `due` holds new restaurants (taken from the new lane), which go alone.
    fn new_only(&self, due: &[RestaurantId]) -> bool {
        due.iter()
            .any(|id| matches!(self.in_flight.get(id), Some((_, Lane::New))))
    }

    /// Whether `id`, in flight, failed before: its batch is a retry (see [`Self::take_due`]).
    pub(crate) fn is_retry(&self, id: &RestaurantId) -> bool {
        self.in_flight
            .get(id)
            .is_some_and(|(attempts, _)| *attempts > 0)
    }

    /// Reconciled: forgotten (a change that came meanwhile stays pending).
    pub(crate) fn succeeded(&mut self, id: &RestaurantId) {
        self.in_flight.remove(id);
        self.requeue_waiting(id);
    }

    /// Failed in a way worth retrying: due again after its backoff (which is returned), in
    /// the background lane.
    pub fn transient(&mut self, id: &RestaurantId, now: Instant) -> Duration {
        let (attempts, _) = self.in_flight.remove(id).unwrap_or((0, Lane::Background));
        let attempts = attempts.saturating_add(1);
        let delay = self.backoff(attempts);
        let due = self
            .pending
            .get(id)
            .map_or(now + delay, |i| i.due.max(now + delay));
        self.put(id.clone(), due, attempts, Lane::Background);
        delay
    }

    /// Not started (the run was stopping): due again at once in its lane, without counting
    /// an attempt.
    pub fn not_started(&mut self, id: &RestaurantId, now: Instant) {
        let (attempts, lane) = self.in_flight.remove(id).unwrap_or((0, Lane::Background));
        if !self.pending.contains_key(id) {
            self.put(id.clone(), now, attempts, lane);
        } else {
            self.requeue_waiting(id);
        }
    }

    /// Failed in a way that will fail again the same way: parked, with why. A change that came
    /// while it was in flight keeps it pending instead (the change may be the fix).
    pub fn fatal(&mut self, id: &RestaurantId, why: String) {
        self.in_flight.remove(id);
        if self.pending.contains_key(id) {
            self.requeue_waiting(id);
        } else {
            self.parked.insert(id.clone(), why);
        }
    }

    /// Held (its change window is closed, its agent is in a call): due again at `at`, in the
    /// background lane, without counting an attempt. A change that came while it was in flight
    /// is looked at as soon as it is due (it may be a creation, which is never held).
    pub(crate) fn later(&mut self, id: &RestaurantId, at: Instant) {
        self.in_flight.remove(id);
        if self.pending.contains_key(id) {
            self.requeue_waiting(id);
        } else {
            self.put(id.clone(), at, 0, Lane::Background);
        }
    }

    /// Every parked item back in the queue (after a reload: the new files may fix them).
    pub(crate) fn unpark_all(&mut self, now: Instant) {
        for id in std::mem::take(&mut self.parked).into_keys() {
            self.push_resync(id, now);
        }
    }

    /// The lane `id` was handed out from, while it is in flight: a background item (a sweep's,
    /// a retry's) was read from the server, which is what makes it fresh.
    pub(crate) fn lane_in_flight(&self, id: &RestaurantId) -> Option<Lane> {
        self.in_flight.get(id).map(|(_, lane)| *lane)
    }

    /// When the earliest pending item not in flight is due.
    pub(crate) fn next_due(&mut self) -> Option<Instant> {
        self.clean(Lane::New);
        self.clean(Lane::Fresh);
        self.clean(Lane::Background);
        let first = |h: &BinaryHeap<Entry>| h.peek().map(|Reverse((at, _, _))| *at);
        [&self.new, &self.fresh, &self.background]
            .into_iter()
            .filter_map(first)
            .min()
    }

    /// Items waiting (due or backing off).
    pub fn depth(&self) -> usize {
        self.pending.len()
    }

    /// Items due at `now` (not backing off).
    pub(crate) fn due(&self, now: Instant) -> usize {
        self.pending.values().filter(|i| i.due <= now).count()
    }

    pub fn parked(&self) -> &BTreeMap<RestaurantId, String> {
        &self.parked
    }

    fn heap(&mut self, lane: Lane) -> &mut BinaryHeap<Entry> {
        match lane {
            Lane::New => &mut self.new,
            Lane::Fresh => &mut self.fresh,
            Lane::Background => &mut self.background,
        }
    }

    /// `id` pending, due at `due` in `lane`: one live heap entry (any older one goes stale).
    fn put(&mut self, id: RestaurantId, due: Instant, attempts: u32, lane: Lane) {
        self.seq += 1;
        let token = self.seq;
        self.pending.insert(
            id.clone(),
            Item {
                due,
                attempts,
                lane,
                token,
            },
        );
        self.heap(lane).push(Reverse((due, token, id)));
    }

    /// An item changed while in flight: its entry was dropped when met in flight, so it gets
    /// a new one now that it is done.
    fn requeue_waiting(&mut self, id: &RestaurantId) {
        if let Some(item) = self.pending.get(id).copied() {
            self.put(id.clone(), item.due, item.attempts, item.lane);
        }
    }

    /// Drops the heap's stale top entries: superseded, or for an item in flight (it gets a new
    /// entry when it is done).
    fn clean(&mut self, lane: Lane) {
        loop {
            let heap = match lane {
                Lane::New => &self.new,
                Lane::Fresh => &self.fresh,
                Lane::Background => &self.background,
            };
            let live = match heap.peek() {
                None => return,
                Some(Reverse((_, token, id))) => {
                    !self.in_flight.contains_key(id)
                        && self
                            .pending
                            .get(id)
                            .is_some_and(|i| i.token == *token && i.lane == lane)
                }
            };
            if live {
                return;
            }
            self.heap(lane).pop();
        }
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// When item `i` of a sweep of `n` is due, from the sweep's start: spread evenly over `over`,
/// each in its own slot at `jitter` (in `0..1`) of it, so a sweep of 10,000 restaurants every
/// 10 minutes sends about 17 reads a second rather than all at once.
pub fn spread(i: usize, n: usize, over: Duration, jitter: f64) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    let slot = (i as f64 + jitter.clamp(0.0, 0.999_999)) / n as f64;
    over.mul_f64(slot.clamp(0.0, 1.0))
}

/// Changes of known restaurants in one batch, at most: a batch of a storm of updates (every
/// row changed) is short, so an insert arriving meanwhile waits for five updates, not for a
/// hundred. Five: their reads (two lists each) fit in one round of the default 10 client
/// slots; ten took two (measured at 10,000 held: ~100 ms a batch against ~70). New
/// restaurants and the background fill batches up to `--batch-size`.
pub const FRESH_BATCH: usize = 5;

/// A sweep's items come due on a grid of this step (their times rounded up to it), so the
/// loop takes them a batch a second, not one at a time: each batch's fixed cost (the state
/// lock, state's serial, the rows' read) is paid once per step, not once per restaurant.
pub const SWEEP_STEP: Duration = Duration::from_secs(1);

/// `offset` rounded up to the next multiple of [`SWEEP_STEP`].
pub fn on_step(offset: Duration) -> Duration {
    let step = SWEEP_STEP.as_nanos();
    let steps = offset.as_nanos().div_ceil(step);
    Duration::from_nanos(u64::try_from(steps * step).unwrap_or(u64::MAX))
}

/// Jitter added when a sweep is resumed, as a share of the interval: restaurants checked in
/// the same second by the previous leader do not all come due in the same tick.
const RESUME_JITTER: f64 = 0.01;

/// When a restaurant last checked `age` ago is due again, from now, when a leader resumes the
/// sweep instead of starting one (at start, after a failover): one interval after its check
/// (`every - age`), plus a jitter (in `0..1`) of at most [`RESUME_JITTER`] of the interval. A
/// restaurant never checked (`None`), or checked an interval ago or more, is due at once.
pub fn resume_after(age: Option<Duration>, every: Duration, jitter: f64) -> Duration {
    match age {
        Some(age) if age < every => {
            (every - age) + every.mul_f64(RESUME_JITTER * jitter.clamp(0.0, 1.0))
        }
        _ => Duration::ZERO,
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
    fn a_held_item_comes_back_when_its_window_opens() {
        let mut q = queue();
        let now = Instant::now();
        q.push(id("a"), now);
        assert_eq!(q.take_due(now, 10), vec![id("a")]);
        let opens = now + Duration::from_secs(9000);
        q.later(&id("a"), opens);
        assert_eq!(q.depth(), 1);
        assert!(q.take_due(now + Duration::from_secs(8999), 10).is_empty());
        assert_eq!(q.next_due(), Some(opens));
        assert_eq!(q.take_due(opens, 10), vec![id("a")]);
        // A change while held in flight is looked at when due, not at the window's end.
        q.push(id("a"), opens);
        q.later(&id("a"), opens + Duration::from_secs(9000));
        assert_eq!(q.take_due(opens, 10), vec![id("a")]);
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

    #[test]
    fn fresh_changes_go_before_a_resync_sweep() {
        let mut q = queue();
        let now = Instant::now();
        for i in 0..100 {
            q.push_resync(id(&format!("r{i:03}")), now);
        }
        q.push(id("new"), now + Duration::from_millis(5));
        // A restaurant already swept, changed: promoted to the fresh lane.
        q.push(id("r050"), now + Duration::from_millis(5));
        let first = q.take_due(now + Duration::from_millis(5), 3);
        assert_eq!(first, vec![id("new"), id("r050"), id("r000")]);
        assert_eq!(q.depth(), 98);
    }

    #[test]
    fn a_resync_does_not_unpark_only_a_change_or_a_reload_does() {
        let mut q = queue();
        let now = Instant::now();
        q.push(id("a"), now);
        q.take_due(now, 10);
        q.fatal(&id("a"), "bad row".into());
        q.push_resync(id("a"), now);
        assert!(q.take_due(now, 10).is_empty(), "a resync woke a parked row");
        assert_eq!(q.parked().len(), 1);
        q.push(id("a"), now);
        assert_eq!(q.take_due(now, 10), vec![id("a")]);
        q.fatal(&id("a"), "bad row".into());
        q.unpark_all(now);
        assert_eq!(q.take_due(now, 10), vec![id("a")]);
    }

    #[test]
    fn a_failing_item_waits_on_the_heap_not_in_front_of_others() {
        let mut q = queue();
        let now = Instant::now();
        q.push(id("bad"), now);
        assert_eq!(q.take_due(now, 10), vec![id("bad")]);
        let delay = q.transient(&id("bad"), now);
        // Its row changing again while it backs off does not make it due sooner.
        q.push(id("bad"), now);
        q.push(id("good"), now);
        assert_eq!(q.take_due(now, 10), vec![id("good")]);
        assert_eq!(q.next_due(), Some(now + delay));
        assert_eq!(q.take_due(now + delay, 10), vec![id("bad")]);
    }

    #[test]
    fn a_change_while_in_flight_is_handed_out_after_any_verdict() {
        let now = Instant::now();
        for verdict in 0..3 {
            let mut q = queue();
            q.push(id("a"), now);
            q.take_due(now, 10);
            q.push(id("a"), now);
            assert!(q.next_due().is_none(), "in flight: not due");
            match verdict {
                0 => q.succeeded(&id("a")),
                1 => q.fatal(&id("a"), "x".into()),
                _ => q.not_started(&id("a"), now),
            }
            assert_eq!(q.take_due(now, 10), vec![id("a")], "verdict {verdict}");
            assert!(q.parked().is_empty());
        }
    }

    #[test]
    fn a_resumed_sweep_goes_on_where_the_last_check_left_it() {
        let every = Duration::from_secs(600);
        let min = Duration::from_secs(60);
        // Checked a minute ago: due nine minutes from now (and at most 1 % later).
        let due = resume_after(Some(min), every, 0.0);
        assert_eq!(due, every - min);
        let late = resume_after(Some(min), every, 1.0);
        assert!(late > due && late <= due + every / 100, "{late:?}");
        // Never checked, or stale: due at once, ahead of the fresh ones.
        assert_eq!(resume_after(None, every, 0.5), Duration::ZERO);
        assert_eq!(resume_after(Some(every), every, 0.5), Duration::ZERO);
        assert_eq!(resume_after(Some(every * 3), every, 0.5), Duration::ZERO);
        // Checked just now: a whole interval away.
        assert!(resume_after(Some(Duration::ZERO), every, 0.0) == every);
    }

    #[test]
    fn a_new_restaurant_goes_before_a_storm_of_changes() {
        let mut q = queue();
        let now = Instant::now();
        for i in 0..100 {
            q.push(id(&format!("r{i:03}")), now);
        }
        q.push_new(id("new"), now + Duration::from_millis(5));
        // A change of the new one before its create is done keeps it in the new lane.
        q.push(id("new"), now + Duration::from_millis(6));
        let first = q.take_due(now + Duration::from_millis(6), 2);
        // Alone: a new restaurant's batch waits for no update.
        assert_eq!(first, vec![id("new")]);
        assert_eq!(q.lane_in_flight(&id("new")), Some(Lane::New));
        // A storm's batch is short: an insert arriving meanwhile waits for a few updates.
        let next = q.take_due(now + Duration::from_millis(6), 100);
        assert_eq!(next.len(), FRESH_BATCH);
    }

    #[test]
    fn a_sweep_comes_due_a_step_at_a_time() {
        assert_eq!(on_step(Duration::ZERO), Duration::ZERO);
        assert_eq!(on_step(Duration::from_millis(1)), SWEEP_STEP);
        assert_eq!(on_step(SWEEP_STEP), SWEEP_STEP);
        assert_eq!(on_step(Duration::from_millis(2_500)), SWEEP_STEP * 3);
        // 10,000 over ten minutes: 600 batches of about 17, not 10,000 of one.
        let over = Duration::from_secs(600);
        let n = 10_000;
        let steps: std::collections::BTreeSet<Duration> =
            (0..n).map(|i| on_step(spread(i, n, over, 0.5))).collect();
        assert_eq!(steps.len(), 600);
    }

    #[test]
    fn a_retry_goes_alone() {
        let mut q = queue();
        let now = Instant::now();
        q.push(id("bad"), now);
        q.take_due(now, 10);
        let delay = q.transient(&id("bad"), now);
        let t = now + delay;
        for i in 0..3 {
            q.push_resync(id(&format!("r{i}")), t);
        }
        q.push(id("new"), t);
        assert_eq!(
            q.take_due(t, 10),
            vec![id("new")],
            "the retry waits its own batch"
        );
        assert_eq!(q.take_due(t, 10), vec![id("bad")]);
        q.succeeded(&id("new"));
        assert_eq!(q.take_due(t, 10).len(), 3);
    }

    #[test]
    fn a_sweep_asked_for_now_moves_up_a_later_turn_but_not_a_backoff() {
        let mut q = queue();
        let now = Instant::now();
        let later = now + Duration::from_secs(600);
        q.push_resync(id("waiting"), later);
        q.push(id("failing"), now);
        q.take_due(now, 10);
        q.transient(&id("failing"), now);
        q.push_resync(id("waiting"), now);
        q.push_resync(id("failing"), now);
        assert_eq!(q.take_due(now, 10), vec![id("waiting")]);
        // A later turn never pushes an earlier one back.
        q.push_resync(id("soon"), now);
        q.push_resync(id("soon"), later);
        assert_eq!(q.take_due(now, 10), vec![id("soon")]);
    }

    #[test]
    fn the_lane_of_an_item_is_known_while_it_is_in_flight() {
        let mut q = queue();
        let now = Instant::now();
        q.push(id("new"), now);
        q.push_resync(id("old"), now);
        assert_eq!(q.take_due(now, 10), vec![id("new"), id("old")]);
        assert_eq!(q.lane_in_flight(&id("new")), Some(Lane::Fresh));
        assert_eq!(q.lane_in_flight(&id("old")), Some(Lane::Background));
        q.succeeded(&id("old"));
        assert_eq!(q.lane_in_flight(&id("old")), None);
    }

    #[test]
    fn a_sweep_is_spread_evenly_over_the_interval() {
        let over = Duration::from_secs(600);
        let n = 10_000;
        let offsets: Vec<Duration> = (0..n).map(|i| spread(i, n, over, 0.5)).collect();
        assert!(offsets.iter().all(|d| *d < over));
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
        // Every minute of the ten holds a tenth of the sweep.
        for minute in 0..10u64 {
            let (from, to) = (
                Duration::from_secs(minute * 60),
                Duration::from_secs((minute + 1) * 60),
            );
            let here = offsets.iter().filter(|d| **d >= from && **d < to).count();
            assert_eq!(here, n / 10, "minute {minute}");
        }
        // Jitter moves an item within its own slot only.
        let slot = over / n as u32;
        assert!(spread(7, n, over, 0.0) >= slot * 7);
        assert!(spread(7, n, over, 0.99) < slot * 8);
        assert_eq!(spread(0, 0, over, 0.5), Duration::ZERO);
    }
}
