//! A plan is data: the ordered actions that make the server match the files.
//!
//! Built by [`crate::diff`] from desired and actual state, rendered by [`crate::output`] (human,
//! JSON, Markdown), saved with `--out` ([`mod@file`]), executed by [`crate::apply`]. The JSON
//! form is the saved form and is versioned (`formatVersion`); its schema is
//! `schema/plan.schema.json`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::model::ids::RestaurantId;

pub mod file;

/// Version of the saved-plan format. A plan of another version is refused.
pub const PLAN_FORMAT_VERSION: u32 = 1;

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
    /// State lineage and serial the plan was computed from: a saved plan applied after state
    /// moved on is stale and refused.
    pub lineage: Uuid,
    pub state_serial: u64,
    /// Digest of the remote objects the plan read: a saved plan applied after the server
    /// changed is stale and refused.
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
        self.actions.iter().any(|a| a.op.is_change())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Action {
    pub op: Op,
    pub resource: Resource,
    /// The tool name, or the account / agent / final customer name.
    pub name: String,
    /// The server id of the object acted on (absent for a create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// Field by field: every field for a create, the changed ones for an update, none
    /// otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// The request body apply sends (POST for create, PUT for update), without the ids apply
    /// learns from earlier actions (`accountId`, `finalCustomerId`). Never holds a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Why, when it is not obvious (adopted by restaurantId, not declared in tools/, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Read access that every consumer (outputs, ops, tests) uses, so that how an action stores its
/// data can change without touching them.
impl Action {
    pub fn op(&self) -> Op {
        self.op
    }

    pub fn resource(&self) -> Resource {
        self.resource
    }

    /// The tool name, or the account / agent / final customer name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server id acted on; `None` for a create.
    pub fn remote_id(&self) -> Option<&str> {
        self.remote_id.as_deref()
    }

    pub fn changes(&self) -> &[FieldChange] {
        &self.changes
    }

    /// The request body apply sends (create and update only).
    pub fn body(&self) -> Option<&Value> {
        self.body.as_ref()
    }

    /// Why, when it is not obvious, as shown to the user.
    pub fn reason(&self) -> Option<String> {
        self.reason.clone()
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

    pub fn symbol(self) -> &'static str {
        match self {
            Op::Create => "+",
            Op::Update => "~",
            Op::Delete => "-",
            Op::Adopt => "<=",
            Op::NoOp => "=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Resource {
    Account,
    FinalCustomer,
    Agent,
    Tool,
}

/// One field's change. `before` absent on a create, `after` absent on a delete. A sensitive
/// field carries no values, only `sensitive: true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldChange {
    /// Dotted path, e.g. `config.transferEnabled` or `http.bodyTemplate.partySize`.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
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
            match a.op {
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
    /// Every action, account first, in execution order.
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        std::iter::once(&self.account).chain(self.restaurants.iter().flat_map(|r| r.actions.iter()))
    }

    /// Whether apply would do anything at all (adopts write state, so they count).
    pub fn has_changes(&self) -> bool {
        !self.summary.is_empty()
    }
}
