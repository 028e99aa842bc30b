//! Identical changes across restaurants, found once: what a reviewer reads instead of the same
//! diff a thousand times. Pure; the renderers show a group once with its restaurants, and the
//! JSON plan adds the groups beside the actions (apply still runs every action).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Action, FieldChange, Op, Plan, Reason, Resource};
use crate::model::ids::RestaurantId;

/// One change made the same way in several restaurants: same op, kind, object name, reason
/// and field changes (remote ids differ and are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeGroup {
    pub op: Op,
    pub resource: Resource,
    /// The object's name (the tool name, …).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// How many restaurants it applies to (the length of `restaurantIds`).
    pub count: usize,
    /// The restaurants it applies to, in plan order.
    pub restaurant_ids: Vec<RestaurantId>,
}

/// The groups of a plan and, for each restaurant, which of its actions a group covers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grouping {
    /// Changes shared by two restaurants or more, in order of first appearance.
    pub groups: Vec<ChangeGroup>,
    /// Per restaurant (plan order), per action: the index of the group that covers it.
    pub covered: Vec<Vec<Option<usize>>>,
}

impl Grouping {
    /// Whether action `action` of restaurant `restaurant` is shown in a group.
    pub(crate) fn is_grouped(&self, restaurant: usize, action: usize) -> bool {
        self.covered
            .get(restaurant)
            .and_then(|r| r.get(action))
            .is_some_and(Option::is_some)
    }
}

/// What makes two actions "the same change": everything a reviewer reads but the remote id,
/// as a 128-bit digest of its JSON (two independently keyed hashes), so that a plan of
/// 100,000 restaurants does not hold the text of every change while grouping.
type Key = (u64, u64);

fn key(a: &Action, hashers: &(RandomState, RandomState)) -> Key {
    // Every part serializes infallibly (string keys, no failing impls). A create's changes
    // are its body's fields: the body stands for them, without deriving them.
    let text = match a {
        Action::Create {
            body, write_only, ..
        } => serde_json::to_string(&(a.op(), a.resource(), a.name(), &*body.value(), write_only)),
        _ => serde_json::to_string(&(a.op(), a.resource(), a.name(), a.reason_of(), a.changes())),
    }
    .unwrap_or_default();
    (hashers.0.hash_one(&text), hashers.1.hash_one(&text))
}

/// Groups every action (but no-ops) that appears identically in two restaurants or more.
/// The account is never grouped: there is one.
pub fn groups(plan: &Plan) -> Grouping {
    let hashers = (RandomState::new(), RandomState::new());
    let mut by_key: HashMap<Key, (usize, Vec<usize>)> = HashMap::new();
    let mut order: Vec<Key> = Vec::new();
    let mut keys: Vec<Vec<Option<Key>>> = Vec::with_capacity(plan.restaurants.len());
    for (ri, r) in plan.restaurants.iter().enumerate() {
        let mut row = Vec::with_capacity(r.actions.len());
        for (ai, a) in r.actions.iter().enumerate() {
            if a.op() == Op::NoOp {
                row.push(None);
                continue;
            }
            let k = key(a, &hashers);
            let entry = by_key.entry(k).or_insert_with(|| {
                order.push(k);
                (ai, Vec::new())
            });
            // One restaurant counts once even if it repeated the action.
            if entry.1.last() != Some(&ri) {
                entry.1.push(ri);
            }
            if entry.1.len() == 1 {
                entry.0 = ai;
            }
            row.push(Some(k));
        }
        keys.push(row);
    }
    let mut index: HashMap<Key, usize> = HashMap::new();
    let mut groups = Vec::new();
    for k in &order {
        let Some((ai, members)) = by_key.get(k) else {
            continue;
        };
        if members.len() < 2 {
            continue;
        }
        let Some(a) = members
            .first()
            .and_then(|&ri| plan.restaurants.get(ri))
            .and_then(|r| r.actions.get(*ai))
        else {
            continue;
        };
        index.insert(*k, groups.len());
        groups.push(ChangeGroup {
            op: a.op(),
            resource: a.resource(),
            name: a.name().to_string(),
            reason: a.reason_of().cloned(),
            changes: a.changes().to_vec(),
            count: members.len(),
            restaurant_ids: members
                .iter()
                .filter_map(|&ri| plan.restaurants.get(ri))
                .map(|r| r.restaurant_id.clone())
                .collect(),
        });
    }
    let covered = keys
        .iter()
        .map(|row| {
            row.iter()
                .map(|k| k.and_then(|k| index.get(&k).copied()))
                .collect()
        })
        .collect();
    Grouping { groups, covered }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::ids::ObjectId;
    use crate::plan::{RestaurantPlan, Summary};

    fn edit(tool: &str, id: &str, after: &str) -> Action {
        Action::Update {
            resource: Resource::TOOL,
            name: tool.into(),
            id: ObjectId::parse(id).expect("valid id"),
            changes: Box::new([FieldChange {
                path: "description".into(),
                before: Some(Box::new(json!("Hang up."))),
                after: Some(Box::new(json!(after))),
                sensitive: false,
            }]),
            body: json!({"description": after}).into(),
        }
    }

    fn restaurant(n: usize, actions: Vec<Action>) -> RestaurantPlan {
        RestaurantPlan {
            restaurant_id: RestaurantId::new(format!("r-{n}")),
            name: format!("R{n}"),
            actions,
            notes: Vec::new(),
        }
    }

    fn plan(restaurants: Vec<RestaurantPlan>) -> Plan {
        Plan {
            format_version: 1,
            sipform_version: "0".into(),
            created_at: chrono::DateTime::UNIX_EPOCH,
            server_url: "http://x".into(),
            lineage: uuid::Uuid::nil(),
            state_serial: 0,
            remote_fingerprint: String::new(),
            duplicates: Vec::new(),
            orphans: Vec::new(),
            targets: Vec::new(),
            allow_destroy: false,
            account: Action::NoOp {
                resource: Resource::ACCOUNT,
                name: "a".into(),
                id: ObjectId::parse("acc").expect("valid id"),
            },
            restaurants,
            summary: Summary::default(),
            revision: None,
            allow_rollback: false,
            allow_dirty: false,
            revision_notes: Vec::new(),
            guardrails: Vec::new(),
            ignore_windows: false,
            holds: Vec::new(),
        }
    }

    #[test]
    fn the_same_edit_is_one_group_whatever_the_ids() {
        let p = plan(
            (0..5)
                .map(|i| {
                    restaurant(
                        i,
                        vec![edit("end_call", &format!("t-{i}"), "Hang up politely.")],
                    )
                })
                .collect(),
        );
        let g = groups(&p);
        assert_eq!(g.groups.len(), 1);
        assert_eq!(g.groups[0].count, 5);
        assert_eq!(g.groups[0].name, "end_call");
        assert_eq!(g.groups[0].restaurant_ids[4].as_str(), "r-4");
        assert!((0..5).all(|r| g.is_grouped(r, 0)));
    }

    #[test]
    fn a_change_seen_once_stays_with_its_restaurant() {
        let p = plan(vec![
            restaurant(
                0,
                vec![edit("end_call", "t-0", "A."), edit("x", "t-1", "only here")],
            ),
            restaurant(1, vec![edit("end_call", "t-2", "A.")]),
            restaurant(2, vec![edit("end_call", "t-3", "B.")]),
        ]);
        let g = groups(&p);
        assert_eq!(g.groups.len(), 1);
        assert_eq!(g.groups[0].count, 2);
        assert!(g.is_grouped(0, 0) && g.is_grouped(1, 0));
        assert!(!g.is_grouped(0, 1), "restaurant-specific");
        assert!(
            !g.is_grouped(2, 0),
            "a different text is a different change"
        );
    }

    #[test]
    fn no_ops_are_never_grouped() {
        let noop = |i: usize| Action::NoOp {
            resource: Resource::TOOL,
            name: "end_call".into(),
            id: ObjectId::parse(&format!("t-{i}")).expect("valid id"),
        };
        let p = plan(vec![
            restaurant(0, vec![noop(0)]),
            restaurant(1, vec![noop(1)]),
        ]);
        assert!(groups(&p).groups.is_empty());
    }
}
