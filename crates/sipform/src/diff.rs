//! diff: desired vs actual, object by object and field by field, into a [`Plan`].
//!
//! Pure: no I/O, no HTTP types; tests call it directly. It walks the resource kinds in their
//! declared order. Matching, in order of trust: the id in state; then the kind's adoption rule
//! (an agent by `config.restaurantId`, its final customer by the agent's `finalCustomerId` or
//! by name and email, a tool by name); then create. Only the keys sipform sets are compared,
//! absent equals null, and numbers compare by value, so `apply` then `plan` is empty.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value};

use crate::compare::{create_changes, diff_value};
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
    /// Replace objects the server cannot update (a subscription to another plan).
    pub allow_replace: bool,
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
    let mut cx = Cx::new(kinds, actual, state);
    cx.allow_replace = opts.allow_replace;

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

    let duplicates = duplicates::find(desired, actual, state, &restaurants);
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
        duplicates,
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
    /// Ids adopted earlier in this plan, by restaurant: never adopted twice.
    taken: RefCell<HashMap<ObjectId, RestaurantId>>,
    /// See [`PlanOptions::allow_replace`].
    allow_replace: bool,
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
            taken: RefCell::new(HashMap::new()),
            allow_replace: false,
        }
    }

    fn free_for(&self, id: &ObjectId, r: &RestaurantId) -> bool {
        self.claimed.get(id).is_none_or(|owner| *owner == r)
            && self.taken.borrow().get(id).is_none_or(|owner| owner == r)
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
                        wanted: r,
                        desired: desired.as_ref().unwrap_or(&null),
                        actual: self.actual,
                        matched: &matched,
                        free: &free,
                    });
                    notes.extend(adoption.note);
                    adoption.found.map(|(obj, why)| Found {
                        obj,
                        adopted: Some(why),
                    })
                }
            };
            match f {
                Some(f) => {
                    if f.adopted.is_some() {
                        self.taken
                            .borrow_mut()
                            .insert(f.obj.id.clone(), r.id.clone());
                    }
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
        notes.extend(self.other_claimants(singles, &r.id, &found));
        (found, notes)
    }

    /// Objects that say they belong to this restaurant (an agent's `config.restaurantId`) but
    /// are not the one sipform manages for it: reported on every plan, never touched.
    fn other_claimants(
        &self,
        singles: &[&dyn Kind],
        r: &RestaurantId,
        found: &HashMap<Resource, Found<'a>>,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        for k in singles {
            let managed = found.get(&k.resource()).map(|f| &f.obj.id);
            let others: Vec<&str> = self
                .actual
                .singles(k.resource())
                .iter()
                .filter(|o| k.claims(o) == Some(r.as_str()))
                .filter(|o| Some(&o.id) != managed && !self.claimed.contains_key(&o.id))
                .map(|o| o.id.as_str())
                .collect();
            if others.is_empty() {
                continue;
            }
            notes.push(format!(
                "{} more {}s on the server claim this restaurant ({}); sipform manages {} and leaves the others untouched",
                others.len(),
                k.resource().label(),
                others.join(", "),
                managed.map_or("none of them".to_string(), |id| id.to_string()),
            ));
        }
        notes
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
        let mut notes = notes;
        for k in &singles {
            for d in k.desired(r) {
                actions.extend(object_actions(
                    *k,
                    &d.key,
                    found.get(&k.resource()),
                    &d.body,
                    k.write_only_changes(r, st, &d.key),
                ));
            }
        }
        for k in self
            .kinds
            .iter()
            .filter(|k| k.shape() == crate::resources::Shape::Many)
        {
            let parent = k.parent().and_then(|p| found.get(&p));
            actions.extend(self.children(k, r, st, parent, &mut notes));
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
        notes: &mut Vec<String>,
    ) -> Vec<Action> {
        let desired = match k.desired_in(r, self.actual) {
            Ok(d) => d,
            Err(why) => {
                // An empty reason: nothing planned, and nothing to say (a phone line no
                // source declares).
                if !why.is_empty() {
                    notes.push(why);
                }
                return Vec::new();
            }
        };
        let Some(parent) = parent else {
            return desired
                .into_iter()
                .flat_map(|d| object_actions(k, &d.key, None, &d.body, Vec::new()))
                .collect();
        };
        let server = match self.actual.children(k.resource(), &parent.obj.id) {
            Some(s) => s,
            // A kind that replaces must not create beside objects it has not seen: refresh
            // reads them once state records the parent (after this run adopts it).
            None if k.replaces() && parent.adopted.is_some() => {
                let label = k.resource().label();
                notes.push(format!(
                    "{label}s wait: the adopted {}'s {label}s are read on the next run",
                    k.parent().map_or("parent", |p| p.label()),
                ));
                return Vec::new();
            }
            None => &[],
        };
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
            let hidden = k.write_only_changes(r, st, &d.key);
            actions.extend(object_actions(k, &d.key, f.as_ref(), &d.body, hidden));
        }
        actions.extend(extras(k, &desired, server, &taken));
        if k.replaces() {
            return self.replacements(k, server, actions, notes);
        }
        actions
    }

    /// For a kind the server cannot update: an update becomes a delete and a create, and
    /// deletes (and the creates beside them) happen only with `--allow-replace`; without it,
    /// what exists stays and a note says why.
    fn replacements(
        &self,
        k: &dyn Kind,
        server: &[ServerObject],
        actions: Vec<Action>,
        notes: &mut Vec<String>,
    ) -> Vec<Action> {
        let key_of = |id: &ObjectId| {
            server
                .iter()
                .find(|o| o.id == *id)
                .and_then(|o| k.key_of(o))
                .unwrap_or("")
                .to_string()
        };
        let destructive = actions
            .iter()
            .any(|a| matches!(a, Action::Update { .. } | Action::Delete { .. }));
        if !destructive {
            return actions;
        }
        let label = k.resource().label();
        if !self.allow_replace {
            let mut kept = Vec::new();
            let mut wanted = Vec::new();
            let mut out = Vec::new();
            for a in actions {
                match a {
                    Action::Update { name, id, .. } => {
                        kept.push(format!("{id} ({})", key_of(&id)));
                        wanted.push(name);
                    }
                    Action::Delete { name, id, .. } => kept.push(format!("{id} ({name})")),
                    Action::Create { name, .. } => wanted.push(name),
                    other => out.push(other),
                }
            }
            notes.push(format!(
                "{label} waits: {} on the server, {} wanted; a {label} cannot be updated, so run with --allow-replace to replace it (delete, then create)",
                kept.join(", "),
                if wanted.is_empty() { "none".to_string() } else { wanted.join(", ") },
            ));
            return out;
        }
        let mut out = Vec::new();
        for a in actions {
            match a {
                Action::Update {
                    resource,
                    name,
                    id,
                    body,
                    ..
                } => {
                    out.push(Action::Delete {
                        resource,
                        name: key_of(&id),
                        id,
                        reason: Reason::NotDeclared(format!(
                            "{} (replaced, --allow-replace)",
                            k.declared_in()
                        )),
                    });
                    out.push(Action::Create {
                        resource,
                        name,
                        changes: create_changes(&body),
                        body,
                    });
                }
                other => out.push(other),
            }
        }
        out
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

/// What a parent holds beyond what is wanted: deleted, as a duplicate of a declared key or
/// as not declared at all.
fn extras(
    k: &dyn Kind,
    desired: &[crate::resources::DesiredObject],
    server: &[ServerObject],
    taken: &HashSet<&ObjectId>,
) -> Vec<Action> {
    let declared: HashSet<&str> = desired.iter().map(|d| d.key.as_str()).collect();
    server
        .iter()
        .filter(|o| !taken.contains(&o.id))
        .map(|o| {
            let name = k.key_of(o).unwrap_or("");
            let reason = if declared.contains(name) {
                Reason::DuplicateOf {
                    label: k.resource().label().to_string(),
                    name: name.to_string(),
                }
            } else {
                Reason::NotDeclared(k.declared_in().to_string())
            };
            Action::Delete {
                resource: k.resource(),
                name: name.to_string(),
                id: o.id.clone(),
                reason,
            }
        })
        .collect()
}

/// A create: every field shown, the write-only ones as sensitive, without a value.
fn create(k: &dyn Kind, name: &str, desired: &Value) -> Action {
    let write_only = k.write_only();
    let changes = create_changes(desired)
        .into_iter()
        .map(|mut c| {
            if write_only.contains(&c.path.as_str()) {
                c.after = None;
                c.sensitive = true;
            }
            c
        })
        .collect();
    Action::Create {
        resource: k.resource(),
        name: name.to_string(),
        changes,
        body: desired.clone(),
    }
}

/// The PUT body: the whole object, or the changed top-level keys (the agent's `config` is one
/// key, so it always goes whole).
fn update_body(k: &dyn Kind, desired: &Value, changes: &[FieldChange]) -> Value {
    if k.update_whole() {
        return desired.clone();
    }
    let empty = Map::new();
    let dmap = desired.as_object().unwrap_or(&empty);
    let top: BTreeSet<&str> = changes
        .iter()
        .map(|c| c.path.split('.').next().unwrap_or(""))
        .collect();
    Value::Object(
        top.into_iter()
            .filter_map(|key| Some((key.to_string(), dmap.get(key)?.clone())))
            .collect(),
    )
}

/// Create, or adopt and/or update, or no-op, for one object. The kind's write-only keys
/// ([`Kind::write_only`]) are not compared (the server never returns them): `hidden` holds
/// their changes, and a create shows them as sensitive, without a value.
fn object_actions(
    k: &dyn Kind,
    name: &str,
    found: Option<&Found<'_>>,
    desired: &Value,
    hidden: Vec<FieldChange>,
) -> Vec<Action> {
    let resource = k.resource();
    let write_only = k.write_only();
    let Some(f) = found else {
        return vec![create(k, name, desired)];
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
    for (key, dv) in dmap
        .iter()
        .filter(|(key, _)| !write_only.contains(&key.as_str()))
    {
        diff_value(
            key,
            dv,
            f.obj.get(key).unwrap_or(&Value::Null),
            &mut changes,
        );
    }
    changes.extend(hidden);
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
    let body = update_body(k, desired, &changes);
    out.push(Action::Update {
        resource,
        name: name.to_string(),
        id,
        changes,
        body,
    });
    out
}

mod duplicates;

#[cfg(test)]
mod tests;
