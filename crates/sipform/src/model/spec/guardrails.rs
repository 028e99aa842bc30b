//! `guardrails:` of `sipform.yaml`: how much of the fleet one plan may delete, deactivate or
//! change before a human must name the count (`--allow-changes N`), and what a plan over a
//! limit records ([`Breach`]).
//!
//! One wrong inventory filter or template edit can plan thousands of deletes or
//! deactivations; `--allow-destroy` alone does not say how many. The limits are counted in
//! restaurants (a restaurant counts once however many of its objects change), against the
//! fleet: the restaurants state records.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A percentage limit never allows fewer restaurants than this: in a fleet of 3, 5% would
/// otherwise block deleting the one test restaurant. A count limit (`max_deletes: 0`) is exact.
pub const PERCENT_FLOOR: u64 = 3;

/// `max_deletes` and `max_deactivations` when `sipform.yaml` does not say: more than a few
/// percent of the fleet needs a human.
pub const DEFAULT_SHARE: Limit = Limit::Share { basis_points: 500 };

/// `guardrails:` as written. An absent key takes its default: 5% for deletes and
/// deactivations; no limit on changed restaurants (a tool edit changes every restaurant, and
/// that is the usual run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardrailsConfig {
    /// Most restaurants whose agent one plan deletes (a restaurant gone from the inventory,
    /// applied with `--allow-destroy`): a count (`10`) or a share of the fleet (`"5%"`).
    /// Default `"5%"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deletes: Option<Limit>,
    /// Most restaurants one plan stops from answering: agent or phone line `isActive` going
    /// to false, or the agent deleted. Default `"5%"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deactivations: Option<Limit>,
    /// Most existing restaurants one plan changes in any way (new restaurants are not
    /// counted). No limit by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_changed: Option<Limit>,
}

impl GuardrailsConfig {
    pub fn is_empty(&self) -> bool {
        *self == GuardrailsConfig::default()
    }

    /// Each limit in force, with its default applied.
    pub fn limits(&self) -> Vec<(LimitKind, Limit)> {
        let mut out = vec![
            (
                LimitKind::Deletes,
                self.max_deletes.unwrap_or(DEFAULT_SHARE),
            ),
            (
                LimitKind::Deactivations,
                self.max_deactivations.unwrap_or(DEFAULT_SHARE),
            ),
        ];
        if let Some(l) = self.max_changed {
            out.push((LimitKind::Changed, l));
        }
        out
    }
}

/// A count of restaurants, or a share of the fleet in hundredths of a percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Count(u64),
    Share { basis_points: u32 },
}

impl Limit {
    /// The most restaurants allowed in a fleet of `fleet`: a share rounded up, and never
    /// under [`PERCENT_FLOOR`].
    pub fn allowed(&self, fleet: u64) -> u64 {
        match *self {
            Limit::Count(n) => n,
            Limit::Share { basis_points } => {
                let share = fleet
                    .saturating_mul(u64::from(basis_points))
                    .div_ceil(10_000);
                share.max(PERCENT_FLOOR)
            }
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Limit::Count(n) => write!(f, "{n}"),
            Limit::Share { basis_points } if basis_points % 100 == 0 => {
                write!(f, "{}%", basis_points / 100)
            }
            Limit::Share { basis_points } => {
                let frac = format!("{:02}", basis_points % 100);
                write!(f, "{}.{}%", basis_points / 100, frac.trim_end_matches('0'))
            }
        }
    }
}

impl std::str::FromStr for Limit {
    type Err = String;

    /// `10`, `5%`, `2.5%` (at most two decimals, at most 100%).
    fn from_str(s: &str) -> Result<Limit, String> {
        let t = s.trim();
        let bad = || format!("invalid limit {s:?}: expected a count (10) or a share (\"5%\")");
        let Some(pct) = t.strip_suffix('%') else {
            return t.parse().map(Limit::Count).map_err(|_| bad());
        };
        let (whole, frac) = pct.split_once('.').unwrap_or((pct, ""));
        let digits =
            |d: &str| !d.is_empty() && d.len() <= 3 && d.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || frac.len() > 2 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let whole: u32 = whole.parse().map_err(|_| bad())?;
        let frac: u32 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
        let basis_points = whole * 100 + frac;
        if basis_points > 10_000 {
            return Err(format!("invalid limit {s:?}: a share is at most 100%"));
        }
        Ok(Limit::Share { basis_points })
    }
}

/// The written form: a number, or a string holding a number or a share.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "GuardrailLimit")]
enum LimitWire {
    /// A count of restaurants.
    Count(u64),
    /// A share of the fleet (`"5%"`, `"2.5%"`), or a count as text.
    Text(#[schemars(regex(pattern = r"^ *[0-9]+(\.[0-9]{1,2})? *%? *$"))] String),
}

impl Serialize for Limit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Limit::Count(n) => LimitWire::Count(*n),
            share => LimitWire::Text(share.to_string()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Limit, D::Error> {
        match LimitWire::deserialize(d)? {
            LimitWire::Count(n) => Ok(Limit::Count(n)),
            LimitWire::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl JsonSchema for Limit {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        LimitWire::schema_name()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        LimitWire::json_schema(g)
    }
}

/// Which limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    #[serde(rename = "max_deletes")]
    Deletes,
    #[serde(rename = "max_deactivations")]
    Deactivations,
    #[serde(rename = "max_changed")]
    Changed,
}

impl LimitKind {
    /// The key in `sipform.yaml`'s `guardrails:`.
    pub fn key(self) -> &'static str {
        match self {
            LimitKind::Deletes => "max_deletes",
            LimitKind::Deactivations => "max_deactivations",
            LimitKind::Changed => "max_changed",
        }
    }

    /// What is counted (`deleted`), after "restaurants".
    pub fn counted(self) -> &'static str {
        match self {
            LimitKind::Deletes => "deleted",
            LimitKind::Deactivations => "deactivated",
            LimitKind::Changed => "changed (existing)",
        }
    }
}

/// A limit a plan goes over: what it counts, the most allowed, and why that many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Breach {
    pub limit: LimitKind,
    /// Restaurants the plan counts for it.
    pub count: u64,
    /// The most it allows for this fleet.
    pub allowed: u64,
    /// The limit as written (`5%`, `10`).
    pub setting: String,
    /// Restaurants in the fleet the share is of.
    pub fleet: u64,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (noun, verb) = if self.count == 1 {
            ("restaurant", "exceeds")
        } else {
            ("restaurants", "exceed")
        };
        write!(
            f,
            "{} {noun} {} {verb} guardrails.{} ({}",
            self.count,
            self.limit.counted(),
            self.limit.key(),
            self.setting
        )?;
        if self.setting.ends_with('%') {
            write!(f, " of a fleet of {}", self.fleet)?;
        }
        write!(
            f,
            ": at most {}) by {}",
            self.allowed,
            self.count.saturating_sub(self.allowed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_from_counts_and_shares() {
        assert_eq!("10".parse(), Ok(Limit::Count(10)));
        assert_eq!("5%".parse(), Ok(Limit::Share { basis_points: 500 }));
        assert_eq!("2.5%".parse(), Ok(Limit::Share { basis_points: 250 }));
        assert_eq!("0.25%".parse(), Ok(Limit::Share { basis_points: 25 }));
        assert_eq!(
            "100%".parse(),
            Ok(Limit::Share {
                basis_points: 10_000
            })
        );
        for bad in ["101%", "5 percent", "%", "-1", "1.234%", "x%", "", "1e3%"] {
            assert!(bad.parse::<Limit>().is_err(), "{bad}");
        }
        for s in ["5%", "2.5%", "0.25%", "12"] {
            assert_eq!(s.parse::<Limit>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn a_share_rounds_up_and_never_goes_under_the_floor() {
        let five = Limit::Share { basis_points: 500 };
        assert_eq!(five.allowed(100), 5);
        assert_eq!(five.allowed(101), 6);
        assert_eq!(five.allowed(10_000), 500);
        // Tiny fleets: deleting the one test restaurant of 3 is not blocked.
        assert_eq!(five.allowed(3), PERCENT_FLOOR);
        assert_eq!(five.allowed(0), PERCENT_FLOOR);
        assert_eq!(Limit::Count(0).allowed(1_000), 0);
    }

    #[test]
    fn yaml_takes_numbers_and_strings() {
        let g: GuardrailsConfig = serde_json::from_value(serde_json::json!({
            "max_deletes": 10, "max_deactivations": "5%", "max_changed": "50%"
        }))
        .unwrap();
        assert_eq!(g.max_deletes, Some(Limit::Count(10)));
        assert_eq!(g.max_changed, Some(Limit::Share { basis_points: 5000 }));
        let e = serde_json::from_value::<GuardrailsConfig>(serde_json::json!({
            "max_deletes": "lots"
        }))
        .unwrap_err();
        assert!(e.to_string().contains("invalid limit"), "{e}");
        assert_eq!(GuardrailsConfig::default().limits().len(), 2);
    }

    #[test]
    fn a_breach_says_which_limit_and_by_how_much() {
        let b = Breach {
            limit: LimitKind::Deactivations,
            count: 60,
            allowed: 5,
            setting: "5%".into(),
            fleet: 100,
        };
        assert_eq!(
            b.to_string(),
            "60 restaurants deactivated exceed guardrails.max_deactivations (5% of a fleet of 100: at most 5) by 55"
        );
    }
}
