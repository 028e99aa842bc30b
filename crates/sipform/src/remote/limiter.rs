//! The one request limiter every request of a run goes through (refresh, apply, re-reads):
//! how many may be in flight, and, once the server has answered 429, how fast they may start.
//!
//! `--parallelism auto` (the default) finds the server's limit instead of guessing it. The
//! concurrency limit starts at [`START`] and is adjusted once per window of completed requests
//! (at least [`MIN_WINDOW`], or the limit if larger: about one round trip's worth):
//! - a 429 in the window, or 5xx and transport failures (timeouts, resets) in more than
//!   [`DROP_SHARE`] of it, cut it by [`DROP_CUT`] (a server that fails a steady few percent
//!   of requests at random is not overloaded: cutting on each would leave one in flight);
//! - a window whose fastest round trip exceeds the fastest one seen by [`LATENCY_TOLERANCE`]
//!   plus [`LATENCY_SLACK`] cuts it by [`LATENCY_CUT`]. As in TCP Vegas and concurrency-limits'
//!   `VegasLimit`, the minimum is the signal: requests queued on the server make every round
//!   trip slower, the fastest included, while jitter and this process's own CPU contention
//!   show in the mean and the tail but leave some round trips fast;
//! - otherwise, if the limit was reached in the window, it grows: by half while nothing has
//!   pushed back yet (slow start), then by one (additive increase, multiplicative decrease as in
//!   TCP and Netflix's concurrency-limits `AIMDLimit`, with its gradient limiter's latency
//!   signal). `--max-parallelism` bounds it. Requests waiting for the pacer (below) hold a
//!   slot but do not count as in flight: when the pacer is what holds requests back, the
//!   limit is not reached and does not grow.
//!
//! A 429 says the server counts requests per second, which no concurrency limit expresses (a
//! 429 comes back at once, so its slot is free again at once). So the first 429 also starts a
//! pacer at 95 % of the success rate of the last answers; that is only a guess, so it ramps up
//! by [`PACE_RAMP`] every [`PACE_RAMP_EVERY`] while it holds requests back, until a 429 at the
//! pace. From then on, a 429 of a request that started at the current pace (those already
//! under way say nothing of it) measures the server's rate: a token bucket is empty at each
//! 429, so the successes between an earlier 429 (at least [`PACE_MEASURE`] before, within the
//! last second) and this one are what it refilled in between. The pace goes to [`PACE_CUT`]
//! times that rate, unless already lower: a later 429 at the new pace then measures the same
//! rate and leaves it there, rather than each cutting it again. Without such an earlier 429
//! (a probe's first one), the pace is cut to [`PACE_CUT`] times the lower of itself and the
//! last second's success rate. Either way, at most once per [`PACE_HOLD`] and never below
//! [`PACE_CUT_MOST`] of what it was. Every second without any 429 while the pacer is what
//! holds requests back raises it by [`PACE_RAISE`]: the first 429 ends a probe, so a probe
//! costs a request or two, not a second's overshoot. A 429'd request waits its `Retry-After`
//! and starts again through the pacer like any other. The pacer never banks unused time, so a
//! quiet moment or a pause is never followed by a burst.
//!
//! No crate fits: `tower`'s limits are static, and the maintained ports of concurrency-limits
//! are not for tokio clients; this is a few counters under one mutex.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
// tokio's clock: the same as std's at run time, and pausable in tests.
use tokio::time::Instant;

pub use crate::config::Parallelism;

/// Where `auto` starts.
pub(crate) const START: usize = 8;
/// Completed requests per adjustment, at least.
pub(crate) const MIN_WINDOW: usize = 16;
/// How much slower than the fastest round trip seen a window's fastest may be before the
/// window counts as queueing: this factor, plus [`LATENCY_SLACK`].
pub(crate) const LATENCY_TOLERANCE: f64 = 1.1;
/// Absolute slack on top of [`LATENCY_TOLERANCE`] (seconds), for very fast servers.
pub(crate) const LATENCY_SLACK: f64 = 0.002;
/// Multiplier of the limit after a window with a 429, or too many 5xx or transport failures.
pub(crate) const DROP_CUT: f64 = 0.7;
/// The share of a window's requests that may fail (5xx, transport) without a cut.
pub(crate) const DROP_SHARE: f64 = 0.25;
/// Multiplier of the limit after a window that queued.
pub(crate) const LATENCY_CUT: f64 = 0.9;
/// What share of the measured rate (or of the pace) a 429 at the pace leaves.
pub(crate) const PACE_CUT: f64 = 0.9;
/// The least share of the pace one cut leaves: a rate measured over few answers is rough,
/// and a server that answers only 429 for a while still brings it down within a second.
pub(crate) const PACE_CUT_MOST: f64 = 0.5;
/// Multiplier of the pace after a throttle-free second spent at the pace.
pub(crate) const PACE_RAISE: f64 = 1.05;
/// Multiplier of the pace while it ramps up to the first 429 at the pace.
pub(crate) const PACE_RAMP: f64 = 1.25;
/// How often the pace ramps up.
pub(crate) const PACE_RAMP_EVERY: Duration = Duration::from_millis(200);
/// After a change of the pace, how long before a 429 may cut it again (timer jitter on an
/// emptied bucket would otherwise cut it over and over).
pub(crate) const PACE_HOLD: Duration = Duration::from_millis(100);
/// The shortest time between two 429s over which the successes measure the server's rate
/// (shorter, a token more or less is a large error).
pub(crate) const PACE_MEASURE: Duration = Duration::from_millis(100);

/// What became of one request, as the limiter counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered (a success or a 4xx: either way, not overloaded).
    Answered,
    /// HTTP 429.
    Throttled,
    /// A 5xx, a timeout, a reset: the server may be overloaded.
    Dropped,
    /// Not sent, or says nothing of the server (a refused route, a halted write).
    Ignored,
}

/// What the run settled on, for the apply summary.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settled {
    /// Whether it was found (`auto`) or fixed.
    pub auto: bool,
    /// The limit the run spent most of its time at (fixed: the number given).
    pub parallelism: usize,
    pub max: usize,
    /// Requests per second the pacer settled on, when the server answered 429.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paced_per_second: Option<f64>,
    /// 429 answers seen.
    pub throttled: u64,
}

/// See the module documentation.
pub struct Limiter {
    mode: Parallelism,
    slots: Arc<Semaphore>,
    ctl: Mutex<Control>,
}

struct Control {
    limit: usize,
    /// Permits to forget as they come back, after a cut.
    excess: usize,
    in_flight: usize,
    window: Window,
    /// The fastest round trip of any window without failures (seconds).
    baseline: Option<f64>,
    slow_start: bool,
    /// Moving average of the limit, one step per window.
    settled: Option<f64>,
    pace: Option<Pace>,
    /// Completion times of the last second's answered requests: the rate the server took.
    answered: VecDeque<Instant>,
    /// When the last second's 429s came back: the server's bucket was empty then.
    throttled_at: VecDeque<Instant>,
    throttled: u64,
}

#[derive(Default)]
struct Window {
    answered: usize,
    failed: usize,
    throttled: usize,
    /// The fastest answered round trip (seconds).
    rtt_min: Option<f64>,
    max_in_flight: usize,
}

struct Pace {
    per_second: f64,
    /// Until the first 429 at the pace: the start rate is only a guess (at a run's start
    /// few requests have been answered yet), so it grows fast ([`PACE_RAMP`] every
    /// [`PACE_RAMP_EVERY`]) while it is what holds requests back.
    ramping: bool,
    next_start: Instant,
    last_change: Instant,
    /// The last 429 seen: a raise needs a quiet second (a quiet step while ramping).
    last_throttled: Option<Instant>,
    /// Counts the changes: a request records the pace it started at, and only a 429 of one
    /// started at the current pace tells something of it.
    epoch: u64,
    /// Whether the pacer made a request wait since its last change: only then is raising
    /// it a probe of the server (otherwise the concurrency limit is what holds requests).
    held: bool,
}

/// A slot: held while the request runs; [`Permit::finish`] reports what became of it.
pub(crate) struct Permit {
    limiter: Arc<Limiter>,
    slot: Option<OwnedSemaphorePermit>,
    started: Instant,
    /// The pace's epoch when the request was given its start time.
    epoch: Option<u64>,
}

impl Permit {
    /// Reports the request's outcome and frees the slot.
    pub fn finish(mut self, outcome: Outcome) {
        let rtt = self.started.elapsed();
        self.release(outcome, rtt);
    }

    fn release(&mut self, outcome: Outcome, rtt: Duration) {
        if let Some(slot) = self.slot.take() {
            self.limiter.done(slot, outcome, rtt, self.epoch);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.release(Outcome::Ignored, Duration::ZERO);
    }
}

impl Limiter {
    pub fn new(mode: Parallelism) -> Arc<Limiter> {
        let limit = match mode {
            Parallelism::Auto { max } => START.min(max.max(1)),
            Parallelism::Fixed(n) => n.max(1),
        };
        Arc::new(Limiter {
            mode,
            slots: Arc::new(Semaphore::new(limit)),
            ctl: Mutex::new(Control {
                limit,
                excess: 0,
                in_flight: 0,
                window: Window::default(),
                baseline: None,
                slow_start: true,
                settled: None,
                pace: None,
                answered: VecDeque::new(),
                throttled_at: VecDeque::new(),
                throttled: 0,
            }),
        })
    }

    fn ctl(&self) -> std::sync::MutexGuard<'_, Control> {
        self.ctl.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current concurrency limit.
    pub fn limit(&self) -> usize {
        self.ctl().limit
    }

    /// The current pace (requests per second), once the server has answered 429.
    pub fn pace(&self) -> Option<f64> {
        self.ctl().pace.as_ref().map(|p| p.per_second)
    }

    /// Waits for a slot, then for the pacer's next start time.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Permit {
        // The semaphore is never closed: `acquire_owned` cannot fail.
        let slot = self.slots.clone().acquire_owned().await.ok();
        let (wait_until, epoch) = {
            let mut c = self.ctl();
            let now = Instant::now();
            let epoch = c.pace.as_ref().map(|p| p.epoch);
            let wait = c.pace.as_mut().and_then(|p| {
                let at = p.next_start.max(now);
                p.next_start = at + Duration::from_secs_f64(1.0 / p.per_second);
                (at > now).then(|| {
                    p.held = true;
                    at
                })
            });
            (wait, epoch)
        };
        if let Some(at) = wait_until {
            tokio::time::sleep_until(at).await;
        }
        {
            let mut c = self.ctl();
            c.in_flight += 1;
            c.window.max_in_flight = c.window.max_in_flight.max(c.in_flight);
        }
        Permit {
            limiter: self.clone(),
            slot,
            started: Instant::now(),
            epoch,
        }
    }

    fn done(
        &self,
        slot: OwnedSemaphorePermit,
        outcome: Outcome,
        rtt: Duration,
        epoch: Option<u64>,
    ) {
        let mut c = self.ctl();
        c.in_flight = c.in_flight.saturating_sub(1);
        if c.excess > 0 {
            c.excess -= 1;
            slot.forget();
        } else {
            drop(slot);
        }
        let now = Instant::now();
        while c
            .answered
            .front()
            .is_some_and(|t| now - *t > Duration::from_secs(1))
        {
            c.answered.pop_front();
        }
        while c
            .throttled_at
            .front()
            .is_some_and(|t| now - *t > Duration::from_secs(1))
        {
            c.throttled_at.pop_front();
        }
        match outcome {
            Outcome::Answered => {
                c.window.answered += 1;
                let rtt = rtt.as_secs_f64();
                c.window.rtt_min = Some(c.window.rtt_min.map_or(rtt, |m| m.min(rtt)));
                c.answered.push_back(now);
                c.raise_pace(now);
            }
            Outcome::Throttled => {
                c.window.failed += 1;
                c.window.throttled += 1;
                c.throttled += 1;
                c.throttle(now, epoch);
            }
            Outcome::Dropped => c.window.failed += 1,
            Outcome::Ignored => {}
        }
        let size = c.window.answered + c.window.failed;
        if size >= MIN_WINDOW.max(c.limit) {
            if let Parallelism::Auto { max } = self.mode {
                let next = c.next_limit(max.max(1));
                if next != c.limit {
                    tracing::debug!(target: crate::LOG_TARGET, from = c.limit, to = next, "parallelism");
                }
                self.set_limit(&mut c, next);
            }
            let limit = c.limit as f64;
            c.settled = Some(c.settled.map_or(limit, |s| 0.8 * s + 0.2 * limit));
            c.window = Window::default();
        }
    }

    /// Moves the semaphore to `next` slots: more at once, fewer as they come back.
    fn set_limit(&self, c: &mut Control, next: usize) {
        if next > c.limit {
            let grow = next - c.limit;
            let absorbed = grow.min(c.excess);
            c.excess -= absorbed;
            self.slots.add_permits(grow - absorbed);
        } else {
            c.excess += c.limit - next;
            while c.excess > 0 {
                match self.slots.clone().try_acquire_owned() {
                    Ok(p) => {
                        p.forget();
                        c.excess -= 1;
                    }
                    Err(_) => break,
                }
            }
        }
        c.limit = next;
    }

    /// What the run settled on.
    pub fn settled(&self) -> Settled {
        let c = self.ctl();
        Settled {
            auto: matches!(self.mode, Parallelism::Auto { .. }),
            parallelism: c.settled.map_or(c.limit, |s| s.round().max(1.0) as usize),
            max: self.mode.max(),
            paced_per_second: c
                .pace
                .as_ref()
                .map(|p| (p.per_second * 10.0).round() / 10.0),
            throttled: c.throttled,
        }
    }
}

impl Control {
    /// The limit after the window just completed (see the module documentation).
    fn next_limit(&mut self, max: usize) -> usize {
        let w = &self.window;
        let fastest = w.rtt_min;
        let limit = self.limit as f64;
        let size = (w.answered + w.failed) as f64;
        let next = if w.throttled > 0 || w.failed as f64 > DROP_SHARE * size {
            self.slow_start = false;
            (limit * DROP_CUT).floor()
        } else if let (Some(m), Some(b)) = (fastest, self.baseline) {
            if m > b * LATENCY_TOLERANCE + LATENCY_SLACK {
                self.slow_start = false;
                (limit * LATENCY_CUT).floor()
            } else {
                self.grown(limit)
            }
        } else {
            self.grown(limit)
        };
        if w.failed == 0 {
            if let Some(m) = fastest {
                self.baseline = Some(self.baseline.map_or(m, |b| b.min(m)));
            }
        }
        (next as usize).clamp(1, max)
    }

    fn grown(&self, limit: f64) -> f64 {
        if self.window.max_in_flight < self.limit {
            limit // the limit did not hold anything back: no evidence it should grow
        } else if self.slow_start {
            (limit * 1.5).ceil()
        } else {
            limit + 1.0
        }
    }

    /// Requests per second answered over the last second (or what of it the answers span: a
    /// run's first second, or a client that sat idle, spans less).
    fn success_rate(&self, now: Instant) -> f64 {
        let span = self
            .answered
            .front()
            .map_or(1.0, |t| (now - *t).as_secs_f64().clamp(0.05, 1.0));
        self.answered.len() as f64 / span
    }

    /// The server's rate, measured between the oldest of the last second's 429s and `now`
    /// (see the module documentation), if they are far enough apart.
    fn measured_rate(&self, now: Instant) -> Option<f64> {
        let since = *self.throttled_at.front()?;
        let span = (now - since).as_secs_f64();
        if span < PACE_MEASURE.as_secs_f64() {
            return None;
        }
        let took = self.answered.iter().filter(|t| **t > since).count();
        Some(took as f64 / span)
    }

    /// A 429: start pacing at what the server took in the last second, or slow down to just
    /// below its rate (see the module documentation).
    fn throttle(&mut self, now: Instant, epoch: Option<u64>) {
        let measured = self.measured_rate(now);
        let took = self.success_rate(now);
        self.throttled_at.push_back(now);
        match &mut self.pace {
            None => {
                let rate = (took * 0.95).max(1.0);
                tracing::debug!(target: crate::LOG_TARGET, per_second = rate, "throttled: pacing starts");
                self.pace = Some(Pace {
                    per_second: rate,
                    ramping: true,
                    next_start: now,
                    last_change: now,
                    last_throttled: Some(now),
                    epoch: 0,
                    held: false,
                });
            }
            Some(p) => {
                p.last_throttled = Some(now);
                if epoch != Some(p.epoch) || now - p.last_change < PACE_HOLD {
                    return;
                }
                let next = match measured {
                    Some(rate) => rate * PACE_CUT,
                    None => p.per_second.min(took) * PACE_CUT,
                };
                // A few answers measure a rate roughly: one cut never more than halves it.
                let next = next.max(p.per_second * PACE_CUT_MOST).max(1.0);
                if next >= p.per_second && !p.ramping {
                    return;
                }
                let was = p.per_second;
                p.per_second = next.min(p.per_second);
                p.ramping = false;
                p.last_change = now;
                p.epoch += 1;
                p.held = false;
                tracing::debug!(target: crate::LOG_TARGET, from = was, to = p.per_second, ?measured, "throttled: pace cut");
            }
        }
    }

    /// A quiet step spent at the pace (it held requests back, the server took about that
    /// many, and no 429 came back): probe faster.
    fn raise_pace(&mut self, now: Instant) {
        let took = self.answered.len() as f64;
        if let Some(p) = &mut self.pace {
            let step = if p.ramping {
                PACE_RAMP_EVERY
            } else {
                Duration::from_secs(1)
            };
            let quiet =
                now - p.last_change >= step && p.last_throttled.is_none_or(|t| now - t >= step);
            if !p.held || !quiet || (!p.ramping && took < 0.9 * p.per_second) {
                return;
            }
            p.per_second *= if p.ramping { PACE_RAMP } else { PACE_RAISE };
            tracing::debug!(target: crate::LOG_TARGET, per_second = p.per_second, "pace raised");
            p.last_change = now;
            p.epoch += 1;
            p.held = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A server that handles `capacity` requests at once in `base`; beyond that they queue
    /// (Little's law: the round trip grows with what is in flight).
    async fn queueing_server(limiter: Arc<Limiter>, capacity: usize, base: Duration, n: usize) {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (limiter, in_flight) = (limiter.clone(), in_flight.clone());
                tokio::spawn(async move {
                    let permit = limiter.acquire().await;
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    let factor = (now as f64 / capacity as f64).max(1.0);
                    tokio::time::sleep(base.mul_f64(factor)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    permit.finish(Outcome::Answered);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn settles_within_a_quarter_of_where_latency_starts_to_rise() {
        for capacity in [12usize, 30, 50] {
            let limiter = Limiter::new(Parallelism::Auto { max: 64 });
            queueing_server(limiter.clone(), capacity, Duration::from_millis(20), 6000).await;
            let settled = limiter.settled().parallelism as f64;
            let c = capacity as f64;
            assert!(
                (settled - c).abs() <= 0.25 * c,
                "capacity {capacity}: settled at {settled}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn grows_to_the_maximum_while_latency_stays_flat() {
        let limiter = Limiter::new(Parallelism::Auto { max: 64 });
        queueing_server(limiter.clone(), 1000, Duration::from_millis(20), 3000).await;
        assert_eq!(limiter.limit(), 64);
        let fixed = Limiter::new(Parallelism::Fixed(5));
        queueing_server(fixed.clone(), 1000, Duration::from_millis(20), 500).await;
        assert_eq!(fixed.settled().parallelism, 5);
    }

    /// A token bucket of `per_second` (burst `burst`) in front of a server answering in
    /// `latency`: beyond it, 429 at once. Returns the share of 429s.
    async fn rate_limited(
        limiter: Arc<Limiter>,
        per_second: f64,
        burst: f64,
        latency: Duration,
        n: usize,
    ) -> f64 {
        let bucket = Arc::new(Mutex::new((burst, Instant::now())));
        let throttled = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (limiter, bucket, throttled) =
                    (limiter.clone(), bucket.clone(), throttled.clone());
                tokio::spawn(async move {
                    loop {
                        let permit = limiter.acquire().await;
                        let ok = {
                            let mut b = bucket.lock().unwrap();
                            let now = Instant::now();
                            b.0 = (b.0 + (now - b.1).as_secs_f64() * per_second).min(burst);
                            b.1 = now;
                            if b.0 >= 1.0 {
                                b.0 -= 1.0;
                                true
                            } else {
                                false
                            }
                        };
                        if ok {
                            tokio::time::sleep(latency).await;
                            permit.finish(Outcome::Answered);
                            return;
                        }
                        throttled.fetch_add(1, Ordering::SeqCst);
                        permit.finish(Outcome::Throttled);
                        tokio::time::sleep(Duration::from_secs(1)).await; // Retry-After: 1
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        throttled.load(Ordering::SeqCst) as f64 / (n + throttled.load(Ordering::SeqCst)) as f64
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_cuts_the_limit_and_paces_below_the_servers_rate() {
        let limiter = Limiter::new(Parallelism::Auto { max: 64 });
        let started = Instant::now();
        let share = rate_limited(
            limiter.clone(),
            500.0,
            50.0,
            Duration::from_millis(20),
            10_000,
        )
        .await;
        let took = started.elapsed().as_secs_f64();
        let pace = limiter.pace().expect("paced after a 429");
        // Probing around the server's rate: a little above it just before a cut.
        assert!((400.0..600.0).contains(&pace), "pace {pace}");
        assert!(
            share <= 0.02,
            "{:.1}% of requests answered 429",
            share * 100.0
        );
        assert!(took <= 1.15 * 10_000.0 / 500.0, "took {took:.1}s");
        // Unthrottled, it would have grown to 64.
        assert!(limiter.limit() < 64, "limit {}", limiter.limit());
    }

    /// A server that answers at once (as the emulator at `--latency-ms 0`): few requests in
    /// flight, so every probe above the server's rate shows in 429s at once. The pace must not
    /// go on rising while they come back.
    #[tokio::test(start_paused = true)]
    async fn paces_a_fast_token_bucket_without_probing_through_its_429s() {
        for per_second in [200.0, 500.0, 2000.0] {
            let limiter = Limiter::new(Parallelism::Auto { max: 64 });
            let started = Instant::now();
            let n = (per_second * 30.0) as usize;
            let share = rate_limited(
                limiter.clone(),
                per_second,
                50.0,
                Duration::from_millis(1),
                n,
            )
            .await;
            let took = started.elapsed().as_secs_f64();
            let limit = n as f64 / per_second;
            assert!(
                share <= 0.02,
                "{per_second}/s: {:.1}% of requests answered 429",
                share * 100.0
            );
            assert!(
                took <= 1.15 * limit,
                "{per_second}/s: took {took:.1}s for {limit:.1}s"
            );
        }
    }

    #[tokio::test]
    async fn a_cut_takes_slots_back_as_they_return() {
        let limiter = Limiter::new(Parallelism::Auto { max: 64 });
        let held: Vec<_> = futures_held(&limiter, START).await;
        {
            let mut c = limiter.ctl();
            limiter.set_limit(&mut c, 2);
        }
        drop(held);
        assert_eq!(limiter.slots.available_permits(), 2);
        {
            let mut c = limiter.ctl();
            limiter.set_limit(&mut c, 5);
        }
        assert_eq!(limiter.slots.available_permits(), 5);
    }

    async fn futures_held(limiter: &Arc<Limiter>, n: usize) -> Vec<Permit> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(limiter.acquire().await);
        }
        v
    }
}
