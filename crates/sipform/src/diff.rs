//! diff: desired vs actual, object by object and field by field, into a [`Plan`].
//!
//! Pure: no I/O, no HTTP types; tests call it directly. It walks the resource kinds in their
//! declared order. Matching, in order of trust: the id in state; then the kind's adoption rule
//! (an agent by `config.restaurantId`, its final customer by the agent's `finalCustomerId` or
//! by name and email, a tool by name); then create. Only the keys sipform sets are compared,
//! absent equals null, and numbers compare by value, so `apply` then `plan` is empty.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value};

use crate::model::ids::{ObjectId, RestaurantId};
use crate::model::spec::{Desired, DesiredRestaurant};
use crate::plan::{
    Action, FieldChange, Plan, Reason, RestaurantPlan, Summary, PLAN_FORMAT_VERSION,
};
use crate::remote::ServerObject;
use crate::resources::{account, Actual, AdoptCx, Adoption, Kind, Kinds, Resource};
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

/// Builds the plan over sipform's own kinds.
pub fn plan(desired: &Desired, actual: &Actual, state: &State, opts: &PlanOptions) -> Plan {
    plan_with(&Kinds::builtin(), desired, actual, state, opts)
}

/// Builds the plan over `kinds`.
pub fn plan_with(
    kinds: &Kinds,
    desired: &Desired,
    actual: &Actual,
    state: &State,
    opts: &PlanOptions,
) -> Plan {
    let recorded_account = state
        .account_id
        .as_ref()
        .and_then(|i| i.to_object_id().ok());
    let account = account::action(
        &desired.account,
        actual.account.as_ref(),
        recorded_account.as_ref(),
    );
    let cx = Cx::new(kinds, actual, state);

    let mut restaurants = Vec::new();
    let mut desired_ids = HashSet::new();
    for r in &desired.restaurants {
        desired_ids.insert(r.id.clone());
        if !opts.in_scope(&r.id) {
            continue;
        }
        let rp = cx.restaurant(r, state.restaurants.get(&r.id));
        if !rp.actions.is_empty() || !rp.notes.is_empty() {
            restaurants.push(rp);
        }
    }
    for (rid, st) in &state.restaurants {
        // A restaurant skipped for invalid input is still in the inventory: never "gone".
        if desired_ids.contains(rid) || desired.holds(rid) || !opts.in_scope(rid) {
            continue;
        }
        restaurants.push(cx.gone(rid, st, opts.allow_destroy));
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
        remote_fingerprint: actual.fingerprint(),
        targets: opts.targets.iter().cloned().collect(),
        allow_destroy: opts.allow_destroy,
        account,
        restaurants,
        summary,
    }
}

/// A matched server object and whether state already knew it.
struct Found<'a> {
    obj: &'a ServerObject,
    /// `Some(why)` when adopted now; `None` when state recorded it.
    adopted: Option<Reason>,
}

/// What every restaurant's diff shares.
struct Cx<'a> {
    kinds: &'a Kinds,
    actual: &'a Actual,
    /// False when the account must be created: nothing else can exist yet.
    account_exists: bool,
    /// Ids state assigns, by restaurant: never adopted by another restaurant.
    claimed: HashMap<ObjectId, &'a RestaurantId>,
}

impl<'a> Cx<'a> {
    fn new(kinds: &'a Kinds, actual: &'a Actual, state: &'a State) -> Self {
        let mut claimed = HashMap::new();
        for (rid, st) in &state.restaurants {
            for k in kinds.singletons() {
                if let Some(id) = k.recorded(st, "") {
                    claimed.insert(id, rid);
                }
            }
        }
        Cx {
            kinds,
            actual,
            account_exists: actual.account.is_some(),
            claimed,
        }
    }

    fn free_for(&self, id: &ObjectId, r: &RestaurantId) -> bool {
        self.claimed.get(id).is_none_or(|owner| *owner == r)
    }

    /// The object state records for a one-per-restaurant kind, if it still exists.
    fn recorded(&self, k: &dyn Kind, st: Option<&RestaurantState>) -> Option<&'a ServerObject> {
        let id = k.recorded(st?, "")?;
        self.actual
            .singles(k.resource())
            .iter()
            .find(|o| o.id == id)
    }

    /// Matches this restaurant's one-per-restaurant objects, children first: a child names
    /// its parent (the agent its final customer). Returns what was found and the notes.
    fn matches(
        &self,
        singles: &[&dyn Kind],
        r: &DesiredRestaurant,
        st: Option<&RestaurantState>,
    ) -> (HashMap<Resource, Found<'a>>, Vec<String>) {
        let mut notes = Vec::new();
        let mut matched: HashMap<Resource, &'a ServerObject> = HashMap::new();
        let mut found: HashMap<Resource, Found<'a>> = HashMap::new();
        if !self.account_exists {
            return (found, notes);
        }
        for k in singles.iter().rev() {
            let f = match self.recorded(*k, st) {
                Some(obj) => Some(Found { obj, adopted: None }),
                None => {
                    let free = |id: &ObjectId| self.free_for(id, &r.id);
                    let desired = k.desired(r).into_iter().next().map(|d| d.body);
                    let null = Value::Null;
                    let adoption: Adoption<'a> = k.adopt(&AdoptCx {
                        restaurant: &r.id,
                        desired: desired.as_ref().unwrap_or(&null),
                        actual: self.actual,
                        matched: &matched,
                        free: &free,
                    });
                    if !adoption.others.is_empty() {
                        let ids: Vec<&str> = adoption.others.iter().map(|i| i.as_str()).collect();
                        notes.push(format!(
                            "{} more {}s on the server claim this restaurant ({}); sipform manages the oldest and leaves the others untouched",
                            ids.len(),
                            k.resource().label(),
                            ids.join(", ")
                        ));
                    }
                    adoption.found.map(|(obj, why)| Found {
                        obj,
                        adopted: Some(why),
                    })
                }
            };
            match f {
                Some(f) => {
                    matched.insert(k.resource(), f.obj);
                    found.insert(k.resource(), f);
                }
                None => {
                    if let Some(id) = st.and_then(|s| k.recorded(s, "")) {
                        notes.push(format!(
                            "{} {id} in state no longer exists on the server: it will be created again",
                            k.resource().label()
                        ));
                    }
                }
            }
        }
        (found, notes)
    }

    fn restaurant(&self, r: &DesiredRestaurant, st: Option<&RestaurantState>) -> RestaurantPlan {
        let singles: Vec<&dyn Kind> = self.kinds.singletons().collect();
        let (found, notes) = self.matches(&singles, r, st);

        // Neither SIP nor chat: nothing to create, and nothing exists to deactivate.
        let leaf = singles.last().map(|k| k.resource());
        if !r.create_if_missing && leaf.is_some_and(|l| !found.contains_key(&l)) {
            return RestaurantPlan {
                restaurant_id: r.id.clone(),
                name: r.agent.name.clone(),
                actions: Vec::new(),
                notes,
            };
        }

        let mut actions = Vec::new();
        for k in &singles {
            for d in k.desired(r) {
                actions.extend(object_actions(
                    *k,
                    &d.key,
                    found.get(&k.resource()),
                    &d.body,
                ));
            }
        }
        for k in self
            .kinds
            .iter()
            .filter(|k| k.shape() == crate::resources::Shape::Many)
        {
            let parent = k.parent().and_then(|p| found.get(&p));
            actions.extend(self.children(k, r, st, parent));
        }
        RestaurantPlan {
            restaurant_id: r.id.clone(),
            name: r.agent.name.clone(),
            actions,
            notes,
        }
    }

    /// A many-per-parent kind: by state id (unless the parent was just adopted), else by key,
    /// else create; what the parent holds beyond that is deleted.
    fn children(
        &self,
        k: &dyn Kind,
        r: &DesiredRestaurant,
        st: Option<&RestaurantState>,
        parent: Option<&Found<'a>>,
    ) -> Vec<Action> {
        let desired = k.desired(r);
        let Some(parent) = parent else {
            return desired
                .into_iter()
                .flat_map(|d| object_actions(k, &d.key, None, &d.body))
                .collect();
        };
        let server = self
            .actual
            .children(k.resource(), &parent.obj.id)
            .unwrap_or(&[]);
        let mut taken: HashSet<&ObjectId> = HashSet::new();
        let mut actions = Vec::new();
        for d in &desired {
            let known = parent
                .adopted
                .is_none()
                .then(|| st.and_then(|s| k.recorded(s, &d.key)))
                .flatten()
                .and_then(|id| server.iter().find(|o| o.id == id))
                .filter(|o| !taken.contains(&o.id))
                .map(|obj| Found { obj, adopted: None });
            let f = known.or_else(|| {
                server
                    .iter()
                    .find(|o| k.key_of(o) == Some(d.key.as_str()) && !taken.contains(&o.id))
                    .map(|obj| Found {
                        obj,
                        adopted: Some(Reason::FoundByName),
                    })
            });
            if let Some(f) = &f {
                taken.insert(&f.obj.id);
            }
            actions.extend(object_actions(k, &d.key, f.as_ref(), &d.body));
        }
        let declared: HashSet<&str> = desired.iter().map(|d| d.key.as_str()).collect();
        for o in server.iter().filter(|o| !taken.contains(&o.id)) {
            let name = k.key_of(o).unwrap_or("");
            let reason = if declared.contains(name) {
                Reason::DuplicateOf {
                    label: k.resource().label().to_string(),
                    name: name.to_string(),
                }
            } else {
                Reason::NotDeclared(k.undeclared_reason().to_string())
            };
            actions.push(Action::Delete {
                resource: k.resource(),
                name: name.to_string(),
                id: o.id.clone(),
                reason,
            });
        }
        actions
    }

    /// A restaurant in state but gone from the inventory: its objects deleted (children go
    /// with their parent on the server) under `--allow-destroy`, otherwise only noted.
    fn gone(
        &self,
        rid: &RestaurantId,
        st: &RestaurantState,
        allow_destroy: bool,
    ) -> RestaurantPlan {
        let singles: Vec<&dyn Kind> = self.kinds.singletons().collect();
        let leaf = singles.last().and_then(|k| self.recorded(*k, Some(st)));
        let name = leaf
            .and_then(ServerObject::name)
            .unwrap_or(rid.as_str())
            .to_string();
        let mut actions = Vec::new();
        let mut notes = Vec::new();
        let recorded: Vec<(&dyn Kind, ObjectId)> = singles
            .iter()
            .rev()
            .filter_map(|k| Some((*k, k.recorded(st, "")?)))
            .collect();
        if allow_destroy {
            for (k, id) in &recorded {
                let children: Vec<&str> = self
                    .kinds
                    .children_of(k.resource())
                    .map(|c| c.resource().label())
                    .collect();
                let reason = if children.is_empty() {
                    Reason::GoneFromInventory
                } else if self.recorded(*k, Some(st)).is_some() {
                    Reason::GoneWithChildren {
                        children: children
                            .iter()
                            .map(|c| format!("{c}s"))
                            .collect::<Vec<_>>()
                            .join(" and "),
                    }
                } else {
                    Reason::GoneFromServerToo
                };
                actions.push(Action::Delete {
                    resource: k.resource(),
                    name: name.clone(),
                    id: id.clone(),
                    reason,
                });
            }
            if recorded.is_empty() {
                let children: Vec<&str> = self
                    .kinds
                    .iter()
                    .filter(|k| k.shape() == crate::resources::Shape::Many)
                    .map(|k| k.resource().label())
                    .collect();
                notes.push(format!(
                    "gone from the inventory; only stale {} ids remain in state",
                    children.join(" and ")
                ));
            }
        } else {
            let what: Vec<String> = recorded
                .iter()
                .map(|(k, id)| format!("{} {id}", k.resource().label()))
                .collect();
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
}

/// Create, or adopt and/or update, or no-op, for one object.
fn object_actions(
    k: &dyn Kind,
    name: &str,
    found: Option<&Found<'_>>,
    desired: &Value,
) -> Vec<Action> {
    let resource = k.resource();
    let Some(f) = found else {
        return vec![Action::Create {
            resource,
            name: name.to_string(),
            changes: create_changes(desired),
            body: desired.clone(),
        }];
    };
    let id = f.obj.id.clone();
    let mut out = Vec::new();
    if let Some(why) = &f.adopted {
        out.push(Action::Adopt {
            resource,
            name: name.to_string(),
            id: id.clone(),
            reason: why.clone(),
        });
    }
    let mut changes = Vec::new();
    let empty = Map::new();
    let dmap = desired.as_object().unwrap_or(&empty);
    for (key, dv) in dmap {
        diff_value(
            key,
            dv,
            f.obj.get(key).unwrap_or(&Value::Null),
            &mut changes,
        );
    }
    if changes.is_empty() {
        if f.adopted.is_none() {
            out.push(Action::NoOp {
                resource,
                name: name.to_string(),
                id,
            });
        }
        return out;
    }
    // PUT body: the whole object, or the changed top-level keys (the agent's `config` is one
    // key, so it always goes whole).
    let body = if k.update_whole() {
        desired.clone()
    } else {
        let top: BTreeSet<&str> = changes
            .iter()
            .map(|c| c.path.split('.').next().unwrap_or(""))
            .collect();
        Value::Object(
            top.into_iter()
                .filter_map(|key| Some((key.to_string(), dmap.get(key)?.clone())))
                .collect(),
        )
    };
    out.push(Action::Update {
        resource,
        name: name.to_string(),
        id,
        changes,
        body,
    });
    out
}

/// Every field of a new object, flattened one level into dotted paths for display.
pub fn create_changes(body: &Value) -> Vec<FieldChange> {
    let Value::Object(m) = body else {
        return Vec::new();
    };
    m.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| FieldChange {
            path: k.clone(),
            before: None,
            after: Some(v.clone()),
            sensitive: false,
        })
        .collect()
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
mod tests;
