//! The run's one clock for change windows: the system's, or started at `SIPFORM_NOW` (RFC
//! 3339) and running on from there, so tests set the time of day instead of waiting for it.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};

/// Now, as change windows see it. Copied freely: it is an offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    /// Added to the system's time.
    offset: chrono::Duration,
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that reads `start` now and runs on at the system's pace.
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        Clock {
            offset: start - Utc::now(),
        }
    }

    /// From `SIPFORM_NOW`'s value (`None`: the system's clock). The value read first in a
    /// process sets the start: settings read again later (a controller's reload) keep the
    /// clock running instead of turning it back.
    pub fn from_env(value: Option<&str>) -> Result<Clock, String> {
        static FIRST: OnceLock<(String, Clock)> = OnceLock::new();
        let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(Clock::system());
        };
        let start = DateTime::parse_from_rfc3339(v).map_err(|e| {
            format!(
                "SIPFORM_NOW={v:?} is not an RFC 3339 time (e.g. 2026-12-07T12:00:00+01:00): {e}"
            )
        })?;
        let clock = Clock::starting_at(start.with_timezone(&Utc));
        let (first, kept) = FIRST.get_or_init(|| (v.to_string(), clock));
        Ok(if first == v { *kept } else { clock })
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }

    /// Whether this is the system's own clock (no `SIPFORM_NOW`).
    pub fn is_system(&self) -> bool {
        self.offset.is_zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sipform_now_sets_the_time_and_it_runs_on() {
        let c = Clock::from_env(Some("2026-12-07T12:00:00+01:00")).unwrap();
        let now = c.now();
        let start: DateTime<Utc> = "2026-12-07T11:00:00Z".parse().unwrap();
        assert!(
            now >= start && now - start < chrono::Duration::minutes(1),
            "{now}"
        );
        assert!(Clock::from_env(None).unwrap().is_system());
        assert!(Clock::from_env(Some("")).unwrap().is_system());
        let e = Clock::from_env(Some("noon")).unwrap_err();
        assert!(e.contains("SIPFORM_NOW") && e.contains("RFC 3339"), "{e}");
    }
}
