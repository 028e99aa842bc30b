//! `windows:` of `sipform.yaml`: when an existing agent may be updated, in each restaurant's
//! own time zone, and how long an update waits for the agent's live calls to end.
//!
//! Pure: the rules are evaluated at an instant given by the caller (the run's
//! [`crate::model::clock::Clock`]), so tests set the time instead of waiting for it.

use std::fmt;

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The zone of a restaurant whose row names none: the platform's column default.
pub const DEFAULT_TIMEZONE: Tz = chrono_tz::Europe::Paris;

/// A local time span, `HH:MM-HH:MM` (24 h); one ending before it starts runs past midnight.
const SPAN_PATTERN: &str = r"^([01][0-9]|2[0-3]):[0-5][0-9]-(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$";

/// `windows:` as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowsConfig {
    /// Local times when existing agents are never updated (`"11:30-14:30"`, `"22:00-02:00"`).
    /// An update due then is held until the window ends; a new restaurant's agent is created
    /// at once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<SpanText>,
    /// Local times when existing agents may be updated; none listed: any time not denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<SpanText>,
    /// How long an update waits for the agent's calls in progress (`GET /api/bridges`) to
    /// end before it is held (`30s`, `2m`). Absent: updates do not look at live calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+ *(ms|s|m|h)?$"))]
    pub live_call_wait: Option<String>,
    /// How often the live calls are read again while waiting (default `5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+ *(ms|s|m|h)?$"))]
    pub live_call_check: Option<String>,
}

impl WindowsConfig {
    pub fn is_empty(&self) -> bool {
        *self == WindowsConfig::default()
    }
}

/// One local time span, `HH:MM-HH:MM` (24-hour; one ending before it starts runs past
/// midnight).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct SpanText(#[schemars(regex(pattern = SPAN_PATTERN))] pub String);

/// A local span in minutes of the day: `[start, end)`, wrapping past midnight when
/// `end < start`; `end` may be 1440 (24:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    start: u16,
    end: u16,
}

impl Span {
    /// Parses `HH:MM-HH:MM`; an empty span (`10:00-10:00`) is refused.
    pub fn parse(s: &str) -> Result<Span, String> {
        let bad =
            || format!("{s:?} is not a local time span like \"11:30-14:30\" (24-hour HH:MM-HH:MM)");
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let start = minutes(a, false).ok_or_else(bad)?;
        let end = minutes(b, true).ok_or_else(bad)?;
        if start == end {
            return Err(format!("{s:?} is empty: it starts where it ends"));
        }
        Ok(Span { start, end })
    }

    fn contains(&self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, "{}-{}", hm(self.start), hm(self.end))
    }
}

/// `HH:MM` as minutes of the day; `24:00` only as an end.
fn minutes(s: &str, end: bool) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if end => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// The rules, parsed: when an update to an existing agent may go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Windows {
    pub deny: Vec<Span>,
    pub allow: Vec<Span>,
}

/// Whether an update may go now, in one restaurant's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowVerdict {
    Go,
    /// Not now: the first instant it may go (`None`: no window opens in the next days).
    Closed {
        until: Option<DateTime<Utc>>,
    },
}

impl Windows {
    /// Parses `config`'s spans; the error names the first bad one.
    pub fn parse(config: &WindowsConfig) -> Result<Windows, String> {
        let spans = |list: &[SpanText], key: &str| -> Result<Vec<Span>, String> {
            list.iter()
                .map(|s| Span::parse(&s.0).map_err(|e| format!("windows.{key}: {e}")))
                .collect()
        };
        Ok(Windows {
            deny: spans(&config.deny, "deny")?,
            allow: spans(&config.allow, "allow")?,
        })
    }

    /// No rule: every update goes.
    pub fn is_open_always(&self) -> bool {
        self.deny.is_empty() && self.allow.is_empty()
    }

    /// Whether an update may go at `now` in zone `tz`, and if not, until when it waits.
    pub fn verdict(&self, now: DateTime<Utc>, tz: Tz) -> WindowVerdict {
        if self.open_at(now, tz) {
            return WindowVerdict::Go;
        }
        WindowVerdict::Closed {
            until: self.next_open(now, tz),
        }
    }

    /// Whether the local wall time at `t` is allowed: in an allow span (when there are any)
    /// and in no deny span. Evaluated on the wall clock, so a span in a repeated hour (the
    /// autumn change) holds both times.
    fn open_at(&self, t: DateTime<Utc>, tz: Tz) -> bool {
        let local = t.with_timezone(&tz);
        let minute = (local.hour() * 60 + local.minute()) as u16;
        let allowed = self.allow.is_empty() || self.allow.iter().any(|s| s.contains(minute));
        allowed && !self.deny.iter().any(|s| s.contains(minute))
    }

    /// The first span boundary after `now` (over the next three local days) at which updates
    /// are allowed. A boundary in a skipped hour (the spring change) is the first instant
    /// after the gap; one in a repeated hour counts both times.
    fn next_open(&self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let today = now.with_timezone(&tz).date_naive();
        let boundaries: Vec<u16> = self
            .deny
            .iter()
            .chain(&self.allow)
            .flat_map(|s| [s.start, s.end])
            .collect();
        let mut candidates: Vec<DateTime<Utc>> = (0..4u64)
            .filter_map(|d| today.checked_add_days(Days::new(d)))
            .flat_map(|day| boundaries.iter().flat_map(move |&m| instants(day, m, tz)))
            .filter(|t| *t > now)
            .collect();
        candidates.sort();
        candidates.into_iter().find(|t| self.open_at(*t, tz))
    }
}

/// The instants at which local wall time on `day` reads `minute` in `tz`: one, two in a
/// repeated hour, or (in a skipped hour) the first instant after the gap.
fn instants(day: NaiveDate, minute: u16, tz: Tz) -> Vec<DateTime<Utc>> {
    let (day, minute) = if minute >= 1440 {
        match day.checked_add_days(Days::new(1)) {
            Some(d) => (d, minute - 1440),
            None => return Vec::new(),
        }
    } else {
        (day, minute)
    };
    let Some(time) = NaiveTime::from_hms_opt(u32::from(minute / 60), u32::from(minute % 60), 0)
    else {
        return Vec::new();
    };
    let naive = day.and_time(time);
    // Gaps are at most a few hours (usually one): bounded by a day of minutes.
    for step in 0..1440i64 {
        let at = naive + chrono::Duration::minutes(step);
        match tz.from_local_datetime(&at) {
            chrono::LocalResult::Single(t) => return vec![t.with_timezone(&Utc)],
            chrono::LocalResult::Ambiguous(a, b) => {
                return vec![a.with_timezone(&Utc), b.with_timezone(&Utc)]
            }
            chrono::LocalResult::None => continue,
        }
    }
    Vec::new()
}

/// A restaurant's zone from its row (`None`: the platform's default); an unknown name is an
/// error, never UTC.
pub fn parse_timezone(name: Option<&str>) -> Result<Tz, String> {
    match name {
        None => Ok(DEFAULT_TIMEZONE),
        Some(n) => n.parse::<Tz>().map_err(|_| {
            format!(
                "{:?} is not a time zone of the IANA database (e.g. Europe/Paris, America/New_York): this restaurant is skipped",
                n.chars().take(60).collect::<String>()
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn deny(spans: &[&str]) -> Windows {
        Windows {
            deny: spans.iter().map(|s| Span::parse(s).unwrap()).collect(),
            allow: Vec::new(),
        }
    }

    #[test]
    fn noon_in_paris_is_held_until_half_past_two_new_york_goes() {
        let w = deny(&["11:30-14:30", "18:30-22:30"]);
        // 12:00 in Paris (CET, UTC+1) is 06:00 in New York (EST, UTC-5).
        let now = utc("2026-12-07T11:00:00Z");
        assert_eq!(
            w.verdict(now, chrono_tz::Europe::Paris),
            WindowVerdict::Closed {
                until: Some(utc("2026-12-07T13:30:00Z"))
            }
        );
        assert_eq!(
            w.verdict(now, chrono_tz::America::New_York),
            WindowVerdict::Go
        );
        // The window's end is open; its start is closed.
        assert_eq!(
            w.verdict(utc("2026-12-07T13:30:00Z"), chrono_tz::Europe::Paris),
            WindowVerdict::Go
        );
        assert!(matches!(
            w.verdict(utc("2026-12-07T10:30:00Z"), chrono_tz::Europe::Paris),
            WindowVerdict::Closed { .. }
        ));
    }

    #[test]
    fn adjacent_and_midnight_spans_chain() {
        let w = deny(&["22:00-02:00", "02:00-03:00"]);
        let now = utc("2026-12-07T23:00:00Z"); // 00:00 in Paris
        assert_eq!(
            w.verdict(now, chrono_tz::Europe::Paris),
            WindowVerdict::Closed {
                until: Some(utc("2026-12-08T02:00:00Z"))
            }
        );
    }

    #[test]
    fn allow_spans_open_only_then() {
        let w = Windows {
            deny: Vec::new(),
            allow: vec![Span::parse("03:00-05:00").unwrap()],
        };
        let now = utc("2026-12-07T11:00:00Z"); // 12:00 Paris
        assert_eq!(
            w.verdict(now, chrono_tz::Europe::Paris),
            WindowVerdict::Closed {
                until: Some(utc("2026-12-08T02:00:00Z"))
            }
        );
        assert_eq!(
            w.verdict(utc("2026-12-08T02:30:00Z"), chrono_tz::Europe::Paris),
            WindowVerdict::Go
        );
    }

    #[test]
    fn a_window_ending_in_the_spring_gap_ends_when_the_clock_jumps() {
        // 2026-03-29 in Paris: 02:00 CET jumps to 03:00 CEST (01:00Z); 02:30 never happens.
        let w = deny(&["01:00-02:30"]);
        let now = utc("2026-03-29T00:15:00Z"); // 01:15 CET
        assert_eq!(
            w.verdict(now, chrono_tz::Europe::Paris),
            WindowVerdict::Closed {
                until: Some(utc("2026-03-29T01:00:00Z"))
            }
        );
        // Right after the jump the wall clock reads 03:00: outside the window.
        assert_eq!(
            w.verdict(utc("2026-03-29T01:00:00Z"), chrono_tz::Europe::Paris),
            WindowVerdict::Go
        );
    }

    #[test]
    fn a_window_in_the_repeated_autumn_hour_holds_both_times() {
        // 2026-10-25 in Paris: 03:00 CEST goes back to 02:00 CET; 02:00-03:00 happens twice.
        let w = deny(&["02:00-02:30"]);
        let first = utc("2026-10-25T00:10:00Z"); // 02:10 CEST
        assert_eq!(
            w.verdict(first, chrono_tz::Europe::Paris),
            WindowVerdict::Closed {
                until: Some(utc("2026-10-25T00:30:00Z"))
            }
        );
        // Between the two passes updates go; the second pass holds again, until 02:30 CET.
        assert_eq!(
            w.verdict(utc("2026-10-25T00:45:00Z"), chrono_tz::Europe::Paris),
            WindowVerdict::Go
        );
        assert_eq!(
            w.verdict(utc("2026-10-25T01:10:00Z"), chrono_tz::Europe::Paris),
            WindowVerdict::Closed {
                until: Some(utc("2026-10-25T01:30:00Z"))
            }
        );
    }

    #[test]
    fn a_day_with_no_opening_says_so() {
        let w = deny(&["00:00-24:00"]);
        assert_eq!(
            w.verdict(utc("2026-12-07T11:00:00Z"), chrono_tz::Europe::Paris),
            WindowVerdict::Closed { until: None }
        );
    }

    #[test]
    fn bad_spans_are_refused_naming_them() {
        for bad in [
            "11:30",
            "25:00-26:00",
            "11:30-11:30",
            "1:30-2:30",
            "11:30-24:01",
            "x",
        ] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
        let e = Windows::parse(&WindowsConfig {
            deny: vec![SpanText("11:30-14:30".into()), SpanText("noon".into())],
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("windows.deny") && e.contains("noon"), "{e}");
        assert_eq!(
            Span::parse("22:00-02:00").unwrap().to_string(),
            "22:00-02:00"
        );
    }

    mod property {
        use super::*;
        use proptest::prelude::*;

        const ZONES: [Tz; 5] = [
            chrono_tz::Europe::Paris,
            chrono_tz::America::New_York,
            chrono_tz::Australia::Lord_Howe, // a 30-minute DST change
            chrono_tz::Asia::Kolkata,        // a half-hour offset, no DST
            chrono_tz::Pacific::Chatham,     // +12:45 / +13:45
        ];

        proptest! {
            /// Whatever the zone and the instant (2026, both DST changes included): a held
            /// update's `until` is in the future, open, and nothing before it is.
            #[test]
            fn until_is_the_first_open_instant(
                minute in 0i64..(365 * 24 * 60),
                zone in 0usize..ZONES.len(),
                spans in prop::sample::select(vec![
                    vec!["11:30-14:30", "18:30-22:30"],
                    vec!["01:00-02:30"],
                    vec!["02:00-03:00", "22:00-01:00"],
                ]),
            ) {
                let w = deny(&spans);
                let tz = ZONES[zone];
                let now = utc("2026-01-01T00:00:00Z") + chrono::Duration::minutes(minute);
                if let WindowVerdict::Closed { until } = w.verdict(now, tz) {
                    let until = until.expect("every day has an opening");
                    prop_assert!(until > now);
                    prop_assert_eq!(w.verdict(until, tz), WindowVerdict::Go);
                    let mut t = now;
                    while t < until {
                        prop_assert!(!w.open_at(t, tz), "open at {} before {}", t, until);
                        t += chrono::Duration::minutes(1);
                    }
                }
            }
        }
    }

    #[test]
    fn unknown_zones_are_errors_and_none_is_paris() {
        assert_eq!(parse_timezone(None), Ok(chrono_tz::Europe::Paris));
        assert_eq!(
            parse_timezone(Some("America/New_York")),
            Ok(chrono_tz::America::New_York)
        );
        let e = parse_timezone(Some("Mars/Olympus")).unwrap_err();
        assert!(e.contains("Mars/Olympus") && e.contains("IANA"), "{e}");
    }
}
