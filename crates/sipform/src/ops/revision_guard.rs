//! No writer goes backwards: the restaurants a plan would touch are judged against the
//! revision state records for each ([`crate::revision::Guard`]); those an older, diverged or
//! unknown revision would overwrite are refused (noted in the plan, reported failed by apply,
//! left alone), unless `--allow-rollback` makes going back explicit. Apply records the
//! revision of every restaurant it reconciled.

use std::collections::BTreeMap;

use chrono::Utc;

use crate::apply::{ApplyError, Outcome, Report};
use crate::model::ids::RestaurantId;
use crate::plan::{Plan, Summary};
use crate::revision::{rollback_message, Allow, GitCommit, Guard, Revision, RevisionNote, Verdict};
use crate::state::{Change, State};

/// One note per restaurant of `plan` that goes back (as allowed) or is refused.
pub(crate) fn judge(
    root: &std::path::Path,
    own: &Revision,
    plan: &Plan,
    state: &State,
) -> Vec<RevisionNote> {
    let allow = Allow {
        rollback: plan.allow_rollback,
        dirty: plan.allow_dirty,
    };
    let mut guard = Guard::new(root, own, allow);
    let mut notes = Vec::new();
    for r in &plan.restaurants {
        let recorded = state
            .restaurants
            .get(&r.restaurant_id)
            .and_then(|s| s.revision.as_ref());
        let verdict = guard.judge(recorded).unwrap_or_else(|e| {
            Verdict::Refuse(format!(
                "its recorded revision cannot be compared with this one: {e}"
            ))
        });
        let (refused, message) = match verdict {
            Verdict::Go => continue,
            Verdict::Rollback { from } => (false, rollback_message(&from, own)),
            Verdict::Refuse(why) => (true, why),
        };
        notes.push(RevisionNote {
            restaurant_id: r.restaurant_id.clone(),
            name: r.name.clone(),
            refused,
            message,
        });
    }
    notes
}

/// What an apply does about revisions: the plan without the refused restaurants, and what
/// to record for the others.
pub(crate) struct Judged {
    /// Refused restaurants, with why.
    refused: BTreeMap<RestaurantId, (String, usize)>,
    /// Restaurants going back, from the commit recorded for each.
    rollbacks: BTreeMap<RestaurantId, GitCommit>,
    /// The plan to carry out, when some restaurants were taken out of it.
    pub narrowed: Option<Plan>,
}

impl Judged {
    /// Judges `plan` against `state` (the state the apply holds under its lock).
    pub fn new(root: &std::path::Path, own: &Revision, plan: &Plan, state: &State) -> Judged {
        let mut refused = BTreeMap::new();
        let mut rollbacks = BTreeMap::new();
        for note in judge(root, own, plan, state) {
            let id = note.restaurant_id;
            if note.refused {
                let planned = plan
                    .restaurants
                    .iter()
                    .find(|r| r.restaurant_id == id)
                    .map_or(0, |r| {
                        r.actions.iter().filter(|a| a.op().is_change()).count()
                    });
                refused.insert(id, (note.message, planned));
            } else if let Some(from) = state
                .restaurants
                .get(&id)
                .and_then(|s| s.revision.as_ref())
                .and_then(|r| r.commit.clone())
            {
                rollbacks.insert(id, from);
            }
        }
        let narrowed = (!refused.is_empty()).then(|| {
            let mut p = plan.clone();
            p.restaurants
                .retain(|r| !refused.contains_key(&r.restaurant_id));
            p.summary = Summary::of(p.actions());
            p
        });
        Judged {
            refused,
            rollbacks,
            narrowed,
        }
    }

    /// The refused restaurants, as failed outcomes that name both revisions.
    pub(crate) fn refused_outcomes(&self, plan: &Plan) -> Vec<Outcome> {
        self.refused
            .iter()
            .map(|(id, (why, planned))| Outcome {
                restaurant: id.clone(),
                name: plan.name_of(id),
                done: 0,
                planned: *planned,
                error: Some(ApplyError::Plan(format!("refused: {why}"))),
                elapsed: std::time::Duration::ZERO,
            })
            .collect()
    }

    /// The revision to record for each of `reconciled` (applied, or checked and found in
    /// step) that was not refused, unless state already records exactly it.
    pub fn records<'r>(
        &self,
        own: &Revision,
        reconciled: impl Iterator<Item = &'r RestaurantId>,
        state: &State,
    ) -> Vec<Change> {
        let at = Utc::now();
        reconciled
            .filter(|id| !self.refused.contains_key(*id))
            .filter_map(|id| {
                let rollback_from = self.rollbacks.get(id).cloned();
                let recorded = state.restaurants.get(id)?;
                let same = recorded.revision.as_ref().map(|r| r.revision()) == Some(own.clone());
                (rollback_from.is_some() || !same).then(|| Change::Revision {
                    restaurant: id.clone(),
                    revision: own.applied(at, rollback_from),
                })
            })
            .collect()
    }

    /// The restaurants `report` says were reconciled.
    pub fn reconciled(report: &Report) -> impl Iterator<Item = &RestaurantId> {
        report
            .outcomes
            .iter()
            .filter(|o| o.error.is_none())
            .map(|o| &o.restaurant)
    }
}
