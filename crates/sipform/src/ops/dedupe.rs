//! `dedupe`: remove the duplicates a plan lists ([`crate::plan::Duplicates`]): extra agents
//! claiming a restaurant, their final customers, phone lines and subscriptions.
//!
//! Two steps, each one call per object through its kind: first every duplicate is deactivated
//! (`isActive: false`: the agent stops answering, its line stops routing, the final customer
//! stops being billed), which can be undone; then, only with `allow_destroy`, they are
//! deleted, phone lines first (then subscriptions, agents, final customers). What state or a
//! platform row points at is never a duplicate (see `diff::duplicates`), and the plan is made
//! under the state lock, so no apply moves those in between. One object failing is reported
//! and the others go on.

use std::collections::BTreeSet;

use serde_json::json;

use crate::model::ids::{ObjectId, RestaurantId};
use crate::plan::{Duplicates, Resource};
use crate::remote::Client;
use crate::resources::{Kinds, Parents};

use super::plan::PlanOptions;
use super::{OpsError, Workspace};

/// What to clean.
#[derive(Debug, Clone, Default)]
pub struct DedupeOptions {
    /// Delete the duplicates after deactivating them.
    pub allow_destroy: bool,
    /// Restaurants to clean; empty means all.
    pub targets: BTreeSet<RestaurantId>,
}

/// One call made (or failed): `deactivated agent 5f…` / `deleted phone line 9a…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupeStep {
    pub restaurant: RestaurantId,
    pub resource: Resource,
    pub id: ObjectId,
    pub deleted: bool,
    /// `None` when it succeeded; else why (names the route, never a secret).
    pub error: Option<String>,
}

/// What `dedupe` found and did.
#[derive(Debug, Clone, Default)]
pub struct DedupeReport {
    pub found: Vec<Duplicates>,
    pub steps: Vec<DedupeStep>,
}

impl DedupeReport {
    pub fn failed(&self) -> bool {
        self.steps.iter().any(|s| s.error.is_some())
    }
}

/// Plans under the lock, then deactivates (and with `allow_destroy` deletes) every duplicate.
pub async fn dedupe(ws: &Workspace, opts: &DedupeOptions) -> Result<DedupeReport, OpsError> {
    let client = ws.client()?;
    let _lock = ws.lock("dedupe").await?;
    let state = ws.state().await?;
    let popts = PlanOptions {
        targets: opts.targets.clone(),
        ..PlanOptions::default()
    };
    super::plan::check_targets(ws, &state, &popts)?;
    let mut plan = ws.plan(&client, &state, &popts).await?;
    super::twins::twin_duplicates(ws, &client, &state, &mut plan).await?;
    let Some(account) = plan.account.id().cloned() else {
        return Ok(DedupeReport::default());
    };
    let mut report = DedupeReport {
        found: plan.duplicates.clone(),
        steps: Vec::new(),
    };
    for d in &plan.duplicates {
        clean(
            ws.kinds(),
            &client,
            &account,
            d,
            opts.allow_destroy,
            &mut report.steps,
        )
        .await;
    }
    Ok(report)
}

/// One object to clean: its kind, its parent's kind and id (for its routes), its id.
type Target = (Resource, Option<(Resource, ObjectId)>, ObjectId);

/// The objects of `d`, in deletion order.
fn objects(d: &Duplicates) -> Vec<Target> {
    let mut out = Vec::new();
    for l in &d.phone_lines {
        out.push((
            Resource::PHONE_LINE,
            Some((Resource::AGENT, l.parent.clone())),
            l.id.clone(),
        ));
    }
    for s in &d.subscriptions {
        out.push((
            Resource::SUBSCRIPTION,
            Some((Resource::FINAL_CUSTOMER, s.parent.clone())),
            s.id.clone(),
        ));
    }
    out.extend(d.agents.iter().map(|a| (Resource::AGENT, None, a.clone())));
    out.extend(
        d.final_customers
            .iter()
            .map(|f| (Resource::FINAL_CUSTOMER, None, f.clone())),
    );
    out
}

async fn clean(
    kinds: &Kinds,
    client: &Client,
    account: &ObjectId,
    d: &Duplicates,
    allow_destroy: bool,
    steps: &mut Vec<DedupeStep>,
) {
    let objects = objects(d);
    for deleting in [false, true] {
        if deleting && !allow_destroy {
            break;
        }
        for (resource, parent, id) in &objects {
            // A subscription has no active flag: it is only deleted.
            if !deleting && *resource == Resource::SUBSCRIPTION {
                continue;
            }
            // What failed to deactivate is not deleted.
            if deleting && steps.iter().any(|s| &s.id == id && s.error.is_some()) {
                continue;
            }
            let Some(kind) = kinds.get(*resource) else {
                continue;
            };
            let mut parents = Parents::new(account.clone());
            if let Some((r, p)) = parent {
                parents.set(*r, Some(p.clone()));
            }
            let result = if deleting {
                kind.delete(client, &parents, id).await
            } else {
                kind.update(client, &parents, id, &json!({"isActive": false}))
                    .await
            };
            steps.push(DedupeStep {
                restaurant: d.restaurant_id.clone(),
                resource: *resource,
                id: id.clone(),
                deleted: deleting,
                error: result.err().map(|e| e.to_string()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ChildId;

    fn id(s: &str) -> ObjectId {
        ObjectId::parse(s).unwrap()
    }

    #[test]
    fn phone_lines_come_first_and_final_customers_last() {
        let d = Duplicates {
            restaurant_id: RestaurantId::new("r"),
            name: "R".into(),
            agents: vec![id("a2")],
            final_customers: vec![id("f2")],
            phone_lines: vec![ChildId {
                parent: id("a2"),
                id: id("l2"),
            }],
            subscriptions: vec![ChildId {
                parent: id("f2"),
                id: id("s2"),
            }],
        };
        let order: Vec<Resource> = objects(&d).into_iter().map(|o| o.0).collect();
        assert_eq!(
            order,
            [
                Resource::PHONE_LINE,
                Resource::SUBSCRIPTION,
                Resource::AGENT,
                Resource::FINAL_CUSTOMER
            ]
        );
    }
}
