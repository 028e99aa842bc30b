//! A rollout for people: `sipform rollout status`, and what an apply under a policy did.

use std::fmt::Write;

use crate::escape::escape;
use crate::ops::rollout::{Phase, RolloutEvent, RolloutStatus, Verdict};

/// `sipform rollout status`.
pub fn rollout_status(s: &RolloutStatus) -> String {
    let mut out = String::new();
    let Some(to) = &s.to else {
        return "No rollout recorded.\n".into();
    };
    let phase = match s.phase {
        Phase::None => "none",
        Phase::InProgress => "in progress",
        Phase::Halted => "HALTED",
        Phase::Finished => "finished",
        Phase::Aborted => "aborted",
    };
    let from = s.from.as_ref().map_or("unknown".into(), |r| r.short());
    let what = if s.rollback { "Rollback" } else { "Rollout" };
    let _ = writeln!(out, "{what} {} → {}: {phase}", from, to.short());
    if let Some(h) = &s.halted {
        let _ = writeln!(out, "  halted at wave {}: {}", h.wave, escape(&h.reason));
        let _ = writeln!(
            out,
            "  `sipform rollout resume` goes on; `sipform rollout abort` goes back"
        );
    } else if let (Phase::InProgress, Some(p)) = (s.phase, &s.paused) {
        let _ = writeln!(out, "  paused: {}", escape(p));
    }
    for w in &s.waves {
        let started = w.started_at.map_or("not started".to_string(), |t| {
            format!("started {}", t.format("%Y-%m-%d %H:%M:%S UTC"))
        });
        let _ = writeln!(
            out,
            "  wave {} ({}): {} restaurants, {} done, {} pending, {} failed; {started}",
            w.wave, w.label, w.restaurants, w.done, w.pending, w.failed
        );
    }
    out
}

/// One line for the controller's page: the phase, each wave's done / size, why it waits.
pub fn rollout_line(s: &RolloutStatus) -> String {
    let Some(to) = &s.to else {
        return String::new();
    };
    let waves: Vec<String> = s
        .waves
        .iter()
        .map(|w| format!("{} {}/{}", w.label, w.done, w.restaurants))
        .collect();
    let phase = match s.phase {
        Phase::None => "none",
        Phase::InProgress => "in progress",
        Phase::Halted => "halted",
        Phase::Finished => "finished",
        Phase::Aborted => "aborted",
    };
    let mut line = format!("Rollout of {}: {phase}; {}", to.short(), waves.join(", "));
    if let Some(h) = &s.halted {
        let _ = write!(line, "; halted: {}", escape(&h.reason));
    } else if let (Phase::InProgress, Some(p)) = (s.phase, &s.paused) {
        let _ = write!(line, "; paused: {}", escape(p));
    }
    line
}

/// The events of an apply under a policy, then how it ended.
pub fn rollout_run(events: &[RolloutEvent], verdict: &Verdict) -> String {
    let mut out = String::new();
    for e in events {
        let line = match e {
            RolloutEvent::Started {
                to,
                from,
                canary,
                rollback,
            } => format!(
                "{} of {to} started (stable: {}), canary of {canary}",
                if *rollback { "Rollback" } else { "Rollout" },
                from.as_deref().unwrap_or("unknown")
            ),
            RolloutEvent::WaveStarted { wave, restaurants } => {
                format!("Wave {wave} started: {restaurants} restaurants")
            }
            RolloutEvent::Paused { .. } => continue,
            RolloutEvent::Halted { wave, reason } => {
                format!("Rollout HALTED at wave {wave}: {}", escape(reason))
            }
            RolloutEvent::Resumed { wave } => format!("Rollout resumed (wave {wave})"),
            RolloutEvent::Finished { to } => format!("Rollout of {to} finished"),
            RolloutEvent::Aborted { wave } => format!("Rollout aborted at wave {wave}"),
        };
        let _ = writeln!(out, "{line}");
    }
    match verdict {
        Verdict::Paused(why) => {
            let _ = writeln!(out, "Rollout paused: {}", escape(why));
        }
        Verdict::Halted(why)
            if !events
                .iter()
                .any(|e| matches!(e, RolloutEvent::Halted { .. })) =>
        {
            let _ = writeln!(
                out,
                "Rollout halted: {} (`sipform rollout resume` to go on)",
                escape(why)
            );
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::revision::{ConfigDigest, Revision};
    use crate::ops::rollout::{Halt, WaveStatus};

    fn revision(byte: u8) -> Revision {
        Revision {
            commit: None,
            dirty: false,
            digest: ConfigDigest::from_sha256([byte; 32]),
        }
    }

    fn wave(wave: usize, label: &str, restaurants: usize, done: usize) -> WaveStatus {
        WaveStatus {
            wave,
            label: label.into(),
            restaurants,
            done,
            pending: restaurants - done,
            failed: 0,
            started_at: None,
            completed_at: None,
        }
    }

    #[test]
    fn a_halted_rollout_says_where_and_why_with_tenant_text_escaped() {
        let s = RolloutStatus {
            phase: Phase::Halted,
            from: Some(revision(1)),
            to: Some(revision(2)),
            started_at: None,
            halted: Some(Halt {
                wave: 0,
                reason: "wave 0: 3 of 3 calls ended in error\u{1b}[2J".into(),
                at: chrono::Utc::now(),
            }),
            paused: None,
            finished_at: None,
            aborted_at: None,
            rollback: false,
            waves: vec![wave(0, "canary", 5, 5), wave(1, "25%", 49, 0)],
        };
        let text = rollout_status(&s);
        assert!(text.contains(": HALTED"), "{text}");
        assert!(
            text.contains("halted at wave 0: wave 0: 3 of 3 calls ended in error"),
            "{text}"
        );
        assert!(
            !text.contains('\u{1b}'),
            "escape sequences are shown, not sent: {text}"
        );
        assert!(
            text.contains("wave 1 (25%): 49 restaurants, 0 done, 49 pending"),
            "{text}"
        );
    }

    #[test]
    fn a_run_lists_its_events_then_why_it_stopped() {
        let events = [
            RolloutEvent::WaveStarted {
                wave: 1,
                restaurants: 49,
            },
            RolloutEvent::Paused {
                wave: 1,
                why: "w".into(),
            },
        ];
        let text = rollout_run(&events, &Verdict::Paused("waiting for calls".into()));
        assert_eq!(
            text,
            "Wave 1 started: 49 restaurants\nRollout paused: waiting for calls\n"
        );
        assert_eq!(
            rollout_status(&RolloutStatus::default()),
            "No rollout recorded.\n"
        );
    }
}
