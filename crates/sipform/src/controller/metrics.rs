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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
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

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sipform_controller");
        let queue_depth = Gauge::default();
        let parked = Gauge::default();
        let reconciles = Family::<ResultLabel, Counter>::default();
        let reconcile_seconds = Histogram::new([
            0.025, 0.05, 0.1, 0.15, 0.25, 0.4, 0.6, 1.0, 2.5, 5.0, 10.0, 30.0,
        ]);
        let reloads = Family::<ResultLabel, Counter>::default();
        let leader = Gauge::default();
        let feed_connected = Gauge::default();
        let feed_installed = Gauge::default();
        feed_installed.set(1);
        let server_requests = Family::<KindLabel, Counter>::default();
        let since_resync = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "queue_depth",
            "Restaurants waiting to be reconciled (due or backing off)",
            queue_depth.clone(),
        );
        registry.register(
            "parked",
            "Restaurants parked after a fatal error, until their row changes",
            parked.clone(),
        );
        registry.register(
            "reconciles",
            "Restaurant reconciles by result (ok, changed, transient, fatal, held)",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time from taking a batch to its restaurants being reconciled",
            reconcile_seconds.clone(),
        );
        registry.register(
            "reloads",
            "Configuration reloads by result (ok, refused)",
            reloads.clone(),
        );
        registry.register(
            "leader",
            "1 when this controller is the active one",
            leader.clone(),
        );
        registry.register(
            "feed_connected",
            "1 when the change feed works: installed, and its LISTEN (PostgreSQL) or data_version watch (SQLite) up",
            feed_connected.clone(),
        );
        registry.register(
            "feed_installed",
            "1 when the change log and its triggers are installed (checked from the catalog)",
            feed_installed.clone(),
        );
        registry.register(
            "server_requests",
            "Requests to sip-agent-server (kind: request or retry)",
            server_requests.clone(),
        );
        registry.register(
            "seconds_since_full_resync",
            "Seconds since the last full resync ended (since start when none has)",
            since_resync.clone(),
        );
        Metrics {
            registry,
            queue_depth,
            parked,
            reconciles,
            reconcile_seconds,
            reloads,
            leader,
            feed_connected,
            feed_installed,
            server_requests,
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

    pub fn reloaded(&self, result: &str) {
        self.reloads
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }

    pub fn resynced(&self) {
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
}
