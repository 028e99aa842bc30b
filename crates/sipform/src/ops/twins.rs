//! The switch-over's second account: while the platform's own provisioning still runs, two of
//! its handlers racing may each create an account of sipform's name. State says which one is
//! the project's; the agents the other holds for the project's restaurants are duplicates,
//! listed on every plan and removed by `dedupe` ([`twin_duplicates`]).

use std::collections::{HashMap, HashSet};

use crate::model::ids::{ObjectId, RestaurantId};
use crate::plan::{Duplicates, Plan, Resource};
use crate::remote::Client;
use crate::resources::account;
use crate::resources::agent::{final_customer_of, restaurant_of};
use crate::state::State;

use super::{OpsError, Workspace};

/// Adds to `plan`'s duplicates the agents (with their final customers) that claim a
/// restaurant of the plan from the other accounts carrying this project's account name: the
/// platform's own provisioning, still running during a switch-over, may have made a second
/// account. One list of accounts; one list of agents per such account (none usually).
pub(crate) async fn twin_duplicates(
    ws: &Workspace,
    client: &Client,
    state: &State,
    plan: &mut Plan,
) -> Result<(), OpsError> {
    let recorded = recorded_ids(state);
    let accounts = account::list(client)
        .await
        .map_err(|e| ws.server_error(e))?;
    let name = &ws.settings().account.name;
    let twins: Vec<ObjectId> = account::twins(&accounts, plan.account.id(), name)
        .map(|a| a.id.clone())
        .collect();
    let Some(agents) = ws.kinds().get(Resource::AGENT) else {
        return Ok(());
    };
    let names: HashMap<&RestaurantId, &str> = ws
        .desired()
        .restaurants
        .iter()
        .filter(|r| plan.targets.is_empty() || plan.targets.contains(&r.id))
        .map(|r| (&r.id, r.agent.name.as_str()))
        .collect();
    let mut found: Vec<Duplicates> = Vec::new();
    for twin in twins {
        let list = agents
            .list(client, &twin)
            .await
            .map_err(|e| ws.server_error(e))?;
        for a in list {
            let Some(rid) = restaurant_of(&a).map(RestaurantId::new) else {
                continue;
            };
            let Some(name) = names.get(&rid) else {
                continue;
            };
            if recorded.contains(a.id.as_str()) {
                continue;
            }
            let at = match found.iter().position(|d| d.restaurant_id == rid) {
                Some(at) => at,
                None => {
                    found.push(Duplicates {
                        restaurant_id: rid.clone(),
                        name: name.to_string(),
                        agents: Vec::new(),
                        final_customers: Vec::new(),
                        phone_lines: Vec::new(),
                        subscriptions: Vec::new(),
                    });
                    found.len() - 1
                }
            };
            found[at].agents.push(a.id.clone());
            found[at]
                .final_customers
                .extend(final_customer_of(&a).filter(|f| !recorded.contains(f.as_str())));
        }
    }
    merge_into(plan, found);
    Ok(())
}

/// The agents and final customers any restaurant's state records: never a duplicate, whatever
/// account holds them.
fn recorded_ids(state: &State) -> HashSet<&str> {
    state
        .restaurants
        .values()
        .flat_map(|r| {
            [
                r.agent_id.as_ref().map(|a| a.as_str()),
                r.final_customer_id.as_ref().map(|f| f.as_str()),
            ]
        })
        .flatten()
        .collect()
}

/// Adds `found` to the plan's duplicates, one entry per restaurant.
fn merge_into(plan: &mut Plan, found: Vec<Duplicates>) {
    for d in found {
        match plan
            .duplicates
            .iter_mut()
            .find(|x| x.restaurant_id == d.restaurant_id)
        {
            Some(x) => {
                x.agents.extend(d.agents);
                x.final_customers.extend(d.final_customers);
            }
            None => plan.duplicates.push(d),
        }
    }
}
