//! `rollout:` of `sipform.yaml`: how a change of existing agents reaches the fleet in waves
//! (a canary, then cumulative waves, a pause between them, a failure budget, a health gate).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `rollout:`: a change of existing agents across more restaurants than the canary goes out
/// in waves. New restaurants are never delayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutPolicy {
    /// The first restaurants to take a change: a count (chosen by a stable hash of the
    /// restaurant id) or an explicit list of restaurant ids.
    #[serde(default)]
    pub canary: Canary,
    /// The waves after the canary, cumulative: a percentage of the fleet (`"25%"`) or a count
    /// of restaurants. The last wave takes every restaurant left, whatever its size says.
    #[schemars(length(min = 1, max = 20))]
    pub waves: Vec<WaveSize>,
    /// How long to wait after a wave finished before the next starts (`10m`, `0s`), or
    /// `manual`: the next wave starts after `sipform rollout resume`.
    #[serde(default = "default_pause")]
    #[schemars(regex(pattern = r"^([0-9]+ *(ms|s|m|h)?|manual)$"))]
    pub pause: String,
    /// Failed restaurants a wave may have before the rollout halts (0: the first halts it).
    #[serde(default)]
    pub max_failures: u32,
    /// What the calls of a wave's agents must show before the next wave starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthPolicy>,
    /// How a rollback of a whole revision goes out (a revision the fleet ran before: the
    /// one the last rollout moved it from, or an ancestor of the fleet's commit), when it
    /// should go faster than a change: its own waves and pause. Unset: like any rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackPolicy>,
}

fn default_pause() -> String {
    "0s".into()
}

/// `rollout.rollback`: the waves and pause of a rollback; what it leaves out is the rollout's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackPolicy {
    /// The waves after the canary, cumulative, as `rollout.waves` (default: those).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 20))]
    pub waves: Option<Vec<WaveSize>>,
    /// The pause between waves, as `rollout.pause` (default: that one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+ *(ms|s|m|h)?|manual)$"))]
    pub pause: Option<String>,
}

impl RolloutPolicy {
    /// The policy a rollout goes by: for a rollback, `rollback:`'s waves and pause where set.
    pub fn for_rollout(&self, rollback: bool) -> RolloutPolicy {
        let mut p = self.clone();
        if let (true, Some(r)) = (rollback, &self.rollback) {
            if let Some(w) = &r.waves {
                p.waves = w.clone();
            }
            if let Some(pause) = &r.pause {
                p.pause = pause.clone();
            }
        }
        p
    }
}

/// `rollout.canary`: a count, or the restaurants by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Canary {
    /// This many restaurants, the first by a stable hash of their id.
    Count(u32),
    /// Exactly these restaurants (ids as in the inventory).
    Restaurants(#[schemars(length(min = 1))] Vec<String>),
}

impl Default for Canary {
    fn default() -> Self {
        Canary::Count(1)
    }
}

/// One wave's cumulative size: `"25%"` of the fleet, or a count of restaurants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum WaveSize {
    Count(#[schemars(range(min = 1))] u32),
    Percent(#[schemars(regex(pattern = r"^([1-9][0-9]?|100)%$"))] String),
}

impl WaveSize {
    /// How many restaurants of a fleet of `fleet` the wave reaches, cumulatively (at least
    /// one); `None` for a percentage that is not one (the schema refuses it first).
    pub fn reach(&self, fleet: usize) -> Option<usize> {
        match self {
            WaveSize::Count(n) => Some((*n as usize).min(fleet)),
            WaveSize::Percent(p) => {
                let pct: usize = p.strip_suffix('%')?.parse().ok()?;
                if !(1..=100).contains(&pct) {
                    return None;
                }
                Some(
                    (fleet * pct)
                        .div_ceil(100)
                        .clamp(1, fleet.max(1))
                        .min(fleet),
                )
            }
        }
    }
}

/// `rollout.health`: the call records a wave's agents must show since their change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthPolicy {
    /// Calls to observe across the wave's agents before judging it: until then the rollout
    /// waits (paused, not halted).
    #[serde(default)]
    pub min_calls: u32,
    /// The largest share of calls with outcome `error` (0 to 1) a healthy wave may have.
    #[serde(default = "default_rate")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_error_rate: f64,
    /// The largest share of calls with a tool error (an `errorLog`) a healthy wave may have.
    #[serde(default = "default_rate")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_tool_error_rate: f64,
}

fn default_rate() -> f64 {
    1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_reads_counts_percentages_and_lists() {
        let p: RolloutPolicy = serde_json::from_value(serde_json::json!({
            "canary": ["r1", "r2"], "waves": ["25%", 300], "pause": "manual",
            "max_failures": 2, "health": {"min_calls": 3, "max_error_rate": 0.2}
        }))
        .unwrap();
        assert_eq!(
            p.canary,
            Canary::Restaurants(vec!["r1".into(), "r2".into()])
        );
        assert_eq!(p.waves[0], WaveSize::Percent("25%".into()));
        assert_eq!(p.waves[1], WaveSize::Count(300));
        let h = p.health.unwrap();
        assert_eq!(h.min_calls, 3);
        assert_eq!(h.max_tool_error_rate, 1.0);
    }

    #[test]
    fn a_wave_reaches_its_share_rounded_up() {
        assert_eq!(WaveSize::Percent("25%".into()).reach(195), Some(49));
        assert_eq!(WaveSize::Percent("1%".into()).reach(10), Some(1));
        assert_eq!(WaveSize::Percent("100%".into()).reach(7), Some(7));
        assert_eq!(WaveSize::Count(500).reach(7), Some(7));
        assert_eq!(WaveSize::Percent("0%".into()).reach(7), None);
        assert_eq!(WaveSize::Percent("x".into()).reach(7), None);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let r: Result<RolloutPolicy, _> =
            serde_json::from_value(serde_json::json!({"waves": ["100%"], "pasue": "1m"}));
        assert!(r.is_err());
    }
}
