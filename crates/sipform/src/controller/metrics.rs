//! The controller's metrics, in Prometheus' text format (`prometheus-client`, the
//! Prometheus project's own Rust crate: no global registry, no server). The binary serves
//! [`Metrics::render`] at `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::remote::Client;

/// How a reconcile ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

/// Why restaurants are held: `window`, `live_calls`, `other`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// The configuration in use: `commit` (empty outside git), `digest`, `dirty`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ConfigLabel {
    pub commit: String,
    pub digest: String,
    pub dirty: String,
}

/// Every metric the controller exports.
pub struct Metrics {
    registry: Registry,
    pub queue_depth: Gauge,
    pub parked: Gauge,
    pub reconciles: Family<ResultLabel, Counter>,
    pub reconcile_seconds: Histogram,
    pub reloads: Family<ResultLabel, Counter>,
    pub leader: Gauge,
    pub feed_connected: Gauge,
    /// 1 when the change feed's log and triggers are installed (or there is no feed).
    pub feed_installed: Gauge,
    pub server_requests: Family<KindLabel, Counter>,
    /// From a restaurant first seen to its agent made (Crossplane's first time to readiness).
    pub time_to_live: Histogram,
    /// How long a restaurant had been in sync when a reconcile found it changed.
    pub drift_seconds: Histogram,
    held_restaurants: Family<ReasonLabel, Gauge>,
    /// `sipform_config_info{commit,digest,dirty} 1`: the revision running (one series).
    config_info: Family<ConfigLabel, Gauge>,
    /// 1 while the followed repository's newest commit is refused or cannot be fetched.
    pub source_last_error: Gauge,
    /// Batches held because their plan went over the `guardrails:` limits.
    pub guardrail_refusals: Counter,
    /// Notifications by result (sent, failed, dropped), from the notifier's counters.
    notifications: Family<ResultLabel, Counter>,
    notify_stats: Mutex<Option<Arc<crate::notify::Stats>>>,
    seen_notifications: [AtomicU64; 3],
    since_resync: Gauge<f64, std::sync::atomic::AtomicU64>,
    last_resync: Mutex<Option<Instant>>,
    started: Instant,
    /// The client whose request counters `/metrics` reports.
    client_stats: Mutex<Option<Arc<crate::remote::transport::Stats>>>,
    seen_requests: AtomicU64,
    seen_retries: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The controller's metrics, `sipform_controller_<name>`, and their `# HELP` text.
const HELP: &[(&str, &str)] = &[
    (
        "queue_depth",
        "Restaurants waiting to be reconciled (due or backing off)",
    ),
    (
        "parked",
        "Restaurants parked after a fatal error, until their row changes",
    ),
    (
        "reconciles",
        "Restaurant reconciles by result (ok, changed, transient, fatal, held)",
    ),
    (
        "reconcile_duration_seconds",
        "Time from taking a batch to its restaurants being reconciled",
    ),
    (
        "reloads",
        "Configuration reloads by result (ok, refused)",
    ),
    (
        "leader",
        "1 when this controller is the active one",
    ),
    (
        "feed_connected",
        "1 when the change feed works: installed, and its LISTEN (PostgreSQL) or data_version watch (SQLite) up",
    ),
    (
        "feed_installed",
        "1 when the change log and its triggers are installed (checked from the catalog)",
    ),
    (
        "server_requests",
        "Requests to sip-agent-server (kind: request or retry)",
    ),
    (
        "seconds_since_full_resync",
        "Seconds since the last full resync ended (since start when none has)",
    ),
    (
        "restaurant_time_to_live_seconds",
        "Time from a restaurant first seen (change log, webhook, resync) to its agent created",
    ),
    (
        "drift_seconds",
        "How long a restaurant had been in sync when a reconcile found it out of sync and fixed it",
    ),
    (
        "held_restaurants",
        "Restaurants whose changes wait, by reason (window, live_calls, other)",
    ),
    (
        "source_last_error",
        "1 when the newest commit of controller.source was refused or could not be fetched",
    ),
    (
        "guardrail_refusals",
        "Reconcile batches held because their plan went over the guardrails: limits",
    ),
    (
        "notifications",
        "Webhook notifications by result (sent, failed after its retries, dropped on a full queue)",
    ),
];

/// Registers `metric` in `registry` under `name` (its help from [`HELP`]) and gives it back (a
/// handle to the same series: prometheus-client metrics are shared by clone).
fn registered<M>(registry: &mut Registry, name: &str, metric: M) -> M
where
    M: prometheus_client::registry::Metric + Clone,
{
    let help = HELP
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, h)| *h);
    registry.register(name, help, metric.clone());
    metric
}

/// Buckets from seconds (healthy) to a day (a change window held the restaurant).
const SLOW_BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0, 86_400.0,
];

/// The figures an SRE alerts on (see `controller::slo`), registered in `r`.
fn slo_metrics(r: &mut Registry) -> (Histogram, Histogram, Family<ReasonLabel, Gauge>) {
    (
        registered(
            r,
            "restaurant_time_to_live_seconds",
            Histogram::new(SLOW_BUCKETS),
        ),
        registered(r, "drift_seconds", Histogram::new(SLOW_BUCKETS)),
        registered(r, "held_restaurants", Family::default()),
    )
}

impl Metrics {
    pub fn new() -> Metrics {
        // `sipform_config_info` names the configuration, not the controller: the root
        // registry holds it, the controller's own metrics are under `sipform_controller_`.
        let mut root = Registry::with_prefix("sipform");
        let config_info = Family::<ConfigLabel, Gauge>::default();
        root.register(
            "config_info",
            "The configuration revision in use (commit empty outside git); always 1",
            config_info.clone(),
        );
        let r = root.sub_registry_with_prefix("controller");
        let queue_depth = registered(r, "queue_depth", Gauge::default());
        let parked = registered(r, "parked", Gauge::default());
        let reconciles = registered(r, "reconciles", Family::<ResultLabel, Counter>::default());
        let reconcile_seconds = registered(
            r,
            "reconcile_duration_seconds",
            Histogram::new([
                0.025, 0.05, 0.1, 0.15, 0.25, 0.4, 0.6, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        );
        let reloads = registered(r, "reloads", Family::<ResultLabel, Counter>::default());
        let leader = registered(r, "leader", Gauge::default());
        let feed_connected = registered(r, "feed_connected", Gauge::default());
        let feed_installed = registered(r, "feed_installed", Gauge::default());
        feed_installed.set(1);
        let server_requests = registered(
            r,
            "server_requests",
            Family::<KindLabel, Counter>::default(),
        );
        let since_resync = registered(
            r,
            "seconds_since_full_resync",
            Gauge::<f64, AtomicU64>::default(),
        );
        let source_last_error = registered(r, "source_last_error", Gauge::default());
        let guardrail_refusals = registered(r, "guardrail_refusals", Counter::default());
        let notifications = registered(
            r,
            "notifications",
            Family::<ResultLabel, Counter>::default(),
        );
        let (time_to_live, drift_seconds, held_restaurants) = slo_metrics(r);
        Metrics {
            guardrail_refusals,
            notifications,
            notify_stats: Mutex::new(None),
            seen_notifications: Default::default(),
            time_to_live,
            drift_seconds,
            held_restaurants,
            registry: root,
            source_last_error,
            queue_depth,
            parked,
            reconciles,
            reconcile_seconds,
            reloads,
            leader,
            feed_connected,
            feed_installed,
            server_requests,
            config_info,
            since_resync,
            last_resync: Mutex::new(None),
            started: Instant::now(),
            client_stats: Mutex::new(None),
            seen_requests: AtomicU64::new(0),
            seen_retries: AtomicU64::new(0),
        }
    }

    /// Counts one restaurant's reconcile.
    pub fn reconciled(&self, result: &str) {
        self.reconciles
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }

    /// `n` restaurants held for `reason`.
    pub fn held(&self, reason: &str, n: usize) {
        self.held_restaurants
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn reloaded(&self, result: &str) {
        self.reloads
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }

    /// The revision running now: the one series of `sipform_config_info`.
    pub fn config(&self, revision: &crate::revision::Revision) {
        self.config_info.clear();
        self.config_info
            .get_or_create(&ConfigLabel {
                commit: revision
                    .commit
                    .as_ref()
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                digest: revision.digest.to_string(),
                dirty: revision.dirty.to_string(),
            })
            .set(1);
    }

    pub(crate) fn resynced(&self) {
        *self
            .last_resync
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// The client whose request and retry counts are exported.
    pub fn watch_client(&self, client: &Client) {
        *self
            .client_stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(client.counters());
    }

    /// The notifier whose counters are exported.
    pub fn watch_notifier(&self, notifier: &crate::notify::Notifier) {
        *self
            .notify_stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(notifier.stats());
    }

    fn notifier_deltas(&self) {
        let guard = self
            .notify_stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(stats) = guard.as_ref() else { return };
        let totals = [
            (&stats.sent, "sent"),
            (&stats.failed, "failed"),
            (&stats.dropped, "dropped"),
        ];
        for ((total, result), seen) in totals.into_iter().zip(&self.seen_notifications) {
            let now = total.load(Ordering::Relaxed);
            let before = seen.swap(now, Ordering::Relaxed);
            if now > before {
                self.notifications
                    .get_or_create(&ResultLabel {
                        result: result.into(),
                    })
                    .inc_by(now - before);
            }
        }
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let since = self
            .last_resync
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or(self.started)
            .elapsed();
        self.since_resync.set(since.as_secs_f64());
        if let Some(stats) = self
            .client_stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            self.add_delta(&stats.requests, &self.seen_requests, "request");
            self.add_delta(&stats.retries, &self.seen_retries, "retry");
        }
        self.notifier_deltas();
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    fn add_delta(&self, total: &AtomicU64, seen: &AtomicU64, kind: &str) {
        let now = total.load(Ordering::Relaxed);
        let before = seen.swap(now, Ordering::Relaxed);
        if now > before {
            self.server_requests
                .get_or_create(&KindLabel { kind: kind.into() })
                .inc_by(now - before);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.queue_depth.set(3);
        m.reconciled("changed");
        m.reconciled("changed");
        m.reconcile_seconds.observe(0.12);
        m.reloaded("refused");
        let text = m.render();
        assert!(text.contains("sipform_controller_queue_depth 3"), "{text}");
        assert!(
            text.contains("sipform_controller_reconciles_total{result=\"changed\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("sipform_controller_reconcile_duration_seconds_bucket{le=\"0.15\"} 1"),
            "{text}"
        );
        assert!(text.contains("sipform_controller_reloads_total{result=\"refused\"} 1"));
        assert!(text.contains("sipform_controller_seconds_since_full_resync "));
        assert!(text.ends_with("# EOF\n"));
    }

    #[tokio::test]
    async fn guardrail_refusals_and_notifications_are_counted() {
        let m = Metrics::new();
        m.guardrail_refusals.inc();
        let notifier = crate::notify::Notifier::disabled();
        m.watch_notifier(&notifier);
        notifier.stats().dropped.fetch_add(2, Ordering::Relaxed);
        let text = m.render();
        assert!(
            text.contains("sipform_controller_guardrail_refusals_total 1"),
            "{text}"
        );
        assert!(
            text.contains("sipform_controller_notifications_total{result=\"dropped\"} 2"),
            "{text}"
        );
        // Read again: counted once.
        assert!(m
            .render()
            .contains("sipform_controller_notifications_total{result=\"dropped\"} 2"));
    }

    #[test]
    fn the_config_info_names_the_revision_running() {
        use crate::revision::{ConfigDigest, GitCommit, Revision};
        let m = Metrics::new();
        let at = |c: &str| Revision {
            commit: Some(GitCommit::parse(&c.repeat(40)).unwrap()),
            dirty: false,
            digest: ConfigDigest::from_sha256([1; 32]),
        };
        m.config(&at("a"));
        m.config(&at("b"));
        let text = m.render();
        let digest = ConfigDigest::from_sha256([1; 32]);
        let line = format!(
            "sipform_config_info{{commit=\"{}\",digest=\"{digest}\",dirty=\"false\"}} 1",
            "b".repeat(40)
        );
        assert!(text.contains(&line), "{text}");
        assert!(
            !text.contains(&"a".repeat(40)),
            "the old revision's series is gone: {text}"
        );
    }
}
