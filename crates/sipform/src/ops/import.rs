//! `import`: take objects that already exist on the server into state, and nothing else.

use std::collections::BTreeSet;

use crate::apply::Report;
use crate::model::ids::RestaurantId;
use crate::plan::Plan;
use crate::remote::Client;
use crate::state::{LockGuard, State};

use super::plan::PlanOptions;
use super::{OpsError, Workspace};

/// What to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Restaurants to import; empty means every restaurant of the inventory.
    pub targets: BTreeSet<RestaurantId>,
}

/// An import holding the state lock, between finding what exists and recording it.
pub struct ImportRun<'w> {
    ws: &'w Workspace,
    client: Client,
    state: State,
    plan: Plan,
    _lock: Box<dyn LockGuard>,
}

/// Takes the lock and plans the adoptions: what exists on the server but not in state.
pub async fn prepare<'w>(
    ws: &'w Workspace,
    opts: &ImportOptions,
) -> Result<ImportRun<'w>, OpsError> {
    let client = ws.client()?;
    let lock = ws.lock("import").await?;
    let state = ws.state().await?;
    let full = ws
        .plan(
            &client,
            &state,
            &PlanOptions {
                allow_destroy: false,
                allow_replace: false,
                targets: opts.targets.clone(),
                only_changes: false,
                allow_rollback: false,
                allow_dirty: false,
                ignore_windows: false,
            },
        )
        .await?;
    Ok(ImportRun {
        plan: import_plan(full)?,
        ws,
        client,
        state,
        _lock: lock,
    })
}

impl ImportRun<'_> {
    /// Only adoptions; no changes when everything that exists is already in state.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Records the adoptions (no request changes anything on the server).
    pub async fn apply(self) -> Report {
        super::apply::apply_adoptions(self.ws, &self.client, &self.plan, self.state).await
    }
}

/// A full plan cut down to its adoptions: creates, updates, deletes and notes go; the account
/// stays only as the parent the adoptions need. Refused when the account does not exist, since
/// then nothing below it can.
pub(crate) fn import_plan(plan: Plan) -> Result<Plan, OpsError> {
    let name = plan.account.name().to_string();
    plan.into_import().ok_or(OpsError::NoAccountToImport(name))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::plan::{Action, Op, Summary};

    fn action(op: &str, resource: &str, name: &str, id: Option<&str>) -> Value {
        let mut a = json!({"op": op, "resource": resource, "name": name});
        if let Some(id) = id {
            a["remoteId"] = json!(id);
        }
        // What each op carries in a valid plan.
        match op {
            // A create lists its body's fields.
            "create" => {
                a["body"] = json!({"name": name});
                a["changes"] = json!([{"path": "name", "after": name}]);
            }
            "update" => a["body"] = json!({"name": name}),
            "adopt" | "delete" => a["reason"] = json!("found by name"),
            _ => {}
        }
        a
    }

    /// Built from the saved form, so the fixture does not depend on how actions are stored.
    fn plan(account: Value, restaurants: Value) -> Plan {
        serde_json::from_value(json!({
            "formatVersion": 1,
            "sipformVersion": "0.0.0",
            "createdAt": "2020-01-01T00:00:00Z",
            "serverUrl": "http://localhost:4000",
            "lineage": "00000000-0000-0000-0000-000000000000",
            "stateSerial": 0,
            "remoteFingerprint": "f",
            "account": account,
            "restaurants": restaurants,
            "summary": {"add": 9, "change": 9, "delete": 9, "adopt": 9}
        }))
        .unwrap()
    }

    #[test]
    fn only_adoptions_are_kept_and_counted() {
        let p = plan(
            action("adopt", "account", "A", Some("acc-1")),
            json!([
                {"restaurantId": "r1", "name": "One", "notes": ["a note"], "actions": [
                    action("adopt", "finalCustomer", "One", Some("fc-1")),
                    action("create", "agent", "One", None),
                    action("update", "tool", "end_call", Some("t-1")),
                ]},
                {"restaurantId": "r2", "name": "Two", "actions": [
                    action("create", "finalCustomer", "Two", None),
                ]},
            ]),
        );
        let p = import_plan(p).unwrap();
        assert_eq!(p.account.op(), Op::Adopt);
        assert_eq!(p.restaurants.len(), 1);
        let r = &p.restaurants[0];
        assert_eq!(r.restaurant_id.as_str(), "r1");
        assert!(r.notes.is_empty());
        let ops: Vec<Op> = r.actions.iter().map(Action::op).collect();
        assert_eq!(ops, vec![Op::Adopt]);
        assert_eq!(
            p.summary,
            Summary {
                add: 0,
                change: 0,
                delete: 0,
                adopt: 2
            }
        );
    }

    #[test]
    fn an_existing_account_is_never_changed() {
        let p = plan(action("update", "account", "A", Some("acc-1")), json!([]));
        let p = import_plan(p).unwrap();
        assert_eq!(p.account.op(), Op::NoOp);
        assert_eq!(p.account.remote_id(), Some("acc-1"));
        assert!(!p.has_changes());
    }

    #[test]
    fn a_missing_account_is_refused_by_name() {
        let p = plan(action("create", "account", "Acme", None), json!([]));
        let e = import_plan(p).unwrap_err().to_string();
        assert_eq!(
            e,
            "account \"Acme\" does not exist on the server: nothing to import"
        );
    }
}
