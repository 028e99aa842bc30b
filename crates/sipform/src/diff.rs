//! diff: desired vs actual, object by object and field by field, into a [`Plan`].
//!
//! Pure: no I/O, so tests call it directly. Matching, in order of trust: the id in state; then
//! adoption of what the platform's old script made (an agent by `config.restaurantId`, its
//! final customer by the agent's `finalCustomerId` or by name and email, a tool by name); then
//! create. Server-owned fields are never compared (only the keys sipform sets are), absent
//! equals null, and numbers compare by value, so `apply` then `plan` is empty.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{json, Map, Value};

use crate::client::Object;
use crate::model::ids::RestaurantId;
use crate::model::spec::{AccountSpec, Desired, DesiredRestaurant, ToolSpec};
use crate::plan::{
    Action, FieldChange, Op, Plan, Resource, RestaurantPlan, Summary, PLAN_FORMAT_VERSION,
};
use crate::refresh::{fingerprint, id_of, restaurant_of, Actual};
use crate::state::{RestaurantState, State};

/// Choices that shape a plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub server_url: String,
    /// Delete the objects of restaurants gone from the inventory.
    pub allow_destroy: bool,
    /// Restaurants to consider; empty means all.
    pub targets: BTreeSet<RestaurantId>,
}

impl PlanOptions {
    fn in_scope(&self, r: &RestaurantId) -> bool {
        self.targets.is_empty() || self.targets.contains(r)
    }
}

/// Keys of a ToolConfig that sipform sets, with null for the optional ones a spec leaves out,
/// so that a server value the spec does not want is seen (and cleared).
pub fn tool_body(t: &ToolSpec) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        for k in [
            "http",
            "contextUpdates",
            "condition",
            "extraCostResponseField",
        ] {
            m.entry(k.to_string()).or_insert(Value::Null);
        }
    }
    v
}

fn to_object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Builds the plan.
pub fn plan(desired: &Desired, actual: &Actual, state: &State, opts: &PlanOptions) -> Plan {
    let account = account_action(&desired.account, actual, state);
    let account_missing = actual.account.is_none();
    let index = Index::new(actual, state);

    let mut restaurants = Vec::new();
    let mut desired_ids = HashSet::new();
    for r in &desired.restaurants {
        desired_ids.insert(r.id.clone());
        if !opts.in_scope(&r.id) {
            continue;
        }
        let rp = plan_restaurant(r, state.restaurants.get(&r.id), &index, account_missing);
        if !rp.actions.is_empty() || !rp.notes.is_empty() {
            restaurants.push(rp);
        }
    }
    for (rid, st) in &state.restaurants {
        if desired_ids.contains(rid) || !opts.in_scope(rid) {
            continue;
        }
        restaurants.push(plan_gone(rid, st, &index, opts.allow_destroy));
    }

    let summary = Summary::of(
        std::iter::once(&account).chain(restaurants.iter().flat_map(|r| r.actions.iter())),
    );
    Plan {
        format_version: PLAN_FORMAT_VERSION,
        sipform_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: chrono::Utc::now(),
        server_url: opts.server_url.clone(),
        lineage: state.lineage,
        state_serial: state.serial,
        remote_fingerprint: fingerprint(actual),
        targets: opts.targets.iter().cloned().collect(),
        allow_destroy: opts.allow_destroy,
        account,
        restaurants,
        summary,
    }
}

fn account_action(spec: &AccountSpec, actual: &Actual, state: &State) -> Action {
    match &actual.account {
        None => {
            let body = json!({"name": spec.name, "email": spec.email, "isActive": true});
            Action {
                op: Op::Create,
                resource: Resource::Account,
                name: spec.name.clone(),
                remote_id: None,
                changes: create_changes(&body),
                body: Some(body),
                reason: None,
            }
        }
        Some(a) => {
            let id = id_of(a).map(str::to_string);
            let known = state.account_id.as_ref().map(|i| i.as_str()) == id.as_deref();
            Action {
                op: if known { Op::NoOp } else { Op::Adopt },
                resource: Resource::Account,
                name: spec.name.clone(),
                remote_id: id,
                changes: vec![],
                body: None,
                reason: (!known).then(|| "found by name".to_string()),
            }
        }
    }
}

/// Lookups over what refresh read.
struct Index<'a> {
    agents: HashMap<&'a str, &'a Object>,
    /// Agents by `config.restaurantId`, oldest first.
    agents_by_restaurant: HashMap<&'a str, Vec<&'a Object>>,
    final_customers: HashMap<&'a str, &'a Object>,
    /// Final customer ids some agent points at.
    referenced_fcs: HashSet<&'a str>,
    /// Ids state already assigns, by restaurant: never adopted by another restaurant.
    claimed: HashMap<&'a str, &'a RestaurantId>,
    actual: &'a Actual,
}

impl<'a> Index<'a> {
    fn new(actual: &'a Actual, state: &'a State) -> Self {
        let agents: HashMap<&str, &Object> = actual
            .agents
            .iter()
            .filter_map(|a| id_of(a).map(|id| (id, a)))
            .collect();
        let mut agents_by_restaurant: HashMap<&str, Vec<&Object>> = HashMap::new();
        for a in &actual.agents {
            if let Some(r) = restaurant_of(a) {
                agents_by_restaurant.entry(r).or_default().push(a);
            }
        }
        for list in agents_by_restaurant.values_mut() {
            list.sort_by(|a, b| {
                let key = |o: &Object| {
                    (
                        o.get("createdAt")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        id_of(o).unwrap_or("").to_string(),
                    )
                };
                key(a).cmp(&key(b))
            });
        }
        let final_customers = actual
            .final_customers
            .iter()
            .filter_map(|f| id_of(f).map(|id| (id, f)))
            .collect();
        let referenced_fcs = actual
            .agents
            .iter()
            .filter_map(|a| a.get("finalCustomerId").and_then(Value::as_str))
            .collect();
        let mut claimed = HashMap::new();
        for (rid, st) in &state.restaurants {
            if let Some(a) = &st.agent_id {
                claimed.insert(a.as_str(), rid);
            }
            if let Some(f) = &st.final_customer_id {
                claimed.insert(f.as_str(), rid);
            }
        }
        Index {
            agents,
            agents_by_restaurant,
            final_customers,
            referenced_fcs,
            claimed,
            actual,
        }
    }

    fn free_for(&self, id: &str, r: &RestaurantId) -> bool {
        self.claimed.get(id).is_none_or(|owner| *owner == r)
    }
}

/// A matched server object and whether state already knew it.
struct Found<'a> {
    obj: &'a Object,
    adopted: bool,
    why: &'static str,
}

fn plan_restaurant(
    r: &DesiredRestaurant,
    st: Option<&RestaurantState>,
    ix: &Index<'_>,
    account_missing: bool,
) -> RestaurantPlan {
    let mut actions = Vec::new();
    let mut notes = Vec::new();

    // The agent: by state id, else by config.restaurantId (oldest first).
    let mut agent = if account_missing {
        None
    } else {
        st.and_then(|s| s.agent_id.as_ref())
            .and_then(|id| ix.agents.get(id.as_str()))
            .map(|obj| Found {
                obj,
                adopted: false,
                why: "",
            })
    };
    if agent.is_none() && !account_missing {
        let candidates: Vec<&Object> = ix
            .agents_by_restaurant
            .get(r.id.as_str())
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|a| ix.free_for(id_of(a).unwrap_or(""), &r.id))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(first) = candidates.first() {
            agent = Some(Found {
                obj: first,
                adopted: true,
                why: "found by config.restaurantId",
            });
        }
        if candidates.len() > 1 {
            let others: Vec<&str> = candidates[1..].iter().filter_map(|a| id_of(a)).collect();
            notes.push(format!(
                "{} more agents on the server claim this restaurant ({}); sipform manages the oldest and leaves the others untouched",
                others.len(),
                others.join(", ")
            ));
        }
    }
    if let (Some(s), None) = (st, &agent) {
        if let Some(id) = &s.agent_id {
            notes.push(format!(
                "agent {id} in state no longer exists on the server: it will be created again"
            ));
        }
    }

    // The final customer: by state id, else the agent's, else an unreferenced one by name.
    let fc_spec = to_object(serde_json::to_value(&r.final_customer).unwrap_or(Value::Null));
    let mut fc = if account_missing {
        None
    } else {
        st.and_then(|s| s.final_customer_id.as_ref())
            .and_then(|id| ix.final_customers.get(id.as_str()))
            .map(|obj| Found {
                obj,
                adopted: false,
                why: "",
            })
    };
    if fc.is_none() && !account_missing {
        let via_agent = agent
            .as_ref()
            .and_then(|a| a.obj.get("finalCustomerId").and_then(Value::as_str))
            .filter(|id| ix.free_for(id, &r.id))
            .and_then(|id| ix.final_customers.get(id))
            .map(|obj| Found {
                obj,
                adopted: true,
                why: "the agent's finalCustomerId",
            });
        fc = via_agent.or_else(|| {
            ix.actual
                .final_customers
                .iter()
                .find(|f| {
                    let id = id_of(f).unwrap_or("");
                    !ix.referenced_fcs.contains(id)
                        && ix.free_for(id, &r.id)
                        && f.get("name") == fc_spec.get("name")
                        && same(
                            f.get("email").unwrap_or(&Value::Null),
                            fc_spec.get("email").unwrap_or(&Value::Null),
                        )
                })
                .map(|obj| Found {
                    obj,
                    adopted: true,
                    why: "found by name and email, referenced by no agent",
                })
        });
    }

    if agent.is_none() && !r.create_if_missing {
        // Neither SIP nor chat: nothing to create, and nothing exists to deactivate.
        return RestaurantPlan {
            restaurant_id: r.id.clone(),
            name: r.agent.name.clone(),
            actions,
            notes,
        };
    }

    let fc_body = Value::Object(fc_spec.clone());
    actions.extend(object_actions(
        Resource::FinalCustomer,
        &r.final_customer.name,
        fc.as_ref(),
        &fc_body,
    ));

    let agent_body = serde_json::to_value(&r.agent).unwrap_or(Value::Null);
    actions.extend(object_actions(
        Resource::Agent,
        &r.agent.name,
        agent.as_ref(),
        &agent_body,
    ));

    // Tools: by state id (unless the agent was just adopted), else by name, else create.
    match &agent {
        None => {
            for t in &r.tools {
                let body = tool_body(t);
                actions.push(Action {
                    op: Op::Create,
                    resource: Resource::Tool,
                    name: t.name.clone(),
                    remote_id: None,
                    changes: create_changes(&body),
                    body: Some(body),
                    reason: None,
                });
            }
        }
        Some(a) => {
            let agent_id = crate::model::ids::AgentId::new(id_of(a.obj).unwrap_or(""));
            let empty = Vec::new();
            let server: &Vec<Object> = ix.actual.tools.get(&agent_id).unwrap_or(&empty);
            let by_id: HashMap<&str, &Object> = server
                .iter()
                .filter_map(|t| id_of(t).map(|id| (id, t)))
                .collect();
            let mut claimed: HashSet<&str> = HashSet::new();
            let mut tool_actions = Vec::new();
            for t in &r.tools {
                let body = tool_body(t);
                let known = (!a.adopted)
                    .then(|| st.and_then(|s| s.tools.get(&t.name)))
                    .flatten()
                    .and_then(|id| by_id.get(id.as_str()).copied())
                    .filter(|o| !claimed.contains(id_of(o).unwrap_or("")));
                let found = match known {
                    Some(obj) => Some(Found {
                        obj,
                        adopted: false,
                        why: "",
                    }),
                    None => server
                        .iter()
                        .find(|o| {
                            o.get("name").and_then(Value::as_str) == Some(t.name.as_str())
                                && !claimed.contains(id_of(o).unwrap_or(""))
                        })
                        .map(|obj| Found {
                            obj,
                            adopted: true,
                            why: "found by name",
                        }),
                };
                if let Some(f) = &found {
                    claimed.insert(id_of(f.obj).unwrap_or(""));
                }
                tool_actions.extend(object_actions(
                    Resource::Tool,
                    &t.name,
                    found.as_ref(),
                    &body,
                ));
            }
            let declared: HashSet<&str> = r.tools.iter().map(|t| t.name.as_str()).collect();
            for o in server {
                let id = id_of(o).unwrap_or("");
                if claimed.contains(id) {
                    continue;
                }
                let name = o.get("name").and_then(Value::as_str).unwrap_or("");
                let reason = if declared.contains(name) {
                    format!("duplicate of tool {name}")
                } else {
                    "not declared in tools/".to_string()
                };
                tool_actions.push(Action {
                    op: Op::Delete,
                    resource: Resource::Tool,
                    name: name.to_string(),
                    remote_id: Some(id.to_string()),
                    changes: vec![],
                    body: None,
                    reason: Some(reason),
                });
            }
            actions.extend(tool_actions);
        }
    }

    RestaurantPlan {
        restaurant_id: r.id.clone(),
        name: r.agent.name.clone(),
        actions,
        notes,
    }
}

/// Create, or adopt and/or update, or no-op, for one object.
fn object_actions(
    resource: Resource,
    name: &str,
    found: Option<&Found<'_>>,
    desired: &Value,
) -> Vec<Action> {
    let Some(f) = found else {
        return vec![Action {
            op: Op::Create,
            resource,
            name: name.to_string(),
            remote_id: None,
            changes: create_changes(desired),
            body: Some(desired.clone()),
            reason: None,
        }];
    };
    let id = id_of(f.obj).map(str::to_string);
    let mut out = Vec::new();
    if f.adopted {
        out.push(Action {
            op: Op::Adopt,
            resource,
            name: name.to_string(),
            remote_id: id.clone(),
            changes: vec![],
            body: None,
            reason: Some(f.why.to_string()),
        });
    }
    let mut changes = Vec::new();
    let actual = Value::Object(f.obj.clone());
    let empty = Map::new();
    let dmap = desired.as_object().unwrap_or(&empty);
    for (k, dv) in dmap {
        diff_value(k, dv, actual.get(k).unwrap_or(&Value::Null), &mut changes);
    }
    if changes.is_empty() {
        if !f.adopted {
            out.push(Action {
                op: Op::NoOp,
                resource,
                name: name.to_string(),
                remote_id: id,
                changes: vec![],
                body: None,
                reason: None,
            });
        }
        return out;
    }
    // PUT body: a tool is replaced whole; an agent or final customer gets the changed
    // top-level keys (the agent's `config` is one key, so it always goes whole).
    let body = if resource == Resource::Tool {
        desired.clone()
    } else {
        let top: BTreeSet<&str> = changes
            .iter()
            .map(|c| c.path.split('.').next().unwrap_or(""))
            .collect();
        let mut m = Map::new();
        for k in top {
            if let Some(v) = dmap.get(k) {
                m.insert(k.to_string(), v.clone());
            }
        }
        Value::Object(m)
    };
    out.push(Action {
        op: Op::Update,
        resource,
        name: name.to_string(),
        remote_id: id,
        changes,
        body: Some(body),
        reason: None,
    });
    out
}

fn plan_gone(
    rid: &RestaurantId,
    st: &RestaurantState,
    ix: &Index<'_>,
    allow_destroy: bool,
) -> RestaurantPlan {
    let agent = st
        .agent_id
        .as_ref()
        .and_then(|id| ix.agents.get(id.as_str()));
    let name = agent
        .and_then(|a| a.get("name").and_then(Value::as_str))
        .unwrap_or(rid.as_str())
        .to_string();
    let mut actions = Vec::new();
    let mut notes = Vec::new();
    if allow_destroy {
        if let Some(id) = &st.agent_id {
            actions.push(Action {
                op: Op::Delete,
                resource: Resource::Agent,
                name: name.clone(),
                remote_id: Some(id.to_string()),
                changes: vec![],
                body: None,
                reason: Some(if agent.is_some() {
                    "restaurant gone from the inventory (its tools go with it)".into()
                } else {
                    "restaurant gone from the inventory; already gone from the server".into()
                }),
            });
        }
        if let Some(id) = &st.final_customer_id {
            actions.push(Action {
                op: Op::Delete,
                resource: Resource::FinalCustomer,
                name: name.clone(),
                remote_id: Some(id.to_string()),
                changes: vec![],
                body: None,
                reason: Some("restaurant gone from the inventory".into()),
            });
        }
        if st.agent_id.is_none() && st.final_customer_id.is_none() {
            notes.push("gone from the inventory; only stale tool ids remain in state".into());
        }
    } else {
        let mut what = Vec::new();
        if let Some(id) = &st.agent_id {
            what.push(format!("agent {id}"));
        }
        if let Some(id) = &st.final_customer_id {
            what.push(format!("final customer {id}"));
        }
        notes.push(format!(
            "gone from the inventory: {} kept; run with --allow-destroy to delete",
            if what.is_empty() {
                "nothing".to_string()
            } else {
                what.join(" and ")
            }
        ));
    }
    RestaurantPlan {
        restaurant_id: rid.clone(),
        name,
        actions,
        notes,
    }
}

/// Every field of a new object, flattened one level into dotted paths for display.
fn create_changes(body: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    if let Value::Object(m) = body {
        for (k, v) in m {
            if v.is_null() {
                continue;
            }
            out.push(FieldChange {
                path: k.clone(),
                before: None,
                after: Some(v.clone()),
                sensitive: false,
            });
        }
    }
    out
}

/// Records where `desired` and `actual` differ, descending into objects.
pub fn diff_value(path: &str, desired: &Value, actual: &Value, out: &mut Vec<FieldChange>) {
    match (desired, actual) {
        (Value::Object(d), Value::Object(a)) => {
            let keys: BTreeSet<&String> = d.keys().chain(a.keys()).collect();
            for k in keys {
                diff_value(
                    &format!("{path}.{k}"),
                    d.get(k).unwrap_or(&Value::Null),
                    a.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ => {
            if !same(desired, actual) {
                out.push(FieldChange {
                    path: path.to_string(),
                    before: (!actual.is_null()).then(|| actual.clone()),
                    after: (!desired.is_null()).then(|| desired.clone()),
                    sensitive: false,
                });
            }
        }
    }
}

/// Equality as the server sees it: numbers by value, absent keys as null, object key order
/// ignored.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().all(|k| {
                same(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                )
            })
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_by_value_and_null_equals_absent() {
        assert!(same(&json!(0.5), &json!(0.5)));
        assert!(same(&json!(600), &json!(600.0)));
        assert!(same(&json!({"a": 1}), &json!({"a": 1, "b": null})));
        assert!(!same(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!same(&json!([1, 2]), &json!([2, 1])));
    }

    #[test]
    fn nested_changes_have_dotted_paths() {
        let mut out = Vec::new();
        diff_value(
            "config",
            &json!({"transferEnabled": true, "restaurantId": "r"}),
            &json!({"transferEnabled": false, "restaurantId": "r", "old": 1}),
            &mut out,
        );
        let paths: Vec<&str> = out.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, vec!["config.old", "config.transferEnabled"]);
        assert_eq!(out[0].after, None);
    }
}
