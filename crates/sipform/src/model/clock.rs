//! The run's one clock for change windows: the system's, or started at `SIPFORM_NOW` (RFC
//! 3339) and running on from there, so tests set the time of day instead of waiting for it.

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

    /// From `SIPFORM_NOW`'s value (`None`: the system's clock).
    pub fn from_env(value: Option<&str>) -> Result<Clock, String> {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(Clock::system()),
            Some(v) => DateTime::parse_from_rfc3339(v)
                .map(|t| Clock::starting_at(t.with_timezone(&Utc)))
                .map_err(|e| {
                    format!("SIPFORM_NOW={v:?} is not an RFC 3339 time (e.g. 2026-12-07T12:00:00+01:00): {e}")
                }),
        }
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
