//! `apply --json`: one JSON document per run, for CI and for the platform: each restaurant's
//! outcome, the request counts and the timing. Versioned (`formatVersion`) and documented in
//! docs/apply-report.md; fields are only ever added.

use serde::Serialize;

use crate::apply::{ApplyError, Outcome, Report};
use crate::front::diagnostics::Skipped;
use crate::plan::Plan;

/// Version of the apply report. Bumped only when a field changes meaning or goes away.
pub(crate) const APPLY_REPORT_FORMAT_VERSION: u32 = 1;

/// How a run ended, as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum RunStatus {
    /// Every restaurant done.
    Complete,
    /// Some restaurant (or the account) failed, was not finished, or was skipped for invalid
    /// input.
    Incomplete,
    /// The plan had nothing to do: no request was sent.
    NoChanges,
    /// Nothing was applied: the run stopped before its first write (a stale saved plan, an
    /// unknown `--target`, a server that does not answer, …); `error` says why.
    Error,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    format_version: u32,
    sipform_version: &'static str,
    status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interrupted_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<PlanSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<ErrorDoc>,
    restaurants: Vec<RestaurantDoc>,
    requests: u64,
    retries: u64,
    actions: usize,
    elapsed_ms: u128,
    /// What the run's requests settled on (absent when none was sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    parallelism: Option<crate::remote::Settled>,
    /// The configuration's revision applied (`commit` null outside a git repository).
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<RevisionDoc<'a>>,
    /// Under a rollout policy (docs/rollout.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    rollout: Option<RolloutDoc<'a>>,
}

/// The revision as the report shows it: the saved plan's fields and the short form.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RevisionDoc<'a> {
    commit: Option<&'a str>,
    dirty: bool,
    digest: &'a str,
    /// `abc1234`, `abc1234+dirty` or `no-git`.
    short: String,
}

impl<'a> RevisionDoc<'a> {
    fn of(r: &'a crate::model::revision::Revision) -> Self {
        RevisionDoc {
            commit: r.commit.as_ref().map(|c| c.as_str()),
            dirty: r.dirty,
            digest: r.digest.as_str(),
            short: r.short(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanSummary {
    add: usize,
    change: usize,
    delete: usize,
    adopt: usize,
    state_serial: u64,
}

/// What happened to one restaurant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
enum Status {
    Done,
    Failed,
    /// Stopped part-way by a signal or a state that can no longer be written: the next apply
    /// finishes it.
    Stopped,
    /// Its writes were held back before the first one.
    NotStarted,
    /// Left out because its own input is invalid.
    Skipped,
    /// Left untouched: its changes wait for its change window or for its calls to end
    /// (`hold` says which and until when). Not a failure.
    Held,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RestaurantDoc {
    #[serde(skip_serializing_if = "Option::is_none")]
    restaurant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    status: Status,
    done: usize,
    planned: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDoc>,
    /// For a skipped restaurant: its file or row.
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<String>,
    /// Wall time of this restaurant's actions (absent for a skipped one).
    #[serde(skip_serializing_if = "Option::is_none")]
    elapsed_ms: Option<u128>,
    /// For a held restaurant: why (`window`, `live_calls`), until when, in a sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    hold: Option<HoldDoc>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HoldDoc {
    reason: crate::plan::HoldReason,
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<String>,
    message: String,
}

fn held_doc(h: &crate::plan::Hold, planned: usize) -> RestaurantDoc {
    RestaurantDoc {
        restaurant_id: Some(h.restaurant_id.to_string()),
        name: Some(h.name.clone()),
        status: Status::Held,
        done: 0,
        planned,
        error: None,
        origin: None,
        elapsed_ms: None,
        hold: Some(HoldDoc {
            reason: h.reason,
            until: h.until.map(|u| u.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            message: h.message.clone(),
        }),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorDoc {
    /// `transient` (worth retrying: a timeout, a 5xx, throttling) or `fatal`.
    kind: &'static str,
    /// The route template of the failed call (`PUT /api/agents/:id`), when a call failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<String>,
    message: String,
}

fn error_doc(e: &ApplyError) -> ErrorDoc {
    ErrorDoc {
        kind: if e.is_transient() {
            "transient"
        } else {
            "fatal"
        },
        route: e.route().map(str::to_string),
        message: e.to_string(),
    }
}

fn outcome_doc(o: &Outcome) -> RestaurantDoc {
    let status = match &o.error {
        None => Status::Done,
        Some(e) if e.is_halt() && o.done == 0 => Status::NotStarted,
        Some(e) if e.is_halt() => Status::Stopped,
        Some(_) => Status::Failed,
    };
    RestaurantDoc {
        restaurant_id: Some(o.restaurant.to_string()),
        name: Some(o.name.clone()),
        status,
        done: o.done,
        planned: o.planned,
        error: o.error.as_ref().filter(|e| !e.is_halt()).map(error_doc),
        origin: None,
        elapsed_ms: Some(o.elapsed.as_millis()),
        hold: None,
    }
}

/// What a run did, as `apply --json` prints it. `plan` is what was applied (absent when the
/// run stopped before it had one), `report` what happened (absent when nothing was sent),
/// `error` why the run stopped before its first write.
pub struct ApplyRunView<'a> {
    pub plan: Option<&'a Plan>,
    pub report: Option<&'a Report>,
    pub skipped: &'a [Skipped],
    pub interrupted_by: Option<&'a str>,
    pub error: Option<&'a str>,
    /// Under a rollout policy: how the run ended and what the rollout did (docs/rollout.md).
    pub rollout: Option<(
        &'a crate::ops::rollout::Verdict,
        &'a [crate::ops::rollout::RolloutEvent],
    )>,
}

/// `rollout` of the document: `paused`, `halted`, `finished` or `none` (the change went out at
/// once), why, and the events in order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RolloutDoc<'a> {
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    events: &'a [crate::ops::rollout::RolloutEvent],
}

fn rollout_doc<'a>(
    (verdict, events): (
        &'a crate::ops::rollout::Verdict,
        &'a [crate::ops::rollout::RolloutEvent],
    ),
) -> RolloutDoc<'a> {
    use crate::ops::rollout::Verdict;
    let (state, reason) = match verdict {
        Verdict::NoRollout => ("none", None),
        Verdict::Paused(why) => ("paused", Some(why.as_str())),
        Verdict::Halted(why) => ("halted", Some(why.as_str())),
        Verdict::Finished => ("finished", None),
    };
    RolloutDoc {
        state,
        reason,
        events,
    }
}

/// The apply report: one JSON document, pretty, with a trailing newline.
pub fn apply_json(run: &ApplyRunView<'_>) -> String {
    let mut restaurants: Vec<RestaurantDoc> = run
        .report
        .map(|r| r.outcomes.iter().map(outcome_doc).collect())
        .unwrap_or_default();
    restaurants.extend(run.skipped.iter().map(|s| RestaurantDoc {
        restaurant_id: s.id.clone(),
        name: None,
        status: Status::Skipped,
        done: 0,
        planned: 0,
        error: None,
        origin: Some(s.origin.to_string()),
        elapsed_ms: None,
        hold: None,
    }));
    if let Some(r) = run.report {
        let planned = |id: &crate::model::ids::RestaurantId| {
            run.plan
                .and_then(|p| p.restaurants.iter().find(|rp| &rp.restaurant_id == id))
                .map_or(0, |rp| {
                    rp.actions.iter().filter(|a| a.op().is_change()).count()
                })
        };
        restaurants.extend(
            r.held
                .iter()
                .map(|h| held_doc(h, planned(&h.restaurant_id))),
        );
    }
    let status = match (run.error, run.report) {
        (Some(_), _) => RunStatus::Error,
        (None, None) => RunStatus::NoChanges,
        (None, Some(r))
            if r.failed() || run.interrupted_by.is_some() || !run.skipped.is_empty() =>
        {
            RunStatus::Incomplete
        }
        (None, Some(_)) => RunStatus::Complete,
    };
    let doc = Document {
        rollout: run.rollout.map(rollout_doc),
        format_version: APPLY_REPORT_FORMAT_VERSION,
        sipform_version: env!("CARGO_PKG_VERSION"),
        status,
        error: run.error,
        interrupted_by: run.interrupted_by,
        plan: run.plan.map(|p| PlanSummary {
            add: p.summary.add,
            change: p.summary.change,
            delete: p.summary.delete,
            adopt: p.summary.adopt,
            state_serial: p.state_serial,
        }),
        account: run
            .report
            .and_then(|r| r.account_error.as_ref())
            .map(error_doc),
        actions: run
            .report
            .map(|r| r.outcomes.iter().map(|o| o.done).sum())
            .unwrap_or(0),
        restaurants,
        requests: run.report.map_or(0, |r| r.requests),
        retries: run.report.map_or(0, |r| r.retries),
        elapsed_ms: run.report.map_or(0, |r| r.elapsed.as_millis()),
        parallelism: run.report.and_then(|r| r.parallelism),
        revision: run
            .report
            .and_then(|r| r.revision.as_ref())
            .or_else(|| run.plan.and_then(|p| p.revision.as_ref()))
            .map(RevisionDoc::of),
    };
    // Plain strings and numbers: serializes infallibly.
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::ids::RestaurantId;

    fn outcome(n: usize, error: Option<ApplyError>) -> Outcome {
        Outcome {
            restaurant: RestaurantId::new(format!("r-{n}")),
            name: format!("R{n}"),
            done: 2,
            planned: 3,
            error,
            elapsed: Duration::from_millis(40 + n as u64),
        }
    }

    #[test]
    fn outcomes_are_reported_one_per_restaurant() {
        let report = Report {
            account_error: None,
            outcomes: vec![
                outcome(1, None),
                outcome(2, Some(ApplyError::Plan("no parent".into()))),
            ],
            requests: 7,
            retries: 1,
            elapsed: Duration::from_millis(1500),
            parallelism: None,
            revision: None,
            held: Vec::new(),
        };
        let text = apply_json(&ApplyRunView {
            plan: None,
            report: Some(&report),
            skipped: &[],
            interrupted_by: None,
            error: None,
            rollout: None,
        });
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["formatVersion"], 1);
        assert_eq!(v["status"], "incomplete");
        assert_eq!(v["restaurants"][0]["status"], "done");
        assert_eq!(
            v["restaurants"][0]["elapsedMs"], 41,
            "each restaurant carries its own time"
        );
        assert_eq!(v["restaurants"][1]["status"], "failed");
        assert_eq!(v["restaurants"][1]["error"]["kind"], "fatal");
        assert_eq!(v["restaurants"][1]["error"]["message"], "no parent");
        assert_eq!(v["requests"], 7);
        assert_eq!(v["elapsedMs"], 1500);
        assert_eq!(v["actions"], 4);
    }

    #[test]
    fn an_error_before_the_first_write_is_a_document_too() {
        let text = apply_json(&ApplyRunView {
            plan: None,
            report: None,
            skipped: &[],
            interrupted_by: None,
            error: Some("the saved plan is stale"),
            rollout: None,
        });
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["status"], "error");
        assert_eq!(v["error"], "the saved plan is stale");
        assert_eq!(v["restaurants"], serde_json::json!([]));
    }
}
