//! What an SRE alerts on, from the verdicts the loop records: how long a new restaurant waits
//! for its agent (from the moment the controller first sees it: a change-log entry, the
//! webhook, or a resync finding a row state lacks), how long a restaurant had been in sync
//! when drift was found, and how many restaurants are held, by why. Named like
//! Crossplane's `first_time_to_readiness_seconds` and `drift_seconds`.
//!
//! Pure: time is passed in; the metrics are the only output.

use std::collections::HashMap;
use std::time::Instant;

use super::metrics::Metrics;
use super::reconcile::{Said, Verdict};
use crate::model::ids::RestaurantId;

/// The times each restaurant's figures are measured from.
#[derive(Debug, Default)]
pub(crate) struct Slo {
    /// First seen and not yet live, by restaurant.
    first_seen: HashMap<RestaurantId, Instant>,
    /// When a reconcile last found it in sync (or made it so).
    in_sync_since: HashMap<RestaurantId, Instant>,
    /// Held restaurants and why (`window`, `live_calls`, `other`).
    held: HashMap<RestaurantId, &'static str>,
}

impl Slo {
    /// `id` was queued as new (a change, or a row state does not know): the clock of its
    /// time to live starts, unless it already runs.
    pub(crate) fn seen(&mut self, id: &RestaurantId, now: Instant) {
        if !self.first_seen.contains_key(id) {
            self.first_seen.insert(id.clone(), now);
        }
    }

    /// One verdict, into the metrics.
    pub(crate) fn record(
        &mut self,
        id: &RestaurantId,
        v: &Verdict,
        said: Option<&Said>,
        now: Instant,
        m: &Metrics,
    ) {
        match v {
            Verdict::Done { changes } => {
                let seen = self.first_seen.remove(id);
                if said.is_some_and(|s| s.created_agent) {
                    if let Some(at) = seen {
                        m.time_to_live.observe(now.duration_since(at).as_secs_f64());
                    }
                } else if *changes > 0 {
                    if let Some(at) = self.in_sync_since.get(id) {
                        m.drift_seconds
                            .observe(now.duration_since(*at).as_secs_f64());
                    }
                }
                self.in_sync_since.insert(id.clone(), now);
                self.held.remove(id);
            }
            Verdict::Held(_) => {
                let why = said.and_then(|s| s.hold).map_or("other", |(r, _)| r.key());
                self.held.insert(id.clone(), why);
            }
            Verdict::Suspended => {
                self.first_seen.remove(id);
                self.held.remove(id);
            }
            Verdict::Transient(_) | Verdict::Fatal(_) | Verdict::NotStarted => {
                self.held.remove(id);
            }
        }
    }

    /// The held gauge, by reason (every reason present, zero included).
    pub(crate) fn publish(&self, m: &Metrics) {
        for reason in ["window", "live_calls", "other"] {
            let n = self.held.values().filter(|r| **r == reason).count();
            m.held(reason, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::plan::HoldReason;

    fn said(created_agent: bool, hold: Option<HoldReason>) -> Said {
        Said {
            created_agent,
            hold: hold.map(|r| (r, None)),
            ..Said::default()
        }
    }

    #[test]
    fn time_to_live_drift_and_holds_are_measured() {
        let (m, mut slo) = (Metrics::new(), Slo::default());
        let t0 = Instant::now();
        let (a, b) = (RestaurantId::new("a"), RestaurantId::new("b"));
        slo.seen(&a, t0);
        slo.seen(&a, t0 + Duration::from_secs(5));
        let done = Verdict::Done { changes: 14 };
        slo.record(
            &a,
            &done,
            Some(&said(true, None)),
            t0 + Duration::from_secs(3),
            &m,
        );
        // In sync at 3 s; drift found and fixed at 63 s.
        slo.record(
            &a,
            &Verdict::Done { changes: 1 },
            Some(&said(false, None)),
            t0 + Duration::from_secs(63),
            &m,
        );
        let held = Verdict::Held("in a change window".into());
        slo.record(
            &b,
            &held,
            Some(&said(false, Some(HoldReason::Window))),
            t0,
            &m,
        );
        slo.publish(&m);
        let text = m.render();
        assert!(
            text.contains("sipform_controller_restaurant_time_to_live_seconds_sum 3.0"),
            "{text}"
        );
        assert!(
            text.contains("sipform_controller_restaurant_time_to_live_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("sipform_controller_drift_seconds_sum 60.0"),
            "{text}"
        );
        assert!(
            text.contains("sipform_controller_held_restaurants{reason=\"window\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sipform_controller_held_restaurants{reason=\"live_calls\"} 0"),
            "{text}"
        );
        slo.record(&b, &done, Some(&said(false, None)), t0, &m);
        slo.publish(&m);
        assert!(m
            .render()
            .contains("sipform_controller_held_restaurants{reason=\"window\"} 0"));
    }
}
