//! Resource kinds: one file per kind of server object, each saying its desired form, the calls
//! that create, update, delete and re-read it, and its slot in state. The dependency order is
//! declared once, as data ([`Kinds::builtin`]): diff walks it, apply runs it (deletes in
//! reverse), and neither has a `match` on the kind.
//!
//! The account is the one global object ([`account`]); every other kind exists per restaurant,
//! either once ([`Shape::One`]: final customer, agent) or several times under a parent object,
//! keyed by a name ([`Shape::Many`]: tools under the agent). A new kind is one file
//! implementing [`Kind`] plus one line in [`Kinds::builtin`]; a program embedding sipform adds
//! its own with [`Kinds::with`].

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::model::ids::{ObjectId, RestaurantId};
pub use crate::model::resource::Resource;
use crate::model::spec::DesiredRestaurant;
use crate::remote::{Client, ClientError, Created, Secrets, ServerObject};
use crate::state::{Change, RestaurantState};
pub(crate) use actual::Actual;
pub(crate) use index::Index;

pub mod account;
pub mod actual;
pub mod agent;
pub mod final_customer;
pub mod index;
pub mod owners;
pub mod phone_line;
pub mod subscription;
pub mod tool;

/// How many objects of a kind a restaurant has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Exactly one (final customer, agent), found by the kind's own adoption rules.
    One,
    /// Several under the parent object, keyed by name (tools). Server objects under the parent
    /// that no desired key claims are deleted.
    Many,
}

/// The ids a restaurant's run has learned so far: the account's, and one per kind of shape
/// [`Shape::One`]. A kind's calls read their parents' ids from here.
#[derive(Debug, Clone)]
pub struct Parents {
    pub account: ObjectId,
    ids: HashMap<Resource, ObjectId>,
}

impl Parents {
    pub fn new(account: ObjectId) -> Self {
        Parents {
            account,
            ids: HashMap::new(),
        }
    }

    pub fn get(&self, r: Resource) -> Option<&ObjectId> {
        self.ids.get(&r)
    }

    pub fn set(&mut self, r: Resource, id: Option<ObjectId>) {
        match id {
            Some(id) => self.ids.insert(r, id),
            None => self.ids.remove(&r),
        };
    }

    /// The parent id a call needs; a plan whose parent never came is inconsistent.
    pub fn require(&self, r: Resource) -> Result<&ObjectId, ClientError> {
        self.get(r)
            .ok_or_else(|| ClientError::Build(format!("no {r} to attach to")))
    }
}

/// What a one-per-restaurant kind sees when it looks for an object to adopt (state records
/// none). Kinds are matched children first (the agent before its final customer), because a
/// child names its parent.
pub struct AdoptCx<'c, 'a> {
    pub restaurant: &'c RestaurantId,
    /// The whole restaurant as wanted (the platform row's own links, in database mode).
    pub wanted: &'c DesiredRestaurant,
    /// This kind's desired body.
    pub desired: &'c Value,
    pub actual: &'a Actual,
    /// Lookups over `actual` (by id, by claimed restaurant, by link): use them, never a scan.
    pub index: &'c Index<'a>,
    /// What this restaurant already matched, by kind.
    pub matched: &'c HashMap<Resource, &'a ServerObject>,
    /// Whether no other restaurant's state claims the id.
    pub free: &'c dyn Fn(&ObjectId) -> bool,
}

/// The object a kind adopts, with why, and what the plan should say about the choice (an
/// ambiguous match is reported, never silent).
#[derive(Default)]
pub struct Adoption<'a> {
    pub found: Option<(&'a ServerObject, crate::plan::Reason)>,
    pub note: Option<String>,
}

/// One object a restaurant wants: its key (the name) and the body sipform sends.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredObject {
    pub key: String,
    pub body: Value,
}

/// What a kind of object is and how it is handled. Implementations hold no state; one instance
/// serves every restaurant.
#[async_trait]
pub trait Kind: Send + Sync {
    fn resource(&self) -> Resource;

    fn shape(&self) -> Shape;

    /// The kind whose object this one belongs to (its id comes from [`Parents`]). `None`: the
    /// account.
    fn parent(&self) -> Option<Resource>;

    /// The objects a restaurant wants of this kind, in the order they are created.
    fn desired(&self, r: &DesiredRestaurant) -> Vec<DesiredObject>;

    /// The objects wanted once refresh has read the server: a subscription's plan id comes
    /// from the account's plans. `Err`: nothing is planned for this kind and restaurant now
    /// (what exists is kept); the text is the plan's note saying why.
    fn desired_in(
        &self,
        r: &DesiredRestaurant,
        _actual: &Actual,
    ) -> Result<Vec<DesiredObject>, String> {
        Ok(self.desired(r))
    }

    /// Whether the server cannot update an object of this kind: a change is a delete and a
    /// create, and so is removing one the desired objects do not name. Both only with
    /// `--allow-replace`; without it the plan keeps what exists and says why it waits.
    fn replaces(&self) -> bool {
        false
    }

    /// Whether an update sends the whole desired body (a tool is replaced whole) or only the
    /// changed top-level keys (the server merges them).
    fn update_whole(&self) -> bool;

    /// Where its objects are declared, for the plan's reason when one under a parent is
    /// not: `not declared in tools/`.
    fn declared_in(&self) -> &'static str {
        "the project's files"
    }

    /// The restaurant a server object says it belongs to, when it says (an agent's
    /// `config.restaurantId`). Refresh reads the children of such objects too.
    fn claims<'a>(&self, _o: &'a ServerObject) -> Option<&'a str> {
        None
    }

    /// The object of another one-per-restaurant kind a server object points at (an agent's
    /// `finalCustomerId`): that object may be adopted through it, so refresh reads what a
    /// replacing kind holds under it.
    fn links(&self, _o: &ServerObject) -> Option<(Resource, ObjectId)> {
        None
    }

    /// The id of this kind's object the restaurant's own record names (the platform's row
    /// carries its agent's and final customer's ids): read and adopted before anything else.
    fn named_by_row(&self, _r: &DesiredRestaurant) -> Option<ObjectId> {
        None
    }

    /// The key of a server object (its name).
    fn key_of<'a>(&self, o: &'a ServerObject) -> Option<&'a str> {
        o.name()
    }

    /// For a kind of shape [`Shape::One`]: every field that [`Kind::claims`], [`Kind::links`],
    /// [`Kind::key_of`] and [`Kind::adopt`] read (`config.restaurantId`: one field of one). A
    /// plan holds this kind's objects packed ([`ServerObject::pack`]) with only these parsed.
    /// `None`: held whole.
    fn lookup_fields(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// For a kind of shape [`Shape::One`]: the server object to adopt when state records
    /// none. The default adopts nothing (the object is created).
    fn adopt<'a>(&self, _cx: &AdoptCx<'_, 'a>) -> Adoption<'a> {
        Adoption::default()
    }

    /// Keys of its body the server never returns (a password): diff leaves them out of the
    /// field-by-field comparison and asks [`Kind::write_only_changes`] instead.
    fn write_only(&self) -> &'static [&'static str] {
        &[]
    }

    /// The changes of its write-only keys for `key` (shown `sensitive`, without values),
    /// judged against what state recorded after the last write (a salted hash).
    fn write_only_changes(
        &self,
        _r: &DesiredRestaurant,
        _st: Option<&RestaurantState>,
        _key: &str,
    ) -> Vec<crate::plan::FieldChange> {
        Vec::new()
    }

    /// What state records after a create or update of `key` that sent `body` succeeded,
    /// besides the id (a phone line's password hash). Apply calls it; the default is nothing.
    fn after_write(
        &self,
        _restaurant: &RestaurantId,
        _key: &str,
        _body: &Value,
    ) -> Result<Vec<Change>, ClientError> {
        Ok(Vec::new())
    }

    // --- its slot in state ---------------------------------------------------------------

    /// The id state records for `key`.
    fn recorded(&self, st: &RestaurantState, key: &str) -> Option<ObjectId>;

    /// The state change that records `id` for `key` (`None`: forget it).
    fn change(
        &self,
        restaurant: &RestaurantId,
        key: &str,
        id: Option<&ObjectId>,
        secrets: Option<&Secrets>,
    ) -> Change;

    // --- its calls -----------------------------------------------------------------------

    /// Its objects under `parent` (the account for a kind whose parent is the account).
    async fn list(
        &self,
        client: &Client,
        parent: &ObjectId,
    ) -> Result<Vec<ServerObject>, ClientError>;

    /// [`Kind::list`], its objects packed when the kind names its lookup fields
    /// ([`Kind::lookup_fields`]): what a plan holds from its start to its end.
    async fn list_packed(
        &self,
        client: &Client,
        parent: &ObjectId,
    ) -> Result<Vec<ServerObject>, ClientError> {
        let mut list = self.list(client, parent).await?;
        if let Some(keep) = self.lookup_fields() {
            for o in &mut list {
                o.pack(keep);
            }
        }
        Ok(list)
    }

    /// The routes of the contract this kind assumes the server has (beyond the documented
    /// ones), `:id` standing for any id: `doctor` probes them, in kind order.
    fn assumed_routes(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// Whether `r` needs what this kind reads once per account ([`Kind::account_data`]).
    fn needs_account_data(&self, _r: &DesiredRestaurant) -> bool {
        false
    }

    /// What this kind reads once per account besides its own objects (a subscription: the
    /// account's billing plans, which the server makes with the account), with the resource
    /// [`Actual`] keeps it under. `None`: nothing.
    async fn account_data(
        &self,
        _client: &Client,
        _account: &ObjectId,
    ) -> Result<Option<(Resource, Vec<ServerObject>)>, ClientError> {
        Ok(None)
    }

    /// For a kind of shape [`Shape::One`]: one object read by id (`None`: the server has none
    /// of that id, or the kind cannot be read by id). The controller's cache re-reads what it
    /// distrusts this way.
    async fn read_one(
        &self,
        _client: &Client,
        _id: &ObjectId,
    ) -> Result<Option<ServerObject>, ClientError> {
        Ok(None)
    }

    /// POST once; ambiguous failures come back to apply, which re-reads before retrying.
    async fn create(
        &self,
        client: &Client,
        parents: &Parents,
        body: &Value,
    ) -> Result<Created, ClientError>;

    /// After an ambiguous create failure: the object the lost attempt may have stored, among
    /// those no one else's state `taken` claims.
    async fn find_created(
        &self,
        client: &Client,
        parents: &Parents,
        restaurant: &RestaurantId,
        body: &Value,
        taken: &(dyn for<'x> Fn(&'x ObjectId) -> bool + Sync),
    ) -> Result<Option<Created>, ClientError>;

    async fn update(
        &self,
        client: &Client,
        parents: &Parents,
        id: &ObjectId,
        body: &Value,
    ) -> Result<(), ClientError>;

    async fn delete(
        &self,
        client: &Client,
        parents: &Parents,
        id: &ObjectId,
    ) -> Result<(), ClientError>;

    /// What adopting `id` records. The default records the id; the agent also reads its
    /// tokens (one GET, no write).
    async fn adopted(
        &self,
        _client: &Client,
        restaurant: &RestaurantId,
        key: &str,
        id: &ObjectId,
    ) -> Result<Change, ClientError> {
        Ok(self.change(restaurant, key, Some(id), None))
    }
}

/// The kinds in dependency order: parents before children. Deletes run it in reverse.
#[derive(Clone)]
pub struct Kinds {
    list: Vec<Arc<dyn Kind>>,
}

impl Kinds {
    /// sipform's own kinds. The order list: one line per kind.
    pub fn builtin() -> Kinds {
        Kinds {
            list: vec![
                Arc::new(final_customer::FinalCustomer),
                Arc::new(agent::Agent),
                Arc::new(tool::Tool),
                Arc::new(subscription::Subscription::default()),
                Arc::new(phone_line::PhoneLine),
            ],
        }
    }

    /// Adds a kind after the others (its parent must already be in the list).
    pub fn with(mut self, kind: Arc<dyn Kind>) -> Kinds {
        self.list.push(kind);
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = &dyn Kind> {
        self.list.iter().map(|k| k.as_ref())
    }

    pub fn get(&self, r: Resource) -> Option<&dyn Kind> {
        self.iter().find(|k| k.resource() == r)
    }

    /// Position in the dependency order (the account, which is not in the list, comes first).
    pub fn rank(&self, r: Resource) -> usize {
        self.list
            .iter()
            .position(|k| k.resource() == r)
            .map_or(0, |p| p + 1)
    }

    /// The kinds of shape [`Shape::Many`] living under `parent`.
    pub(crate) fn children_of(&self, parent: Resource) -> impl Iterator<Item = &dyn Kind> {
        self.iter()
            .filter(move |k| k.shape() == Shape::Many && k.parent() == Some(parent))
    }

    /// The kinds of shape [`Shape::One`], in order.
    pub(crate) fn singletons(&self) -> impl Iterator<Item = &dyn Kind> {
        self.iter().filter(|k| k.shape() == Shape::One)
    }
}

impl Default for Kinds {
    fn default() -> Self {
        Kinds::builtin()
    }
}

/// Parses one object a call answered with.
pub(crate) fn one(
    o: crate::remote::Object,
    route: &crate::remote::Route,
    method: reqwest::Method,
) -> Result<(ServerObject, Secrets), ClientError> {
    // The error names the method and route; the object is "the answer" within it.
    ServerObject::parse(o, || "the answer".to_string()).map_err(|e| ClientError::Decode {
        method,
        route: route.template().to_string(),
        message: e.to_string(),
    })
}

/// GET one object by id; `None` when the server answers 404.
pub(crate) async fn read_one_at(
    client: &Client,
    template: &'static str,
    id: &ObjectId,
) -> Result<Option<ServerObject>, ClientError> {
    let route = crate::remote::Route::new(template, &[id.as_str()]);
    match client.get_one(&route).await {
        Ok(o) => one(o, &route, reqwest::Method::GET).map(|(o, _)| Some(o)),
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(e) => Err(e),
    }
}

/// GET a list route and parse its entries; one bad entry fails it.
pub(crate) async fn list_at(
    client: &Client,
    route: &crate::remote::Route,
) -> Result<Vec<ServerObject>, ClientError> {
    many(client.get_list(route).await?, route)
}

/// The objects a kind lists per account (`GET {template}?accountId=`), packed as they are
/// parsed when `keep` names the fields lookups read ([`list_packed_at`]).
pub(crate) async fn list_of_account(
    client: &Client,
    template: &'static str,
    account: &ObjectId,
    keep: Option<&[&'static str]>,
) -> Result<Vec<ServerObject>, ClientError> {
    let route = crate::remote::Route::new(template, &[]).query("accountId", account.as_str());
    match keep {
        Some(keep) => list_packed_at(client, &route, keep).await,
        None => list_at(client, &route).await,
    }
}

/// [`list_at`], each object packed ([`ServerObject::pack`]) as soon as it is parsed: the
/// whole list never exists as trees.
pub(crate) async fn list_packed_at(
    client: &Client,
    route: &crate::remote::Route,
    keep: &[&'static str],
) -> Result<Vec<ServerObject>, ClientError> {
    client
        .get_list_each(route, |i, o| {
            let mut o =
                ServerObject::parse_entry(i, o, "the list").map_err(|e| bad_entry(route, e))?;
            o.pack(keep);
            Ok(o)
        })
        .await
}

fn bad_entry(route: &crate::remote::Route, e: crate::remote::BadObject) -> ClientError {
    // The error names the method and route; the entry is placed within "the list".
    ClientError::Decode {
        method: reqwest::Method::GET,
        route: route.template().to_string(),
        message: e.to_string(),
    }
}

/// After an ambiguous create: the first listed object that `matches` and that no other
/// restaurant's state claims, i.e. what the lost attempt may have stored.
pub(crate) fn unclaimed(
    list: Vec<ServerObject>,
    matches: impl Fn(&ServerObject) -> bool,
    taken: &(dyn for<'x> Fn(&'x ObjectId) -> bool + Sync),
) -> Option<Created> {
    list.into_iter()
        .find(|o| matches(o) && !taken(&o.id))
        .map(|o| Created::from((o, Secrets::default())))
}

/// Parses a list a call answered with; one bad entry fails it.
pub(crate) fn many(
    list: Vec<crate::remote::Object>,
    route: &crate::remote::Route,
) -> Result<Vec<ServerObject>, ClientError> {
    ServerObject::parse_list(list, "the list").map_err(|e| bad_entry(route, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_puts_parents_first() {
        let kinds = Kinds::builtin();
        for k in kinds.iter() {
            if let Some(p) = k.parent().filter(|p| *p != Resource::ACCOUNT) {
                assert!(kinds.rank(p) < kinds.rank(k.resource()), "{}", k.resource());
            }
        }
        assert_eq!(kinds.children_of(Resource::AGENT).count(), 2);
    }
}
