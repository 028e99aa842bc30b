//! The closing lines of an apply or an import: what failed, where, and the totals.

use std::fmt::Write as _;

use crate::apply::Report;
use crate::plan::Plan;

/// One line per failed restaurant (and the account, if it failed), then a summary line.
pub fn report(r: &Report) -> String {
    let mut out = String::new();
    if let Some(e) = &r.account_error {
        let _ = writeln!(out, "account: FAILED: {e}");
    }
    let mut ok = 0;
    let mut failed = 0;
    let mut actions = 0;
    for o in &r.outcomes {
        actions += o.done;
        match &o.error {
            None => ok += 1,
            Some(e) => {
                failed += 1;
                let _ = writeln!(
                    out,
                    "restaurant {} ({}): FAILED after {}/{} actions: {}",
                    o.name, o.restaurant, o.done, o.planned, e
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "Apply {}: {} restaurants done, {} failed, {} actions, {} requests, {} retries, {:.1}s.",
        if r.failed() { "incomplete" } else { "complete" },
        ok,
        failed,
        actions,
        r.requests,
        r.retries,
        r.elapsed.as_secs_f64()
    );
    out
}

/// What an import will take into state: one line per adopted object.
pub fn imports(plan: &Plan) -> String {
    let mut out = String::new();
    for r in &plan.restaurants {
        for a in &r.actions {
            let _ = writeln!(
                out,
                "import {:?} {} ({}) for restaurant {}: {}",
                a.resource(),
                a.name(),
                a.remote_id().unwrap_or("?"),
                r.restaurant_id,
                a.reason().as_deref().unwrap_or("found")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::apply::{ApplyError, Outcome};
    use crate::model::ids::RestaurantId;

    fn outcome(id: &str, done: usize, error: Option<&str>) -> Outcome {
        Outcome {
            restaurant: RestaurantId::new(id),
            name: format!("Resto {id}"),
            done,
            planned: 14,
            error: error.map(|e| ApplyError::Plan(e.to_string())),
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
        };
        assert_eq!(
            report(&r),
            "Apply complete: 2 restaurants done, 0 failed, 17 actions, 20 requests, 1 retries, 1.3s.\n"
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
        };
        assert_eq!(
            report(&r),
            "account: FAILED: POST /api/accounts: HTTP 500: boom\n\
             restaurant Resto r1 (r1): FAILED after 2/14 actions: GET /api/agents/x: HTTP 404: gone\n\
             Apply incomplete: 0 restaurants done, 1 failed, 2 actions, 3 requests, 0 retries, 0.0s.\n"
        );
    }
}
