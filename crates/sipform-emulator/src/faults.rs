//! Fault injection: what the emulator does to a request before (and after) handling it.
//!
//! One seeded RNG decides every random fault, drawn in a fixed order per request, so the same
//! seed and the same sequence of requests replay the same faults.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::routes::TEMPLATES;

/// The fault set: the JSON of `POST /__emulator/faults` and `--faults FILE`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every management request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// Answer an error status instead of handling the request.
    pub errors: Vec<ErrorRule>,
    /// Handle (store) the write, then fail the answer.
    pub commit_then_fail: Vec<CommitThenFail>,
    /// Close the connection without an HTTP answer, before handling.
    pub resets: Vec<ResetRule>,
    /// Answer a DELETE `200` without deleting anything (a server that lies about a delete).
    /// Rules for other methods never match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored_deletes: Vec<ResetRule>,
    /// Token bucket over all management requests; beyond it 429 with `Retry-After`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Beyond this many requests in flight, answer 503.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// Store a write without one field of its body, and answer success (a server that drops
    /// or ignores a field: what a rollout's post-apply verification must catch).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped_fields: Vec<DropField>,
}

/// One field a write's body loses before it is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DropField {
    /// `POST`, `PUT` or `*`.
    #[serde(default = "star")]
    pub method: String,
    /// A route template such as `/api/agents/:id/tools/:toolId`, or `*`.
    #[serde(default = "star")]
    pub route: String,
    /// A top-level key of the body (`description`).
    pub field: String,
}

impl DropField {
    /// Whether this rule drops a field of `method route`'s body.
    pub(crate) fn matches(&self, method: &str, route: &str) -> bool {
        matches(&self.method, &self.route, method, route)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Latency {
    pub fixed_ms: u64,
    /// A uniform random extra in `0..=jitterMs`.
    pub jitter_ms: u64,
}

fn star() -> String {
    "*".into()
}

fn default_statuses() -> Vec<u16> {
    vec![500]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorRule {
    /// `GET`, `POST`, `PUT`, `DELETE` or `*`.
    #[serde(default = "star")]
    pub method: String,
    /// A route template such as `/api/agents/:id/tools`, or `*`.
    #[serde(default = "star")]
    pub route: String,
    /// Probability in `0..=1`.
    #[serde(serialize_with = "whole_as_int")]
    pub rate: f64,
    /// Picked uniformly; default `[500]`.
    #[serde(default = "default_statuses")]
    pub statuses: Vec<u16>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitFailMode {
    /// Store, then answer 500.
    #[default]
    Error,
    /// Store, then never answer: the client times out.
    Hang,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommitThenFail {
    #[serde(default = "star")]
    pub method: String,
    #[serde(default = "star")]
    pub route: String,
    #[serde(serialize_with = "whole_as_int")]
    pub rate: f64,
    #[serde(default)]
    pub mode: CommitFailMode,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetRule {
    #[serde(default = "star")]
    pub method: String,
    #[serde(default = "star")]
    pub route: String,
    #[serde(serialize_with = "whole_as_int")]
    pub rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Bucket size: requests allowed at once after a pause.
    pub burst: u32,
    /// Refill rate.
    #[serde(serialize_with = "whole_as_int")]
    pub per_second: f64,
    /// The `Retry-After` header value of a 429.
    #[serde(default = "one")]
    pub retry_after_sec: u64,
}

fn one() -> u64 {
    1
}

/// `1` stays `1` (not `1.0`), so `GET /__emulator/faults` returns the JSON that was posted.
fn whole_as_int<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

impl Faults {
    /// Refuses rates outside `0..=1`, unknown methods or routes, odd statuses: a typo in a
    /// fault file should fail loudly, not silently inject nothing.
    pub fn validate(&self) -> Result<(), String> {
        fn rule(kind: &str, i: usize, method: &str, route: &str, rate: f64) -> Result<(), String> {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!(
                    "{kind}[{i}].rate must be between 0 and 1, got {rate}"
                ));
            }
            if !["*", "GET", "POST", "PUT", "DELETE"]
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method))
            {
                return Err(format!(
                    "{kind}[{i}].method must be GET, POST, PUT, DELETE or *, got {method}"
                ));
            }
            if route != "*" && !TEMPLATES.iter().any(|(_, t)| *t == route) {
                return Err(format!(
                    "{kind}[{i}].route must be * or a route template such as /api/agents/:id/tools, got {route}"
                ));
            }
            Ok(())
        }
        for (i, r) in self.errors.iter().enumerate() {
            rule("errors", i, &r.method, &r.route, r.rate)?;
            if let Some(s) = r.statuses.iter().find(|s| !(100..=599).contains(*s)) {
                return Err(format!(
                    "errors[{i}].statuses holds {s}, not an HTTP status"
                ));
            }
        }
        for (i, r) in self.commit_then_fail.iter().enumerate() {
            rule("commitThenFail", i, &r.method, &r.route, r.rate)?;
        }
        for (i, r) in self.resets.iter().enumerate() {
            rule("resets", i, &r.method, &r.route, r.rate)?;
        }
        for (i, r) in self.ignored_deletes.iter().enumerate() {
            rule("ignoredDeletes", i, &r.method, &r.route, r.rate)?;
        }
        for (i, r) in self.dropped_fields.iter().enumerate() {
            rule("droppedFields", i, &r.method, &r.route, 1.0)?;
            if r.field.is_empty() {
                return Err(format!("droppedFields[{i}].field is empty"));
            }
        }
        if let Some(rl) = &self.rate_limit {
            if rl.burst == 0 || rl.per_second.is_nan() || rl.per_second <= 0.0 {
                return Err("rateLimit needs burst >= 1 and perSecond > 0".into());
            }
        }
        Ok(())
    }
}

fn matches(rule_method: &str, rule_route: &str, method: &str, route: &str) -> bool {
    (rule_method == "*" || rule_method.eq_ignore_ascii_case(method))
        && (rule_route == "*" || rule_route == route)
}

/// What the fault set decided for one request.
#[derive(Debug, Default)]
pub(crate) struct Decision {
    /// Answer this at once (429, 503), with an optional `Retry-After`.
    pub reject: Option<(u16, Option<u64>)>,
    pub reset: bool,
    pub delay: Duration,
    pub error: Option<u16>,
    /// Applied only if the request then succeeds.
    pub commit_then_fail: Option<CommitFailMode>,
    /// A DELETE answered `200` and not carried out.
    pub ignore_delete: bool,
}

/// The fault set plus its moving parts: the RNG and the token bucket.
pub(crate) struct FaultState {
    pub faults: Faults,
    rng: SmallRng,
    seed: u64,
    tokens: f64,
    last: Instant,
}

impl FaultState {
    pub fn new(faults: Faults, seed: u64) -> Self {
        let tokens = faults
            .rate_limit
            .as_ref()
            .map_or(0.0, |r| f64::from(r.burst));
        FaultState {
            faults,
            rng: SmallRng::seed_from_u64(seed),
            seed,
            tokens,
            last: Instant::now(),
        }
    }

    /// New fault set: the bucket starts full; the RNG keeps going.
    pub fn set(&mut self, faults: Faults) {
        self.tokens = faults
            .rate_limit
            .as_ref()
            .map_or(0.0, |r| f64::from(r.burst));
        self.last = Instant::now();
        self.faults = faults;
    }

    /// Back to the start: the RNG is reseeded, so a test can replay after a reset.
    pub fn reseed(&mut self) {
        self.rng = SmallRng::seed_from_u64(self.seed);
        let f = self.faults.clone();
        self.set(f);
    }

    fn draw(&mut self, rate: f64) -> bool {
        self.rng.random::<f64>() < rate
    }

    /// Decides every fault for one request, in a fixed order (in-flight, rate limit, reset,
    /// latency, error, commit-then-fail), drawing from the RNG only for rules that match.
    pub fn decide(&mut self, method: &str, route: &str, in_flight: usize) -> Decision {
        let mut d = Decision {
            reject: self.rejection(in_flight),
            ..Decision::default()
        };
        if d.reject.is_some() {
            return d;
        }
        let resets: Vec<f64> = self
            .faults
            .resets
            .iter()
            .filter(|r| matches(&r.method, &r.route, method, route))
            .map(|r| r.rate)
            .collect();
        for rate in resets {
            if self.draw(rate) {
                d.reset = true;
                return d;
            }
        }
        if let Some(l) = self.faults.latency.clone() {
            let jitter = if l.jitter_ms > 0 {
                self.rng.random_range(0..=l.jitter_ms)
            } else {
                0
            };
            d.delay = Duration::from_millis(l.fixed_ms + jitter);
        }
        let errors: Vec<(f64, Vec<u16>)> = self
            .faults
            .errors
            .iter()
            .filter(|r| matches(&r.method, &r.route, method, route))
            .map(|r| (r.rate, r.statuses.clone()))
            .collect();
        for (rate, statuses) in errors {
            if self.draw(rate) {
                let status = if statuses.is_empty() {
                    500
                } else {
                    statuses[self.rng.random_range(0..statuses.len())]
                };
                d.error = Some(status);
                return d;
            }
        }
        self.after_success(&mut d, method, route);
        d
    }

    /// Over `max_in_flight` (503), or out of rate-limit tokens (429 with its `Retry-After`).
    fn rejection(&mut self, in_flight: usize) -> Option<(u16, Option<u64>)> {
        if self
            .faults
            .max_in_flight
            .is_some_and(|max| in_flight > max as usize)
        {
            return Some((503, None));
        }
        let rl = self.faults.rate_limit.clone()?;
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rl.per_second).min(f64::from(rl.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            Some((429, Some(rl.retry_after_sec)))
        }
    }

    /// The faults that apply once the request succeeds: commit-then-fail, then (only for a
    /// DELETE, drawn last so the other faults replay as before) an ignored delete.
    fn after_success(&mut self, d: &mut Decision, method: &str, route: &str) {
        let ctf: Vec<(f64, CommitFailMode)> = self
            .faults
            .commit_then_fail
            .iter()
            .filter(|r| matches(&r.method, &r.route, method, route))
            .map(|r| (r.rate, r.mode))
            .collect();
        for (rate, mode) in ctf {
            if self.draw(rate) {
                d.commit_then_fail = Some(mode);
                break;
            }
        }
        // Drawn last, and only for a DELETE: the other faults replay as before.
        let ignored: Vec<f64> = self
            .faults
            .ignored_deletes
            .iter()
            .filter(|r| method == "DELETE" && matches(&r.method, &r.route, method, route))
            .map(|r| r.rate)
            .collect();
        for rate in ignored {
            if self.draw(rate) {
                d.ignore_delete = true;
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let f: Faults = serde_json::from_str(
            r#"{"latency": {"fixedMs": 20, "jitterMs": 5},
                "errors": [{"method": "*", "route": "/api/agents/:id/tools", "rate": 0.1, "statuses": [500,502,503]}],
                "commitThenFail": [{"method": "POST", "route": "*", "rate": 0.05, "mode": "hang"}],
                "resets": [{"rate": 0.02}],
                "rateLimit": {"burst": 50, "perSecond": 200, "retryAfterSec": 1},
                "maxInFlight": 64}"#,
        )
        .unwrap();
        assert!(f.validate().is_ok());
        assert_eq!(f.commit_then_fail[0].mode, CommitFailMode::Hang);
        assert_eq!(f.resets[0].route, "*");
    }

    #[test]
    fn typos_are_refused() {
        assert!(serde_json::from_str::<Faults>(r#"{"eror": []}"#).is_err());
        let f: Faults =
            serde_json::from_str(r#"{"errors": [{"route": "/api/agent", "rate": 0.5}]}"#).unwrap();
        assert!(f.validate().is_err());
        let f: Faults = serde_json::from_str(r#"{"errors": [{"rate": 1.5}]}"#).unwrap();
        assert!(f.validate().is_err());
    }
}
