//! Guardrails on a plan: how many restaurants it deletes, deactivates and changes, against
//! `guardrails:` of `sipform.yaml` and the fleet, and the refusal `apply` and the controller
//! give a plan over a limit unless `--allow-changes N` names a count at least as large.
//!
//! Pure: a plan and a fleet size in, breaches out. Counted per restaurant (one restaurant
//! whose agent and phone line both go inactive is one deactivation):
//! - deleted: its agent or final customer is deleted (gone from the inventory, or out of its
//!   filter, applied with `--allow-destroy`);
//! - deactivated: deleted, or its agent, final customer or phone line has `isActive` going
//!   to false (`sip_enabled` turned off, a template edit);
//! - changed: anything written to the server for a restaurant whose agent already exists
//!   (a restaurant whose agent this plan creates is new, never "changed").

use crate::model::resource::Resource;
use crate::model::spec::{Breach, GuardrailsConfig, LimitKind};
use crate::plan::{Action, Op, Plan, RestaurantPlan};
use crate::state::State;

/// What a plan does to the fleet, in restaurants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub deletes: u64,
    pub deactivations: u64,
    pub changed: u64,
}

impl Counts {
    /// Counts `plan`'s restaurants.
    pub fn of(plan: &Plan) -> Counts {
        let mut c = Counts::default();
        for r in &plan.restaurants {
            c.add(r);
        }
        c
    }

    fn add(&mut self, r: &RestaurantPlan) {
        let is_new = r
            .actions
            .iter()
            .any(|a| a.op() == Op::Create && a.resource() == Resource::AGENT);
        let deleted = r.actions.iter().any(|a| {
            a.op() == Op::Delete
                && (a.resource() == Resource::AGENT || a.resource() == Resource::FINAL_CUSTOMER)
        });
        let deactivated = deleted || r.actions.iter().any(turns_inactive);
        let changed = !is_new && r.actions.iter().any(writes);
        self.deletes += u64::from(deleted);
        self.deactivations += u64::from(deactivated);
        self.changed += u64::from(changed);
    }

    /// The sum of two counts (the controller's recent window and a batch).
    pub fn plus(self, o: Counts) -> Counts {
        Counts {
            deletes: self.deletes + o.deletes,
            deactivations: self.deactivations + o.deactivations,
            changed: self.changed + o.changed,
        }
    }

    fn get(&self, kind: LimitKind) -> u64 {
        match kind {
            LimitKind::Deletes => self.deletes,
            LimitKind::Deactivations => self.deactivations,
            LimitKind::Changed => self.changed,
        }
    }
}

/// Whether `a` writes to the server (an adopt only writes state).
fn writes(a: &Action) -> bool {
    matches!(a.op(), Op::Create | Op::Update | Op::Delete)
}

/// An update that sets `isActive` to false on what makes a restaurant answer.
fn turns_inactive(a: &Action) -> bool {
    let Action::Update {
        resource, changes, ..
    } = a
    else {
        return false;
    };
    let answers = *resource == Resource::AGENT
        || *resource == Resource::FINAL_CUSTOMER
        || *resource == Resource::PHONE_LINE;
    answers
        && changes.iter().any(|c| {
            c.path == "isActive" && c.after.as_deref() == Some(&serde_json::Value::Bool(false))
        })
}

/// The fleet a share is of: the restaurants state records, or those the plan finds already
/// provisioned when state knows fewer (a first apply over adopted agents).
pub fn fleet(plan: &Plan, state: &State) -> u64 {
    let existing = plan
        .restaurants
        .iter()
        .filter(|r| {
            !r.actions
                .iter()
                .any(|a| a.op() == Op::Create && a.resource() == Resource::AGENT)
        })
        .count();
    state.restaurants.len().max(existing) as u64
}

/// The limits `plan` goes over, made from `state` (its fleet).
pub fn breaches(config: &GuardrailsConfig, plan: &Plan, state: &State) -> Vec<Breach> {
    judge(config, Counts::of(plan), fleet(plan, state))
}

/// The limits `counts` goes over in a fleet of `fleet`.
pub fn judge(config: &GuardrailsConfig, counts: Counts, fleet: u64) -> Vec<Breach> {
    config
        .limits()
        .into_iter()
        .filter_map(|(kind, limit)| {
            let allowed = limit.allowed(fleet);
            let count = counts.get(kind);
            (count > allowed).then(|| Breach {
                limit: kind,
                count,
                allowed,
                setting: limit.to_string(),
                fleet,
            })
        })
        .collect()
}

/// Why a plan is refused: the limits it goes over, and the count `--allow-changes` must name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}; nothing was sent. Review the plan, then apply it with --allow-changes {needed}", list(.breaches))]
pub struct Refused {
    pub breaches: Vec<Breach>,
    /// The smallest `--allow-changes` that lets this plan through.
    pub needed: u64,
}

fn list(breaches: &[Breach]) -> String {
    let parts: Vec<String> = breaches.iter().map(Breach::to_string).collect();
    format!("the plan is over its guardrails: {}", parts.join("; "))
}

/// Lets `breaches` through when `allow` names a count at least as large as each of them
/// (`--allow-changes N`: the plan's counts must be ≤ N); refuses otherwise. Always a fatal
/// refusal: it passes only when a human names the count.
pub fn enforce(breaches: &[Breach], allow: Option<u64>) -> Result<(), Refused> {
    let needed = breaches.iter().map(|b| b.count).max().unwrap_or(0);
    if breaches.is_empty() || allow.is_some_and(|n| needed <= n) {
        return Ok(());
    }
    Err(Refused {
        breaches: breaches.to_vec(),
        needed,
    })
}

/// How far back the controller adds up what it applied: a bad template edit reconciled in
/// batches of 100 is judged as a whole, not batch by batch.
pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

/// What the controller applied over the last [`WINDOW`], batch by batch (time passed in).
#[derive(Debug, Default)]
pub struct Window {
    entries: std::collections::VecDeque<(std::time::Instant, Counts)>,
}

impl Window {
    /// The sum of what was applied in the [`WINDOW`] before `now`; older batches are dropped.
    pub fn recent(&mut self, now: std::time::Instant) -> Counts {
        while let Some((t, _)) = self.entries.front() {
            if now.saturating_duration_since(*t) < WINDOW {
                break;
            }
            self.entries.pop_front();
        }
        self.entries
            .iter()
            .fold(Counts::default(), |sum, (_, c)| sum.plus(*c))
    }

    /// Records a batch applied at `now` (nothing when it counted nothing).
    pub fn record(&mut self, now: std::time::Instant, counts: Counts) {
        if counts != Counts::default() {
            self.entries.push_back((now, counts));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::Limit;
    use crate::plan::{Body, FieldChange};
    use serde_json::json;

    fn update(resource: Resource, path: &str, after: serde_json::Value) -> Action {
        Action::Update {
            resource,
            name: "x".into(),
            id: crate::model::ids::ObjectId::parse("1").unwrap(),
            changes: vec![FieldChange {
                path: path.into(),
                before: Some(Box::new(json!(true))),
                after: Some(Box::new(after)),
                sensitive: false,
            }]
            .into(),
            body: Body::packed(&json!({})),
        }
    }

    fn restaurant(i: usize, actions: Vec<Action>) -> RestaurantPlan {
        RestaurantPlan {
            restaurant_id: crate::model::ids::RestaurantId::new(i.to_string()),
            name: format!("R{i}"),
            actions,
            notes: Vec::new(),
        }
    }

    fn counts(rs: Vec<RestaurantPlan>) -> Counts {
        let mut c = Counts::default();
        for r in &rs {
            c.add(r);
        }
        c
    }

    #[test]
    fn a_restaurant_counts_once_per_limit() {
        let c = counts(vec![
            // Agent and line both go inactive: one deactivation, one change.
            restaurant(
                1,
                vec![
                    update(Resource::AGENT, "isActive", json!(false)),
                    update(Resource::PHONE_LINE, "isActive", json!(false)),
                ],
            ),
            // Active again: a change, not a deactivation.
            restaurant(2, vec![update(Resource::AGENT, "isActive", json!(true))]),
            // A tool edit: a change.
            restaurant(3, vec![update(Resource::TOOL, "description", json!("d"))]),
            // A tool's own isActive is no deactivation of the restaurant.
            restaurant(4, vec![update(Resource::TOOL, "isActive", json!(false))]),
        ]);
        assert_eq!(
            c,
            Counts {
                deletes: 0,
                deactivations: 1,
                changed: 4
            }
        );
    }

    #[test]
    fn a_deleted_agent_is_a_delete_and_a_deactivation_and_a_new_one_no_change() {
        let id = crate::model::ids::ObjectId::parse("9").unwrap();
        let delete = Action::Delete {
            resource: Resource::AGENT,
            name: "gone".into(),
            id,
            reason: crate::plan::Reason::GoneFromInventory,
        };
        let create = Action::Create {
            resource: Resource::AGENT,
            name: "new".into(),
            body: Body::packed(&json!({"name": "new"})),
            write_only: Box::new([]),
        };
        let c = counts(vec![
            restaurant(1, vec![delete]),
            restaurant(2, vec![create]),
        ]);
        assert_eq!(
            c,
            Counts {
                deletes: 1,
                deactivations: 1,
                changed: 1
            }
        );
    }

    #[test]
    fn sixty_of_a_hundred_deactivated_is_over_the_default_and_names_the_count() {
        let c = Counts {
            deletes: 0,
            deactivations: 60,
            changed: 60,
        };
        let breaches = judge(&GuardrailsConfig::default(), c, 100);
        assert_eq!(breaches.len(), 1, "{breaches:?}");
        assert_eq!(breaches[0].limit, LimitKind::Deactivations);
        assert_eq!((breaches[0].count, breaches[0].allowed), (60, 5));
        let e = enforce(&breaches, None).unwrap_err();
        assert_eq!(e.needed, 60);
        assert!(e.to_string().contains("--allow-changes 60"), "{e}");
        assert!(enforce(&breaches, Some(59)).is_err());
        assert!(enforce(&breaches, Some(60)).is_ok());
        // Within the defaults: nothing to allow.
        assert!(judge(
            &GuardrailsConfig::default(),
            Counts { changed: 100, ..c },
            100
        )
        .iter()
        .all(|b| b.limit != LimitKind::Changed));
        assert!(enforce(&[], None).is_ok());
    }

    #[test]
    fn the_window_adds_up_the_last_hour_only() {
        let t0 = std::time::Instant::now();
        let mut w = Window::default();
        let c = Counts {
            deletes: 1,
            deactivations: 2,
            changed: 3,
        };
        w.record(t0, c);
        w.record(t0, Counts::default());
        w.record(t0 + WINDOW / 2, c);
        assert_eq!(w.recent(t0 + WINDOW / 2).deactivations, 4);
        assert_eq!(w.recent(t0 + WINDOW).changed, 3);
        assert_eq!(w.recent(t0 + WINDOW * 2), Counts::default());
    }

    #[test]
    fn configured_limits_apply_and_tiny_fleets_are_not_blocked() {
        let config = GuardrailsConfig {
            max_deletes: Some(Limit::Count(0)),
            max_deactivations: None,
            max_changed: Some(Limit::Share { basis_points: 5000 }),
        };
        let c = Counts {
            deletes: 1,
            deactivations: 1,
            changed: 2,
        };
        let kinds: Vec<LimitKind> = judge(&config, c, 3).iter().map(|b| b.limit).collect();
        assert_eq!(kinds, vec![LimitKind::Deletes]);
        // One of three deleted under the default share: the floor lets it through.
        assert!(judge(&GuardrailsConfig::default(), c, 3).is_empty());
        let kinds: Vec<LimitKind> = judge(&config, Counts { changed: 60, ..c }, 100)
            .iter()
            .map(|b| b.limit)
            .collect();
        assert_eq!(kinds, vec![LimitKind::Deletes, LimitKind::Changed]);
    }
}
