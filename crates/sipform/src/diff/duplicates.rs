//! Duplicates: server objects that claim a restaurant besides the ones sipform manages for it,
//! e.g. a second agent (with its final customer, phone lines and subscription) made by the
//! platform's catch-up when an `agentId` was not saved. Computed after the diff, from what
//! refresh read; listed on every plan, never planned (they are not changes): `sipform dedupe`
//! removes them.
//!
//! Protected, never a duplicate: what any restaurant's state records, what this plan adopts
//! or keeps, and what a platform row names.

use std::collections::HashSet;

use crate::model::ids::ObjectId;
use crate::model::spec::Desired;
use crate::plan::{ChildId, Duplicates, RestaurantPlan};
use crate::resources::agent::{final_customer_of, restaurant_of};
use crate::resources::{Actual, Kinds, Resource};
use crate::state::State;

/// Every planned restaurant's duplicates, in inventory order (only those with some).
pub(super) fn find(
    desired: &Desired,
    actual: &Actual,
    state: &State,
    plans: &[RestaurantPlan],
) -> Vec<Duplicates> {
    let protected = protected(desired, state, plans);
    let agents = actual.singles(Resource::AGENT);
    // Only restaurants this plan covers (`--target`): another one's objects are not judged.
    let planned: HashSet<&str> = plans.iter().map(|p| p.restaurant_id.as_str()).collect();
    let mut out = Vec::new();
    for r in desired
        .restaurants
        .iter()
        .filter(|r| planned.contains(r.id.as_str()))
    {
        let extra_agents: Vec<ObjectId> = agents
            .iter()
            .filter(|a| restaurant_of(a) == Some(r.id.as_str()) && !protected.contains(&a.id))
            .map(|a| a.id.clone())
            .collect();
        if extra_agents.is_empty() {
            continue;
        }
        let mut d = Duplicates {
            restaurant_id: r.id.clone(),
            name: r.agent.name.clone(),
            agents: extra_agents,
            final_customers: Vec::new(),
            phone_lines: Vec::new(),
            subscriptions: Vec::new(),
        };
        for a in agents.iter().filter(|a| d.agents.contains(&a.id)) {
            for l in actual.children(Resource::PHONE_LINE, &a.id).unwrap_or(&[]) {
                d.phone_lines.push(ChildId {
                    parent: a.id.clone(),
                    id: l.id.clone(),
                });
            }
            let Some(fc) = final_customer_of(a).filter(|f| !protected.contains(f)) else {
                continue;
            };
            if d.final_customers.contains(&fc) {
                continue;
            }
            for s in actual.children(Resource::SUBSCRIPTION, &fc).unwrap_or(&[]) {
                d.subscriptions.push(ChildId {
                    parent: fc.clone(),
                    id: s.id.clone(),
                });
            }
            d.final_customers.push(fc);
        }
        out.push(d);
    }
    out
}

/// The ids no dedupe may touch.
fn protected(desired: &Desired, state: &State, plans: &[RestaurantPlan]) -> HashSet<ObjectId> {
    let kinds = Kinds::builtin();
    let mut ids = HashSet::new();
    for st in state.restaurants.values() {
        for k in kinds.singletons() {
            ids.extend(k.recorded(st, ""));
        }
    }
    for p in plans {
        ids.extend(p.actions.iter().filter_map(|a| a.id().cloned()));
    }
    for r in &desired.restaurants {
        ids.extend(r.platform_agent.iter().cloned());
        ids.extend(r.platform_final_customer.iter().cloned());
    }
    ids
}
