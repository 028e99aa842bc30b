//! What validate hands to plan: everything sipform wants to exist.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde_json::Value;

use super::{AccountSpec, AgentSpec, FinalCustomerSpec, PhoneLineSpec, ToolSpec};
use crate::model::ids::{ObjectId, RestaurantId};

/// Everything sipform wants to exist, after load, render and validate. The pure input of diff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Desired {
    pub account: AccountSpec,
    /// In inventory order; ids unique. Every restaurant of the inventory, including those that
    /// need no agent (see [`DesiredRestaurant::create_if_missing`]).
    pub restaurants: Vec<DesiredRestaurant>,
    /// Restaurants of the inventory left out of this run because their own input is invalid
    /// (reported as skipped): their objects are left as they are, never planned as gone.
    pub held: BTreeSet<RestaurantId>,
    /// A restaurant was left out whose id could not be read: then no restaurant in state may be
    /// taken for one gone from the inventory.
    pub hold_all: bool,
}

impl Desired {
    /// Whether restaurant `id`, absent from [`Desired::restaurants`], must be left alone rather
    /// than planned as gone from the inventory.
    pub fn holds(&self, id: &RestaurantId) -> bool {
        self.hold_all || self.held.contains(id)
    }
}

/// One restaurant's objects: its final customer, its agent and the agent's tools.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredRestaurant {
    pub id: RestaurantId,
    pub final_customer: FinalCustomerSpec,
    pub agent: AgentSpec,
    /// Sorted by sortOrder; one list shared by every restaurant.
    pub tools: SharedTools,
    /// False for a restaurant with neither SIP nor chat enabled: its objects are not created,
    /// but an agent it already has is updated to the rendered spec (which is inactive), never
    /// deleted.
    pub create_if_missing: bool,
    /// `sipform.yaml`'s `billing.plan` (`default`, `none` or a plan name): resolved against
    /// the account's plans once refresh has read them.
    pub billing_plan: String,
    /// Its phone line, if it has one, with the password read from the environment at
    /// validate time (never printed: [`Secret`]).
    pub phone_line: Option<DesiredPhoneLine>,
    /// Its `timezone` column (the platform's default when NULL): change windows are
    /// evaluated in it.
    #[serde(skip)]
    pub timezone: chrono_tz::Tz,
    /// The agent and final customer the platform's row names (database mode): adoption
    /// trusts them before any match by `restaurantId` or by name.
    #[serde(skip)]
    pub platform_agent: Option<ObjectId>,
    #[serde(skip)]
    pub platform_final_customer: Option<ObjectId>,
}

/// The project's tools, built once and shared by every restaurant (a copy each made memory grow
/// by tens of kilobytes per restaurant), with the request body of each, made on first use.
/// Reads as a slice of [`ToolSpec`].
#[derive(Debug, Clone, Default)]
pub struct SharedTools(Arc<ToolSet>);

#[derive(Debug, Default)]
struct ToolSet {
    specs: Vec<ToolSpec>,
    bodies: OnceLock<Vec<Value>>,
}

impl SharedTools {
    /// The body of each tool, in order, made by `make` the first time (the same `make` for
    /// every call: `resources::tool::body`).
    pub fn bodies(&self, make: impl Fn(&ToolSpec) -> Value) -> &[Value] {
        self.0
            .bodies
            .get_or_init(|| self.0.specs.iter().map(make).collect())
    }
}

impl From<Vec<ToolSpec>> for SharedTools {
    fn from(specs: Vec<ToolSpec>) -> Self {
        SharedTools(Arc::new(ToolSet {
            specs,
            bodies: OnceLock::new(),
        }))
    }
}

impl std::ops::Deref for SharedTools {
    type Target = [ToolSpec];

    fn deref(&self) -> &[ToolSpec] {
        &self.0.specs
    }
}

impl PartialEq for SharedTools {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.specs == other.0.specs
    }
}

impl Serialize for SharedTools {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.specs.serialize(s)
    }
}

/// A phone line as wanted: the spec (provider resolved) and its password.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredPhoneLine {
    pub spec: PhoneLineSpec,
    /// Never serialized: `Secret` serializes its value, so it is skipped here.
    #[serde(skip)]
    pub password: Option<crate::model::secret::Secret<String>>,
    /// The platform's line id when the password comes from its `phone_lines` table: the plan
    /// names it (`{"fromPlatform": id}`), apply finds the value in [`crate::crypto::recall`].
    pub platform_line: Option<String>,
}
