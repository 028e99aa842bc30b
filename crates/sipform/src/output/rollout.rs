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
    let _ = writeln!(out, "Rollout {} → {}: {phase}", from, to.short());
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

/// The events of an apply under a policy, then how it ended.
pub fn rollout_run(events: &[RolloutEvent], verdict: &Verdict) -> String {
    let mut out = String::new();
    for e in events {
        let line = match e {
            RolloutEvent::Started { to, from, canary } => format!(
                "Rollout of {to} started (stable: {}), canary of {canary}",
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
