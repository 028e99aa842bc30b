//! The closing lines of an apply or an import: what failed, where, and the totals.

use std::fmt::Write as _;

use crate::apply::{ApplyError, Report};
use crate::escape::push_line;
use crate::plan::Plan;
use crate::remote::ClientError;

/// One line per failed restaurant (and the account, if it failed), then a summary line.
/// Restaurants whose writes were held back because the run was stopping (a signal, state that
/// can no longer be written) are not failures: they are counted as not started, or named as
/// stopped part-way, for the next apply to finish.
pub fn report(r: &Report) -> String {
    let mut out = String::new();
    match &r.account_error {
        Some(e) if e.is_halt() => {
            push_line(
                &mut out,
                &format!("account: not started ({})", halt_reason(e)),
            );
        }
        Some(e) => {
            push_line(&mut out, &format!("account: FAILED: {e}"));
        }
        None => {}
    }
    let mut ok = 0;
    let mut failed = 0;
    let mut not_started = 0;
    let mut stopped = 0;
    let mut actions = 0;
    for o in &r.outcomes {
        actions += o.done;
        match &o.error {
            None => ok += 1,
            Some(e) if e.is_halt() && o.done == 0 => not_started += 1,
            Some(e) if e.is_halt() => {
                stopped += 1;
                push_line(
                    &mut out,
                    &format!(
                        "restaurant {} ({}): stopped after {}/{} actions ({}); the next apply finishes it",
                        o.name,
                        o.restaurant,
                        o.done,
                        o.planned,
                        halt_reason(e)
                    ),
                );
            }
            Some(e) => {
                failed += 1;
                push_line(
                    &mut out,
                    &format!(
                        "restaurant {} ({}): FAILED after {}/{} actions: {}",
                        o.name, o.restaurant, o.done, o.planned, e
                    ),
                );
            }
        }
    }
    let mut counts = format!("{ok} restaurants done, {failed} failed");
    held_lines(r, &mut out, &mut counts);
    if stopped > 0 {
        let _ = write!(counts, ", {stopped} stopped part-way");
    }
    if not_started > 0 {
        let _ = write!(counts, ", {not_started} not started");
    }
    let _ = writeln!(
        out,
        "Apply {}: {counts}, {} actions, {} requests, {} retries, {:.1}s.",
        if r.failed() { "incomplete" } else { "complete" },
        actions,
        r.requests,
        r.retries,
        r.elapsed.as_secs_f64()
    );
    if let Some(p) = &r.parallelism {
        let _ = writeln!(out, "{}", parallelism_line(p));
    }
    if let Some(rev) = &r.revision {
        let _ = writeln!(out, "Revision: {}", rev.describe());
    }
    out
}

/// One line per restaurant held (a change window, live calls): not a failure, counted apart.
fn held_lines(r: &Report, out: &mut String, counts: &mut String) {
    for h in &r.held {
        push_line(
            out,
            &format!(
                "restaurant {} ({}): held, left untouched: {}",
                h.name, h.restaurant_id, h.message
            ),
        );
    }
    if !r.held.is_empty() {
        let _ = write!(counts, ", {} held", r.held.len());
    }
}

/// `Parallelism: settled at 23 (auto, at most 64); paced at 480 requests/s after 12 answers 429.`
fn parallelism_line(p: &crate::remote::Settled) -> String {
    let mut line = if p.auto {
        format!(
            "Parallelism: settled at {} (auto, at most {})",
            p.parallelism, p.max
        )
    } else {
        format!("Parallelism: {} (fixed)", p.parallelism)
    };
    if let Some(rate) = p.paced_per_second {
        let _ = write!(
            line,
            "; paced at {rate:.0} requests/s after {} answer(s) 429",
            p.throttled
        );
    }
    line.push('.');
    line
}

/// Why writes were held back (`interrupted by SIGINT`), from a halted write's error.
fn halt_reason(e: &ApplyError) -> String {
    match e {
        ApplyError::Server {
            source: ClientError::Halted { why, .. },
            ..
        } => why.clone(),
        ApplyError::Several { first, .. } => halt_reason(first),
        ApplyError::Stopped(e) => format!("state can no longer be written: {e}"),
        other => other.to_string(),
    }
}

/// What an import will take into state: one line per adopted object.
pub fn imports(plan: &Plan) -> String {
    let mut out = String::new();
    for r in &plan.restaurants {
        for a in &r.actions {
            push_line(
                &mut out,
                &format!(
                    "import {:?} {} ({}) for restaurant {}: {}",
                    a.resource(),
                    a.name(),
                    a.remote_id().unwrap_or("?"),
                    r.restaurant_id,
                    a.reason().as_deref().unwrap_or("found")
                ),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::apply::Outcome;
    use crate::model::ids::RestaurantId;

    fn outcome(id: &str, done: usize, error: Option<&str>) -> Outcome {
        Outcome {
            restaurant: RestaurantId::new(id),
            name: format!("Resto {id}"),
            done,
            planned: 14,
            error: error.map(|e| ApplyError::Plan(e.to_string())),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn a_clean_run_is_one_summary_line() {
        let r = Report {
            account_error: None,
            outcomes: vec![outcome("r1", 14, None), outcome("r2", 3, None)],
            requests: 20,
            retries: 1,
            elapsed: Duration::from_millis(1300),
            parallelism: None,
            revision: None,
            held: Vec::new(),
        };
        assert_eq!(
            report(&r),
            "Apply complete: 2 restaurants done, 0 failed, 17 actions, 20 requests, 1 retries, 1.3s.\n"
        );
    }

    #[test]
    fn the_parallelism_the_run_settled_on_follows_the_summary() {
        let mut r = Report {
            account_error: None,
            outcomes: vec![outcome("r1", 14, None)],
            requests: 20,
            retries: 3,
            elapsed: Duration::from_millis(1300),
            parallelism: Some(crate::remote::Settled {
                auto: true,
                parallelism: 23,
                max: 64,
                paced_per_second: Some(481.4),
                throttled: 3,
            }),
            revision: None,
            held: Vec::new(),
        };
        assert!(report(&r).ends_with(
            "1.3s.\nParallelism: settled at 23 (auto, at most 64); paced at 481 requests/s after 3 answer(s) 429.\n"
        ));
        r.parallelism = Some(crate::remote::Settled {
            auto: false,
            parallelism: 10,
            max: 10,
            paced_per_second: None,
            throttled: 0,
        });
        assert!(report(&r).ends_with("1.3s.\nParallelism: 10 (fixed).\n"));
        r.revision = Some(crate::model::revision::Revision {
            commit: crate::model::revision::GitCommit::parse(&"c".repeat(40)).ok(),
            dirty: true,
            digest: crate::model::revision::ConfigDigest::from_sha256([0xd; 32]),
        });
        assert!(
            report(&r)
                .ends_with("(fixed).\nRevision: ccccccc+dirty (config digest 0d0d0d0d0d0d)\n"),
            "{}",
            report(&r)
        );
    }

    #[test]
    fn failures_are_named_before_the_summary() {
        let r = Report {
            account_error: Some(ApplyError::Plan(
                "POST /api/accounts: HTTP 500: boom".into(),
            )),
            outcomes: vec![outcome("r1", 2, Some("GET /api/agents/x: HTTP 404: gone"))],
            requests: 3,
            retries: 0,
            elapsed: Duration::ZERO,
            parallelism: None,
            revision: None,
            held: Vec::new(),
        };
        assert_eq!(
            report(&r),
            "account: FAILED: POST /api/accounts: HTTP 500: boom\n\
             restaurant Resto r1 (r1): FAILED after 2/14 actions: GET /api/agents/x: HTTP 404: gone\n\
             Apply incomplete: 0 restaurants done, 1 failed, 2 actions, 3 requests, 0 retries, 0.0s.\n"
        );
    }

    #[test]
    fn writes_held_back_are_not_failures() {
        let halted = |route: &str| ApplyError::Server {
            what: "final customer".into(),
            source: ClientError::Halted {
                method: reqwest::Method::POST,
                route: route.into(),
                why: "interrupted by SIGTERM".into(),
            },
        };
        let mut part = outcome("r2", 2, None);
        part.error = Some(halted("/api/agents/:id/tools"));
        let mut none = outcome("r3", 0, None);
        none.error = Some(halted("/api/final-customers"));
        let r = Report {
            account_error: None,
            outcomes: vec![outcome("r1", 14, None), part, none],
            requests: 20,
            retries: 0,
            elapsed: Duration::ZERO,
            parallelism: None,
            revision: None,
            held: Vec::new(),
        };
        assert_eq!(
            report(&r),
            "restaurant Resto r2 (r2): stopped after 2/14 actions (interrupted by SIGTERM); the next apply finishes it\n\
             Apply incomplete: 1 restaurants done, 0 failed, 1 stopped part-way, 1 not started, 16 actions, 20 requests, 0 retries, 0.0s.\n"
        );
    }
}
