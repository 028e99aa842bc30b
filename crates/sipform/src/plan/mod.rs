//! A plan is data: the ordered actions that make the server match the files.
//!
//! Built by [`crate::diff`] from desired and actual state, rendered by [`crate::output`] (human,
//! JSON, Markdown), saved with `--out` ([`mod@file`]), executed by [`crate::apply`]. The JSON
//! form is the saved form and is versioned (`formatVersion`); its schema is
//! `schema/plan.schema.json`.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub use crate::compare::FieldChange;
use crate::model::ids::{ObjectId, RestaurantId};
pub use crate::model::resource::Resource;

pub mod body;
pub mod file;
pub mod groups;
pub mod hold;

pub use body::Body;
pub use groups::groups;
pub(crate) use groups::{ChangeGroup, Grouping};
pub use hold::{Hold, HoldReason};

/// Version of the saved-plan format this build writes. Version 2 added the configuration's
/// [`Plan::revision`] and its notes; a version-1 plan still reads (with no revision), any other
/// is refused.
pub const PLAN_FORMAT_VERSION: u32 = 2;

/// The oldest saved-plan format this build still reads.
pub(crate) const PLAN_FORMAT_VERSION_MIN: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(
    title = "sipform plan",
    description = "What `sipform apply` will do, as `sipform plan --json` prints it."
)]
pub struct Plan {
    /// Always 1 for this format.
    pub format_version: u32,
    pub sipform_version: String,
    pub created_at: DateTime<Utc>,
    /// The server the plan was computed against.
    pub server_url: String,
    /// State lineage and serial the plan was computed from: a saved plan is refused in another
    /// lineage, or when state went back behind its serial. State moving forward is judged per
    /// restaurant (see `first_touched_difference`).
    pub lineage: Uuid,
    pub state_serial: u64,
    /// Digest of the remote objects the plan read (informational: the server changing is
    /// judged per restaurant).
    pub remote_fingerprint: String,
    /// Restaurants the plan was limited to (`--target`); empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<RestaurantId>,
    /// Whether deletes of restaurants gone from the inventory were allowed.
    #[serde(default)]
    pub allow_destroy: bool,
    /// The platform account; an action only when it must be created or adopted.
    pub account: Action,
    /// One entry per restaurant with anything to say, in inventory order, then those gone from
    /// the inventory.
    pub restaurants: Vec<RestaurantPlan>,
    pub summary: Summary,
    /// Server objects claiming a restaurant besides those sipform manages for it: listed on
    /// every plan (they are not changes), removed by `sipform dedupe`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<Duplicates>,
    /// The configuration's revision the plan was made from (absent in version-1 plans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<crate::model::revision::Revision>,
    /// `--allow-rollback`: restaurants recorded at a newer commit go back to this one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_rollback: bool,
    /// `--allow-dirty`: uncommitted changes go over restaurants recorded at a commit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_dirty: bool,
    /// Restaurants whose recorded revision this plan goes back from, or that apply refuses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revision_notes: Vec<crate::model::revision::RevisionNote>,
    /// `--ignore-windows`: change windows and live calls hold nothing (an emergency fix).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_windows: bool,
    /// Restaurants whose changes wait for their change window (as of when the plan was made;
    /// apply judges again at its own time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<Hold>,
    /// Agents of the account whose restaurant is in neither the inventory nor state (a
    /// delete answered but not done, a restaurant removed by hand): nobody looks at them
    /// again, so every full plan lists them (issue 25, item 5). Not changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orphans: Vec<Orphan>,
    /// The `guardrails:` limits this plan goes over: `apply` and the controller refuse it
    /// unless `--allow-changes` names a count at least as large. Judged again when a saved
    /// plan is applied (the file's copy is only shown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<crate::model::spec::Breach>,
}

/// An agent no restaurant of the inventory or state claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Orphan {
    pub id: ObjectId,
    /// Its `config.restaurantId`, as the server has it (none: absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restaurant_id: Option<String>,
    pub name: String,
}

/// One restaurant's extra copies on the server (the platform's catch-up provisioned it
/// twice): agents claiming it, their final customers, phone lines and subscriptions. Never
/// the objects state or the platform's row points at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Duplicates {
    pub restaurant_id: RestaurantId,
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<ObjectId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub final_customers: Vec<ObjectId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_lines: Vec<ChildId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<ChildId>,
}

impl Duplicates {
    /// How many objects it lists.
    pub fn count(&self) -> usize {
        self.agents.len()
            + self.final_customers.len()
            + self.phone_lines.len()
            + self.subscriptions.len()
    }
}

/// An object under a parent (a phone line under its agent, a subscription under its final
/// customer): the parent's id is part of its routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChildId {
    pub parent: ObjectId,
    pub id: ObjectId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestaurantPlan {
    pub restaurant_id: RestaurantId,
    /// The restaurant's name (from the inventory, or the agent's name when it is gone).
    pub name: String,
    /// In dependency order: final customer, agent, tools; deletes in reverse.
    pub actions: Vec<Action>,
    /// Why something that looks due will not happen (e.g. deletes without `--allow-destroy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl RestaurantPlan {
    pub fn has_changes(&self) -> bool {
        self.actions.iter().any(|a| a.op().is_change())
    }
}

/// One thing apply does (or, for [`Action::NoOp`], knows and leaves alone). Each variant
/// carries exactly what it needs: a create has a body and no id, an update an id and a body,
/// a delete or an adopt an id and a reason. The saved form is flat (see `ActionWire`).
///
/// A create's field list is its body's fields: derived when shown or saved
/// ([`Action::changes`]), not held (an agent's would be a second copy of its body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "ActionWire", try_from = "ActionWire")]
pub enum Action {
    Create {
        resource: Resource,
        name: String,
        /// The POST body, without the ids apply learns from earlier actions (`accountId`,
        /// `finalCustomerId`). Never holds a secret. Shared: the same tool created in every
        /// restaurant holds one body, not one per restaurant.
        body: Body,
        /// The body's keys the server keeps secret (their values are markers naming where
        /// the secret comes from): shown as sensitive, without a value.
        write_only: Box<[String]>,
    },
    Update {
        resource: Resource,
        name: String,
        id: ObjectId,
        /// The fields that differ.
        changes: Box<[FieldChange]>,
        /// The PUT body: the whole object, or the changed top-level keys. Shared like a
        /// create's (a tool's whole body is the same in every restaurant).
        body: Body,
    },
    Delete {
        resource: Resource,
        name: String,
        id: ObjectId,
        reason: Reason,
    },
    /// Exists on the server but not in state: taken into state, no write to the server.
    Adopt {
        resource: Resource,
        name: String,
        id: ObjectId,
        reason: Reason,
    },
    /// Known and up to date.
    NoOp {
        resource: Resource,
        name: String,
        id: ObjectId,
    },
}

impl JsonSchema for Action {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        ActionWire::schema_name()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        ActionWire::json_schema(g)
    }
}

/// One action. Which fields it has depends on `op`: a create has `body` and no `remoteId`, an
/// update `remoteId` and `body`, a delete or an adopt `remoteId` and `reason`, a no-op
/// `remoteId`. A plan whose actions do not fit their op is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "Action")]
struct ActionWire {
    op: Op,
    resource: Resource,
    /// The tool name, or the account / agent / final customer name.
    name: String,
    /// The server id of the object acted on (absent for a create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remote_id: Option<ObjectId>,
    /// Field by field: every field for a create, the changed ones for an update, none
    /// otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    changes: Vec<FieldChange>,
    /// The request body apply sends (POST for create, PUT for update), without the ids apply
    /// learns from earlier actions (`accountId`, `finalCustomerId`). Never holds a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<Value>,
    /// Why, when it is not obvious (adopted by restaurantId, not declared in tools/, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<Reason>,
}

impl From<Action> for ActionWire {
    fn from(a: Action) -> Self {
        let op = a.op();
        let (resource, name, id, changes, body, reason) = match a {
            Action::Create {
                resource,
                name,
                body,
                write_only,
            } => {
                // Parsed once, for the body and the fields derived from it.
                let body = body.value().into_owned();
                let changes = body_fields(&body, &write_only);
                (resource, name, None, changes, Some(body), None)
            }
            Action::Update {
                resource,
                name,
                id,
                changes,
                body,
            } => (
                resource,
                name,
                Some(id),
                changes.into_vec(),
                Some(body.value().into_owned()),
                None,
            ),
            Action::Delete {
                resource,
                name,
                id,
                reason,
            }
            | Action::Adopt {
                resource,
                name,
                id,
                reason,
            } => (resource, name, Some(id), Vec::new(), None, Some(reason)),
            Action::NoOp { resource, name, id } => {
                (resource, name, Some(id), Vec::new(), None, None)
            }
        };
        ActionWire {
            op,
            resource,
            name,
            remote_id: id,
            changes,
            body,
            reason,
        }
    }
}

impl TryFrom<ActionWire> for Action {
    type Error = String;

    fn try_from(w: ActionWire) -> Result<Self, String> {
        let what = format!("{} {:?}", w.resource, w.name);
        let need = |field: &str| format!("{what}: a {:?} action needs \"{field}\"", w.op);
        let refuse = |field: &str| format!("{what}: a {:?} action has no \"{field}\"", w.op);
        match w.op {
            Op::Create => {
                if w.remote_id.is_some() {
                    return Err(refuse("remoteId"));
                }
                let body = w.body.ok_or_else(|| need("body"))?;
                let write_only = w
                    .changes
                    .iter()
                    .filter(|c| c.sensitive)
                    .map(|c| c.path.clone())
                    .collect();
                let created = Action::Create {
                    resource: w.resource,
                    name: w.name,
                    body: Body::shared(body),
                    write_only,
                };
                // What a reviewer reads must be what apply sends.
                if *created.changes() != *w.changes {
                    return Err(format!(
                        "{what}: a create's \"changes\" must be its body's fields, as sipform writes them"
                    ));
                }
                Ok(created)
            }
            Op::Update => {
                let id = w.remote_id.ok_or_else(|| need("remoteId"))?;
                let body = w.body.ok_or_else(|| need("body"))?;
                Ok(Action::Update {
                    resource: w.resource,
                    name: w.name,
                    id,
                    changes: w.changes.into(),
                    body: Body::shared(body),
                })
            }
            Op::Delete | Op::Adopt => {
                if w.body.is_some() {
                    return Err(refuse("body"));
                }
                let id = w.remote_id.ok_or_else(|| need("remoteId"))?;
                let reason = w.reason.ok_or_else(|| need("reason"))?;
                let (resource, name) = (w.resource, w.name);
                Ok(if w.op == Op::Delete {
                    Action::Delete {
                        resource,
                        name,
                        id,
                        reason,
                    }
                } else {
                    Action::Adopt {
                        resource,
                        name,
                        id,
                        reason,
                    }
                })
            }
            Op::NoOp => {
                if w.body.is_some() {
                    return Err(refuse("body"));
                }
                let id = w.remote_id.ok_or_else(|| need("remoteId"))?;
                Ok(Action::NoOp {
                    resource: w.resource,
                    name: w.name,
                    id,
                })
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Op {
    Create,
    Update,
    Delete,
    /// Exists on the server but not in state: taken into state, no API call.
    Adopt,
    NoOp,
}

impl Op {
    /// Whether the action calls the server.
    pub fn is_change(self) -> bool {
        matches!(self, Op::Create | Op::Update | Op::Delete)
    }

    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Op::Create => "+",
            Op::Update => "~",
            Op::Delete => "-",
            Op::Adopt => "<=",
            Op::NoOp => "=",
        }
    }
}

/// Why an object is adopted or deleted: shown to the user, never used to decide. Saved as its
/// text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Reason {
    /// The account, or a tool: a server object of the desired name.
    FoundByName,
    /// An agent whose `config.restaurantId` is this restaurant's id.
    FoundByRestaurantId,
    /// The final customer the adopted agent points at.
    AgentsFinalCustomer,
    /// A final customer of the desired name and email that no agent points at.
    FoundByNameAndEmail,
    /// The agent the platform's row names (`agent_id`): trusted before any other rule.
    PlatformAgentId,
    /// The final customer the platform's row names (`final_customer_id`).
    PlatformFinalCustomerId,
    /// Under the agent, but no file declares it (`not declared in tools/`).
    NotDeclared(Box<str>),
    /// A second object of the same name under one parent (`duplicate of tool end_call`):
    /// the kind's label and the name. Boxed, like the other texts here, to keep every
    /// action small (a plan of 100,000 restaurants holds 1.6 million).
    DuplicateOf(Box<(String, String)>),
    /// The restaurant left the inventory (and `--allow-destroy` was given).
    GoneFromInventory,
    /// The same, for an object whose children the server deletes with it.
    GoneWithChildren { children: Box<str> },
    /// The same, for an object that no longer exists on the server (state is cleaned up).
    GoneFromServerToo,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::FoundByName => f.write_str("found by name"),
            Reason::FoundByRestaurantId => f.write_str("found by config.restaurantId"),
            Reason::AgentsFinalCustomer => f.write_str("the agent's finalCustomerId"),
            Reason::FoundByNameAndEmail => {
                f.write_str("found by name and email, referenced by no agent")
            }
            Reason::PlatformAgentId => f.write_str("the platform row's agent_id"),
            Reason::PlatformFinalCustomerId => f.write_str("the platform row's final_customer_id"),
            Reason::NotDeclared(place) => write!(f, "not declared in {place}"),
            Reason::DuplicateOf(of) => write!(f, "duplicate of {} {}", of.0, of.1),
            Reason::GoneFromInventory => f.write_str("restaurant gone from the inventory"),
            Reason::GoneWithChildren { children } => write!(
                f,
                "restaurant gone from the inventory (its {children} go with it)"
            ),
            Reason::GoneFromServerToo => {
                f.write_str("restaurant gone from the inventory; already gone from the server")
            }
        }
    }
}

impl From<Reason> for String {
    fn from(r: Reason) -> String {
        r.to_string()
    }
}

impl TryFrom<String> for Reason {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let fixed = [
            Reason::FoundByName,
            Reason::FoundByRestaurantId,
            Reason::AgentsFinalCustomer,
            Reason::FoundByNameAndEmail,
            Reason::PlatformAgentId,
            Reason::PlatformFinalCustomerId,
            Reason::GoneFromInventory,
            Reason::GoneFromServerToo,
        ];
        if let Some(r) = fixed.into_iter().find(|r| r.to_string() == s) {
            return Ok(r);
        }
        if let Some(place) = s.strip_prefix("not declared in ") {
            return Ok(Reason::NotDeclared(place.into()));
        }
        if let Some(rest) = s.strip_prefix("duplicate of ") {
            if let Some((label, name)) = rest.rsplit_once(' ') {
                return Ok(Reason::DuplicateOf(Box::new((
                    label.to_string(),
                    name.to_string(),
                ))));
            }
        }
        if let Some(children) = s
            .strip_prefix("restaurant gone from the inventory (its ")
            .and_then(|r| r.strip_suffix(" go with it)"))
        {
            return Ok(Reason::GoneWithChildren {
                children: children.into(),
            });
        }
        Err(format!("unknown reason {s:?}"))
    }
}

impl JsonSchema for Reason {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Reason".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string"})
    }
}

/// Read access that every consumer (outputs, ops, tests) uses.
impl Action {
    pub fn op(&self) -> Op {
        match self {
            Action::Create { .. } => Op::Create,
            Action::Update { .. } => Op::Update,
            Action::Delete { .. } => Op::Delete,
            Action::Adopt { .. } => Op::Adopt,
            Action::NoOp { .. } => Op::NoOp,
        }
    }

    pub fn resource(&self) -> Resource {
        match self {
            Action::Create { resource, .. }
            | Action::Update { resource, .. }
            | Action::Delete { resource, .. }
            | Action::Adopt { resource, .. }
            | Action::NoOp { resource, .. } => *resource,
        }
    }

    /// The tool name, or the account / agent / final customer name.
    pub fn name(&self) -> &str {
        match self {
            Action::Create { name, .. }
            | Action::Update { name, .. }
            | Action::Delete { name, .. }
            | Action::Adopt { name, .. }
            | Action::NoOp { name, .. } => name,
        }
    }

    /// The server id acted on; `None` for a create.
    pub fn id(&self) -> Option<&ObjectId> {
        match self {
            Action::Create { .. } => None,
            Action::Update { id, .. }
            | Action::Delete { id, .. }
            | Action::Adopt { id, .. }
            | Action::NoOp { id, .. } => Some(id),
        }
    }

    /// The server id as text; `None` for a create.
    pub(crate) fn remote_id(&self) -> Option<&str> {
        self.id().map(ObjectId::as_str)
    }

    /// Field by field: every field of a create's body (its write-only ones sensitive,
    /// without a value), the changed ones of an update, none otherwise.
    pub fn changes(&self) -> Cow<'_, [FieldChange]> {
        match self {
            Action::Create {
                body, write_only, ..
            } => Cow::Owned(body_fields(&body.value(), write_only)),
            Action::Update { changes, .. } => Cow::Borrowed(changes),
            _ => Cow::Borrowed(&[]),
        }
    }

    /// The request body apply sends (create and update only).
    pub fn body(&self) -> Option<&Body> {
        match self {
            Action::Create { body, .. } | Action::Update { body, .. } => Some(body),
            _ => None,
        }
    }

    pub(crate) fn reason_of(&self) -> Option<&Reason> {
        match self {
            Action::Delete { reason, .. } | Action::Adopt { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// Why, when it is not obvious, as shown to the user.
    pub fn reason(&self) -> Option<String> {
        self.reason_of().map(Reason::to_string)
    }
}

/// A create's fields: every non-null one of its body, the write-only ones sensitive, without
/// a value.
fn body_fields(body: &Value, write_only: &[String]) -> Vec<FieldChange> {
    let mut all = crate::compare::create_changes(body);
    for c in &mut all {
        if write_only.contains(&c.path) {
            c.after = None;
            c.sensitive = true;
        }
    }
    all
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub delete: usize,
    pub adopt: usize,
}

impl Summary {
    pub fn of<'a>(actions: impl IntoIterator<Item = &'a Action>) -> Summary {
        let mut s = Summary::default();
        for a in actions {
            match a.op() {
                Op::Create => s.add += 1,
                Op::Update => s.change += 1,
                Op::Delete => s.delete += 1,
                Op::Adopt => s.adopt += 1,
                Op::NoOp => {}
            }
        }
        s
    }

    pub fn is_empty(&self) -> bool {
        self.add == 0 && self.change == 0 && self.delete == 0 && self.adopt == 0
    }
}

impl Plan {
    /// The name the plan gives restaurant `id` (empty when it does not cover it).
    pub fn name_of(&self, id: &RestaurantId) -> String {
        self.restaurants
            .iter()
            .find(|r| &r.restaurant_id == id)
            .map(|r| r.name.clone())
            .unwrap_or_default()
    }

    /// Every action, account first, in execution order.
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        std::iter::once(&self.account).chain(self.restaurants.iter().flat_map(|r| r.actions.iter()))
    }

    /// Whether apply would do anything at all (adopts write state, so they count).
    pub fn has_changes(&self) -> bool {
        !self.summary.is_empty()
    }

    /// The part of the plan `import` carries out: adopts only, no call that writes to the
    /// server. `None` when the account does not exist yet (nothing can be imported).
    pub(crate) fn into_import(mut self) -> Option<Plan> {
        self.account = match self.account {
            Action::Create { .. } => return None,
            a @ (Action::Adopt { .. } | Action::NoOp { .. }) => a,
            Action::Update {
                resource, name, id, ..
            }
            | Action::Delete {
                resource, name, id, ..
            } => Action::NoOp { resource, name, id },
        };
        for r in &mut self.restaurants {
            r.actions.retain(|a| a.op() == Op::Adopt);
            r.notes.clear();
        }
        self.restaurants.retain(|r| !r.actions.is_empty());
        self.summary = Summary::of(self.actions());
        Some(self)
    }
}

/// [`first_difference`] limited to what `saved` touches: the account (shared by all) and the
/// restaurants it has an action for. A restaurant only `now` changes is not the saved plan's
/// business (applying the saved plan leaves it alone), so it does not make the plan stale.
pub(crate) fn first_touched_difference(saved: &Plan, now: &Plan) -> Option<String> {
    let touched: std::collections::HashSet<&RestaurantId> = saved
        .restaurants
        .iter()
        .filter(|r| r.actions.iter().any(|a| a.op() != Op::NoOp))
        .map(|r| &r.restaurant_id)
        .collect();
    let mut now = now.clone();
    now.restaurants
        .retain(|r| touched.contains(&r.restaurant_id));
    first_difference(saved, &now)
}

/// Where two plans of the same state and server disagree, named for the user (`restaurant
/// Chez Marco (r-1): tool end_call`); `None` when every action is the same.
pub(crate) fn first_difference(saved: &Plan, now: &Plan) -> Option<String> {
    if saved.account != now.account {
        return Some(format!("the account action for {:?}", saved.account.name()));
    }
    let by_id: std::collections::HashMap<&RestaurantId, &RestaurantPlan> = now
        .restaurants
        .iter()
        .map(|r| (&r.restaurant_id, r))
        .collect();
    let changed = |r: &RestaurantPlan| r.actions.iter().any(|a| a.op() != Op::NoOp);
    for r in saved.restaurants.iter().filter(|r| changed(r)) {
        let place = format!("restaurant {} ({})", r.name, r.restaurant_id);
        let Some(n) = by_id.get(&r.restaurant_id) else {
            return Some(format!("{place}: the whole restaurant"));
        };
        let mut theirs = n.actions.iter();
        for a in &r.actions {
            if theirs.next() != Some(a) {
                return Some(format!("{place}: {}", a.resource().describe(a.name())));
            }
        }
        if let Some(extra) = theirs.next() {
            return Some(format!(
                "{place}: {}",
                extra.resource().describe(extra.name())
            ));
        }
    }
    let saved_ids: std::collections::HashSet<&RestaurantId> =
        saved.restaurants.iter().map(|r| &r.restaurant_id).collect();
    now.restaurants
        .iter()
        .filter(|r| changed(r) && !saved_ids.contains(&r.restaurant_id))
        .map(|r| {
            format!(
                "restaurant {} ({}): the whole restaurant",
                r.name, r.restaurant_id
            )
        })
        .next()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A fresh plan of 100,000 restaurants holds 1.6 million actions: each stays small (texts
    /// boxed, the resource one pointer, a create's field list derived).
    #[test]
    fn an_action_stays_small() {
        assert!(
            std::mem::size_of::<Action>() <= 80,
            "{}",
            std::mem::size_of::<Action>()
        );
        assert_eq!(std::mem::size_of::<Resource>(), 8);
    }

    #[test]
    fn a_create_saves_its_body_fields_as_changes_and_a_saved_one_must_list_exactly_them() {
        let line = Action::Create {
            resource: Resource::PHONE_LINE,
            name: "+33100000000".into(),
            body: Body::packed(&json!({
                "phoneNumber": "+33100000000",
                "sipPassword": {"fromEnv": "SIP_PW"},
                "note": null
            })),
            write_only: Box::new(["sipPassword".into()]),
        };
        let saved = serde_json::to_value(&line).unwrap();
        // Every non-null field; the write-only one sensitive, without its value.
        assert_eq!(
            saved["changes"],
            json!([
                {"path": "phoneNumber", "after": "+33100000000"},
                {"path": "sipPassword", "sensitive": true}
            ])
        );
        let back: Action = serde_json::from_value(saved.clone()).unwrap();
        assert_eq!(back, line);
        assert_eq!(back.changes(), line.changes());

        // A reviewer reads `changes`; apply sends `body`: a saved create where they disagree
        // is refused, whichever was edited.
        let mut edited = saved.clone();
        edited["changes"][0]["after"] = json!("+33199999999");
        let e = serde_json::from_value::<Action>(edited)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be its body's fields"), "{e}");
        let mut edited = saved.clone();
        edited["body"]["phoneNumber"] = json!("+33199999999");
        assert!(serde_json::from_value::<Action>(edited).is_err());
        let mut edited = saved;
        edited["changes"].as_array_mut().unwrap().pop();
        assert!(serde_json::from_value::<Action>(edited).is_err());
    }
}
