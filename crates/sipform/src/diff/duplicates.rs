//! Duplicates: server objects that claim a restaurant besides the ones sipform manages for it,
//! e.g. a second agent (with its final customer, phone lines and subscription) made by the
//! platform's catch-up when an `agentId` was not saved. Found batch by batch beside the diff
//! (the extra agents' children lists are read with the batch, then dropped), settled once every
//! restaurant is planned; listed on every plan, never planned (they are not changes):
//! `sipform dedupe` removes them.
//!
//! Protected, never a duplicate: what any restaurant's state records, what this plan adopts
//! or keeps, and what a platform row names unless state records another object for that row.

use std::collections::HashSet;

use crate::model::ids::ObjectId;
use crate::model::spec::{Desired, DesiredRestaurant};
use crate::plan::{ChildId, Duplicates, RestaurantPlan};
use crate::remote::ServerObject;
use crate::resources::actual::Children;
use crate::resources::agent::final_customer_of;
use crate::resources::{Kinds, Resource};
use crate::state::State;

/// The ids the platform's rows name, which no dedupe may touch (besides what state records):
/// known before any restaurant is planned. A row naming another object than the one state
/// records for it is not one: the platform's own provisioning wrote its copy there (a
/// switch-over), a duplicate, and the row is rewritten to state's.
pub(super) fn named_by_rows(kinds: &Kinds, desired: &Desired, state: &State) -> HashSet<ObjectId> {
    let mut ids = HashSet::new();
    for r in &desired.restaurants {
        let recorded = state.restaurants.get(&r.id);
        for k in kinds.singletons() {
            let Some(named) = k.named_by_row(r) else {
                continue;
            };
            if recorded
                .and_then(|st| k.recorded(st, ""))
                .is_some_and(|own| own != named)
            {
                continue;
            }
            ids.insert(named);
        }
    }
    ids
}

/// The children lists the extra agents claiming a restaurant need read with its batch: their
/// phone lines, and their final customers' subscriptions.
pub(super) fn parents(
    claimants: &[&ServerObject],
    protected: &dyn Fn(&ObjectId) -> bool,
) -> Vec<(Resource, ObjectId)> {
    let mut out = Vec::new();
    for a in claimants.iter().filter(|a| !protected(&a.id)) {
        out.push((Resource::PHONE_LINE, a.id.clone()));
        if let Some(fc) = final_customer_of(a).filter(|f| !protected(f)) {
            out.push((Resource::SUBSCRIPTION, fc));
        }
    }
    out
}

/// Restaurant `r`'s duplicates once its plan is known: the agents claiming it that are neither
/// protected nor in its plan, with their final customers and the children `children` holds.
pub(super) fn of_restaurant(
    r: &DesiredRestaurant,
    claimants: &[&ServerObject],
    protected: &dyn Fn(&ObjectId) -> bool,
    plan: &RestaurantPlan,
    children: &Children,
) -> Option<Duplicates> {
    let kept: HashSet<&ObjectId> = plan.actions.iter().filter_map(|a| a.id()).collect();
    let free = |id: &ObjectId| !protected(id) && !kept.contains(id);
    let extra: Vec<&ServerObject> = claimants.iter().copied().filter(|a| free(&a.id)).collect();
    if extra.is_empty() {
        return None;
    }
    let mut d = Duplicates {
        restaurant_id: r.id.clone(),
        name: r.agent.name.clone(),
        agents: extra.iter().map(|a| a.id.clone()).collect(),
        final_customers: Vec::new(),
        phone_lines: Vec::new(),
        subscriptions: Vec::new(),
    };
    for a in extra {
        let lines = children.get(&(Resource::PHONE_LINE, a.id.clone()));
        for l in lines.map(Vec::as_slice).unwrap_or(&[]) {
            d.phone_lines.push(ChildId {
                parent: a.id.clone(),
                id: l.id.clone(),
            });
        }
        let Some(fc) = final_customer_of(a).filter(|f| free(f)) else {
            continue;
        };
        if d.final_customers.contains(&fc) {
            continue;
        }
        let subs = children.get(&(Resource::SUBSCRIPTION, fc.clone()));
        for s in subs.map(Vec::as_slice).unwrap_or(&[]) {
            d.subscriptions.push(ChildId {
                parent: fc.clone(),
                id: s.id.clone(),
            });
        }
        d.final_customers.push(fc);
    }
    Some(d)
}

/// Drops from the duplicates found what another restaurant's plan adopts or keeps (an object
/// may claim one restaurant and be matched to another by name), with the children under it.
pub(super) fn settle(found: Vec<Duplicates>, plans: &[RestaurantPlan]) -> Vec<Duplicates> {
    let kept: HashSet<&ObjectId> = plans
        .iter()
        .flat_map(|p| p.actions.iter().filter_map(|a| a.id()))
        .collect();
    found
        .into_iter()
        .filter_map(|mut d| {
            d.agents.retain(|a| !kept.contains(a));
            d.final_customers.retain(|f| !kept.contains(f));
            let (agents, fcs) = (&d.agents, &d.final_customers);
            d.phone_lines.retain(|l| agents.contains(&l.parent));
            d.subscriptions.retain(|s| fcs.contains(&s.parent));
            (!d.agents.is_empty()).then_some(d)
        })
        .collect()
}
