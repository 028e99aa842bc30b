//! The controller's copy of the server, as a Kubernetes informer keeps one: filled by the full
//! resync (account, billing plans, every final customer and agent; children as restaurants
//! are reconciled), kept current by what each apply confirmed, and planned against, so that a
//! targeted reconcile costs its writes and no list read.
//!
//! Trust is conservative: a restaurant whose apply failed (error, ambiguous outcome, 404, 409)
//! has its cached objects dropped and re-read by id before it is planned again; a create whose
//! outcome is unknown (its id never learnt) makes the next plan read the lists again, since
//! only a list finds it. An id state records (CI's `apply` made it) or the platform's row
//! names that the cache lacks is read by id before planning, so nothing recorded is ever
//! planned as missing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

use crate::apply::{Outcome, Progress, Written};
use crate::model::ids::{ObjectId, RestaurantId};
use crate::model::spec::{Desired, DesiredRestaurant};
use crate::plan::{Action, Op, Plan, Resource};
use crate::refresh::{self, ChildrenRead, RefreshError, ServerView};
use crate::remote::{Client, ClientError, Created, Object, ServerObject};
use crate::resources::actual::Children;
use crate::resources::index::{Indexed, ObjectIndex};
use crate::resources::owners::Owners;
use crate::resources::{Actual, Kinds, Shape};
use crate::state::State;

/// The server as the controller last saw it.
#[derive(Default)]
pub struct Cache {
    /// Account, billing plans and one-per-restaurant objects (its `children` stay empty: the
    /// planner borrows this while `children` below is filled), with their index, kept
    /// current with them and handed to each plan.
    singles: Indexed,
    /// The lists under parents, read when a plan first needs them.
    children: BTreeMap<(Resource, ObjectId), Vec<Shared>>,
    /// One copy of each distinct body held in `children`: every restaurant's agent has the
    /// same twelve tools, so 10,000 restaurants hold twelve tool bodies, not 120,000.
    pool: HashMap<u64, Vec<Arc<Object>>>,
    /// Filled by a resync since the last invalidation.
    loaded: bool,
    /// Restaurants whose objects must be re-read by id before their next plan.
    dirty: BTreeSet<RestaurantId>,
    /// The account was just made: its billing plans (made by the server) are read before the
    /// next plan.
    plans_due: bool,
    /// State as the last batch left it, reused by the next while the backend's serial says
    /// nobody committed since ([`crate::ops::Workspace::state_reusing`]): a batch then reads
    /// one meta row, not every restaurant's state.
    state: Option<State>,
    /// The state backend can tell whether `state` is current (a database's serial); a file
    /// cannot, and no copy is kept.
    state_reusable: bool,
    /// Who state records each object for, as of one state (its lineage and serial): kept
    /// with the state copy, brought up to date with what each batch wrote.
    owners: Option<Arc<Owners>>,
}

/// An object under a parent, its fields shared with every identical one.
#[derive(Debug, Clone)]
struct Shared {
    id: ObjectId,
    fields: Arc<Object>,
}

impl Shared {
    fn object(&self) -> ServerObject {
        ServerObject::new(self.id.clone(), (*self.fields).clone())
    }
}

impl Cache {
    /// Whether a resync filled it (the next plan reads the lists first otherwise).
    pub fn loaded(&self) -> bool {
        self.loaded
    }

    /// Forgets everything: the next plan starts with the lists (unknown outcome of a create
    /// or of the account's).
    pub(crate) fn invalidate(&mut self) {
        self.loaded = false;
    }

    /// The state the last batch left, for the next to reuse if still current.
    pub(crate) fn take_state(&mut self) -> Option<State> {
        self.state.take()
    }

    /// The lineage and serial of the state the last batch kept: when the backend still stores
    /// them at the next leadership, nobody wrote since and this cache is still the server's.
    pub(crate) fn kept_serial(&self) -> Option<(uuid::Uuid, u64)> {
        self.state.as_ref().map(|s| (s.lineage, s.serial))
    }

    /// Whether the state the last batch kept holds no restaurant `rid` (`false` when no copy
    /// is kept): a change of it is a creation, queued ahead of the changes of known ones.
    pub(crate) fn is_new(&self, rid: &RestaurantId) -> bool {
        self.state
            .as_ref()
            .is_some_and(|s| !s.restaurants.contains_key(rid))
    }

    /// Keeps `state` (as a batch ends with it) for the next batch, when the backend can say
    /// whether it is still current.
    pub(crate) fn keep_state(&mut self, state: State) {
        if self.state_reusable {
            self.state = Some(state);
        }
    }

    /// State to read between batches (a rollout's gates, at every poll): the kept copy
    /// while the backend's serial says it is current, else read from `backend`. Nothing is
    /// kept from here.
    pub(crate) async fn state_to_read(
        &self,
        backend: &dyn crate::state::StateBackend,
    ) -> Result<Option<std::borrow::Cow<'_, State>>, crate::state::StateError> {
        if let Some(kept) = &self.state {
            if backend.stored_serial().await? == Some((kept.lineage, kept.serial)) {
                return Ok(Some(std::borrow::Cow::Borrowed(kept)));
            }
        }
        Ok(backend.load().await?.map(std::borrow::Cow::Owned))
    }

    /// State for a full resync: the kept copy while the backend's serial says it is current,
    /// else read, the kept copy dropped first. Never two states of every restaurant at once
    /// (a resync read a second one beside the copy the batches keep).
    pub(crate) async fn take_or_load_state(
        &mut self,
        backend: &dyn crate::state::StateBackend,
    ) -> Result<Option<State>, crate::state::StateError> {
        if let Some(kept) = self.state.take() {
            if backend.stored_serial().await? == Some((kept.lineage, kept.serial)) {
                return Ok(Some(kept));
            }
        }
        backend.load().await
    }

    /// The state a full resync just read, kept for the batches after it when the backend
    /// still stores its lineage and serial (and it names its project, as a batch's would): the
    /// first batch after a start reads no state again, and a change of a restaurant it does
    /// not hold is known at once to be an insert ([`Cache::is_new`]).
    pub(crate) async fn keep_loaded(
        &mut self,
        state: State,
        backend: &dyn crate::state::StateBackend,
    ) {
        if state.project.is_none() {
            return;
        }
        if let Ok(Some(stored)) = backend.stored_serial().await {
            if stored == (state.lineage, state.serial) {
                self.state_reusable = true;
                self.state = Some(state);
            }
        }
    }

    /// State for a batch: the kept copy while still current, else read.
    pub(crate) async fn state_for(
        &mut self,
        ws: &crate::ops::Workspace,
    ) -> Result<State, crate::ops::OpsError> {
        let (state, reusable) = ws.state_reusing(self.state.take()).await?;
        self.state_reusable = reusable;
        Ok(state)
    }

    /// Who `state` records each object for: the kept index when it is of this very state,
    /// else built (a pass over state, when another writer committed) and kept.
    pub(crate) fn owners_for(&mut self, kinds: &Kinds, state: &State) -> Arc<Owners> {
        match &self.owners {
            Some(kept) if kept.is_of(state) => kept.clone(),
            _ => {
                let built = Arc::new(Owners::of(kinds, state));
                self.owners = Some(built.clone());
                built
            }
        }
    }

    /// A batch took state from `before` (lineage, serial) to `after`, writing only the
    /// entries of `wrote` (a round writes its targets' and its plan's restaurants alone): the kept owners follow when they were of `before`, else are
    /// dropped (built again when next needed).
    pub(crate) fn state_written<'r>(
        &mut self,
        kinds: &Kinds,
        before: (uuid::Uuid, u64),
        after: &State,
        wrote: impl IntoIterator<Item = &'r RestaurantId>,
    ) {
        match &mut self.owners {
            Some(kept) if kept.version() == Some(before) => {
                Arc::make_mut(kept).follow(kinds, after, wrote);
            }
            _ => self.owners = None,
        }
    }

    /// Drops the kept owners: built again from the next batch's state.
    pub(crate) fn forget_owners(&mut self) {
        self.owners = None;
    }

    /// The full resync: the lists replace what was cached, children included (read again as
    /// restaurants are reconciled), so drift on the server is seen.
    pub async fn resync(
        &mut self,
        kinds: &Kinds,
        client: &Client,
        account_name: &str,
        state: &State,
    ) -> Result<(), RefreshError> {
        // The lists held go before the new ones are read, so that every agent is never held
        // twice (at 100,000 restaurants, a sweep's peak was both copies). Until the read
        // succeeds the cache is not loaded: the next plan reads the lists again.
        self.singles = Indexed::default();
        self.loaded = false;
        let lists =
            refresh::read_account_level(kinds, client, account_name, state, true, true).await?;
        self.singles = Indexed::new(kinds, lists);
        // Subscriptions are written by sipform alone: the cache, kept current by every write
        // apply confirms, is authoritative for them, so a sweep does not read them again (a
        // restaurant whose apply failed is re-read by id all the same).
        self.children
            .retain(|(kind, _), _| *kind == Resource::SUBSCRIPTION);
        self.pool.clear();
        self.dirty.clear();
        self.plans_due = false;
        self.loaded = true;
        self.take_embedded_lines(kinds);
        Ok(())
    }

    /// Each agent of the list carries its phone lines (`phoneLines`, in the contract): they
    /// fill the cache, so a sweep sends no phone-lines read per agent. An agent whose entry
    /// lacks them (or holds one that does not parse) has them read when planned, as before.
    fn take_embedded_lines(&mut self, kinds: &Kinds) {
        if kinds.get(Resource::PHONE_LINE).is_none() {
            return;
        }
        let mut found = Vec::new();
        for agent in self.singles.singles(Resource::AGENT) {
            let fields = agent.all_fields();
            let Some(Value::Array(lines)) = fields.get("phoneLines") else {
                continue;
            };
            let entries = lines
                .iter()
                .filter_map(|l| l.as_object().cloned())
                .collect();
            if let Ok(list) = ServerObject::parse_list(entries, "phone lines") {
                found.push((agent.id.clone(), list));
            }
        }
        for (agent, list) in found {
            let shared = list.into_iter().map(|o| self.intern(o)).collect();
            self.children.insert((Resource::PHONE_LINE, agent), shared);
        }
    }

    /// Marks `rid`'s objects stale: re-read by id before its next plan.
    pub fn forget(&mut self, rid: &RestaurantId) {
        self.dirty.insert(rid.clone());
    }

    /// Makes the cache fit to plan `targets`: the lists when not loaded; then, per restaurant,
    /// what it records or claims re-read by id when it is dirty or missing.
    pub async fn prepare(
        &mut self,
        kinds: &Kinds,
        client: &Client,
        account_name: &str,
        desired: &Desired,
        state: &State,
        targets: &BTreeSet<RestaurantId>,
    ) -> Result<(), RefreshError> {
        // An account state records that the cache has not seen (CI's `apply` made it after the
        // resync): the account-level lists are read again, or its restaurants would be planned
        // under a second account.
        let recorded = state
            .account_id
            .as_ref()
            .and_then(|a| a.to_object_id().ok());
        if recorded.is_some() && self.singles.account.as_ref().map(|a| &a.id) != recorded.as_ref() {
            self.loaded = false;
        }
        if !self.loaded {
            // Children read under objects that still exist stay valid; the lists are new.
            // Restaurants marked stale stay so: the lists do not cover what is under them.
            let children = std::mem::take(&mut self.children);
            let dirty = std::mem::take(&mut self.dirty);
            let pool = std::mem::take(&mut self.pool);
            let read = self.resync(kinds, client, account_name, state).await;
            self.children = children;
            self.dirty = dirty;
            self.pool = pool;
            read?;
        }
        self.read_plans_if_due(kinds, client).await?;
        let mut reread: BTreeSet<(Resource, ObjectId)> = BTreeSet::new();
        for rid in targets {
            let dirty = self.dirty.remove(rid);
            let mut ids: BTreeSet<(Resource, ObjectId)> = BTreeSet::new();
            if let Some(st) = state.restaurants.get(rid) {
                for k in kinds.singletons() {
                    ids.extend(k.recorded(st, "").map(|id| (k.resource(), id)));
                }
            }
            if let Some(r) = desired.restaurants.iter().find(|r| &r.id == rid) {
                ids.extend(named_by_row(kinds, r));
            }
            if dirty {
                for k in kinds.singletons() {
                    let claiming = self
                        .singles
                        .index()
                        .claimant_ids(k.resource(), rid.as_str());
                    ids.extend(claiming.iter().map(|id| (k.resource(), id.clone())));
                }
                for (r, id) in &ids {
                    self.drop_object(kinds, *r, id, None);
                }
            }
            reread.extend(ids.into_iter().filter(|(r, id)| !self.holds(*r, id)));
        }
        let reads = futures::future::try_join_all(reread.into_iter().map(|(r, id)| async move {
            let Some(kind) = kinds.get(r) else {
                return Ok::<_, ClientError>(None);
            };
            Ok(kind.read_one(client, &id).await?.map(|o| (r, o)))
        }))
        .await?;
        let account = self.singles.account.as_ref().map(|a| a.id.clone());
        for (r, o) in reads.into_iter().flatten() {
            // Another account's object (a row naming another project's agent, or the platform's
            // copy in a second account of this name) is not one to plan with, as refresh's lists
            // never hold it.
            let other = o
                .str_field("accountId")
                .is_some_and(|acc| account.as_ref().is_none_or(|ours| ours.as_str() != acc));
            if !other {
                self.add_packed(kinds, r, o);
            }
        }
        Ok(())
    }

    /// Reads what kinds read once per account (the billing plans the server makes with it)
    /// for an account just made.
    pub(crate) async fn read_plans_if_due(
        &mut self,
        kinds: &Kinds,
        client: &Client,
    ) -> Result<(), ClientError> {
        if self.plans_due {
            if let Some(account) = &self.singles.account {
                let id = account.id.clone();
                for k in kinds.iter() {
                    if let Some((r, list)) = k.account_data(client, &id).await? {
                        self.singles.set_account_data(r, list);
                    }
                }
            }
        }
        self.plans_due = false;
        Ok(())
    }

    /// Adds a one-per-restaurant object packed as the lists are read (an agent's fields as
    /// text, its lookups parsed: a tenth of the memory of the tree, which made most of an
    /// idle controller's heap at 10,000 restaurants).
    fn add_packed(&mut self, kinds: &Kinds, r: Resource, mut o: ServerObject) {
        if let Some(keep) = kinds.get(r).and_then(|k| k.lookup_fields()) {
            o.pack(keep);
        }
        self.singles.add(kinds, r, o);
    }

    fn intern(&mut self, o: ServerObject) -> Shared {
        intern(&mut self.pool, o)
    }
}

/// The ids of one-per-restaurant objects `r`'s own record names (the platform row's links).
fn named_by_row<'k>(
    kinds: &'k Kinds,
    r: &'k DesiredRestaurant,
) -> impl Iterator<Item = (Resource, ObjectId)> + 'k {
    kinds
        .singletons()
        .filter_map(move |k| k.named_by_row(r).map(|id| (k.resource(), id)))
}

/// The cache as what the server has, for `ops::plan`: a plan of a few restaurants costs no
/// list read (what the cache lacks or distrusts is read by id, children lists it lacks are
/// read once and kept).
pub(crate) struct CachedServer<'a> {
    pub cache: &'a mut Cache,
    pub client: &'a Client,
    pub account_name: &'a str,
}

impl ServerView for CachedServer<'_> {
    async fn singles(
        &mut self,
        kinds: &Kinds,
        desired: &Desired,
        state: &State,
        scope: Option<&BTreeSet<RestaurantId>>,
    ) -> Result<Actual, RefreshError> {
        let none = BTreeSet::new();
        let targets = scope.unwrap_or(&none);
        let cache = &mut *self.cache;
        cache
            .prepare(
                kinds,
                self.client,
                self.account_name,
                desired,
                state,
                targets,
            )
            .await?;
        Ok(cache.view(kinds, desired, state, targets))
    }

    fn start_children(
        &mut self,
        kinds: &Kinds,
        parents: &BTreeSet<(Resource, ObjectId)>,
    ) -> ChildrenRead {
        let mut held = Children::new();
        let mut missing = Vec::new();
        for p in parents {
            match self.cache.children.get(p) {
                Some(list) => {
                    held.insert(p.clone(), list.iter().map(Shared::object).collect());
                }
                None => missing.push(p.clone()),
            }
        }
        ChildrenRead::start(held, kinds, self.client, missing)
    }

    fn index(&self) -> Option<Arc<ObjectIndex>> {
        Some(self.cache.index())
    }

    fn owners(&mut self, kinds: &Kinds, state: &State) -> Option<Arc<Owners>> {
        Some(self.cache.owners_for(kinds, state))
    }

    async fn finish_children(&mut self, read: ChildrenRead) -> Result<Children, ClientError> {
        let (mut held, read) = read.join().await?;
        for (key, list) in read {
            let pool = &mut self.cache.pool;
            let shared = list.iter().cloned().map(|o| intern(pool, o)).collect();
            self.cache.children.insert(key.clone(), shared);
            held.insert(key, list);
        }
        Ok(held)
    }
}

/// The shared copy of `o`'s fields in `pool`.
fn intern(pool: &mut HashMap<u64, Vec<Arc<Object>>>, o: ServerObject) -> Shared {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&o.fields)
        .unwrap_or_default()
        .hash(&mut h);
    let same = pool.entry(h.finish()).or_default();
    let fields = match same.iter().find(|f| ***f == o.fields) {
        Some(f) => f.clone(),
        None => {
            let f = Arc::new(o.fields);
            same.push(f.clone());
            f
        }
    };
    Shared { id: o.id, fields }
}

impl Cache {
    /// What a plan of `targets` can look at: the account, the plans, and the objects the
    /// targets record, their rows name, claim them, carry their keys, or that those point
    /// at, found through the kept index. The planner indexes (and fingerprints) what it is
    /// given: a targeted plan then costs its restaurants, not the whole account.
    fn view(
        &self,
        kinds: &Kinds,
        desired: &Desired,
        state: &State,
        targets: &BTreeSet<RestaurantId>,
    ) -> Actual {
        if targets.is_empty() {
            return Actual::clone(&self.singles);
        }
        let index = self.singles.index();
        let mut ids: BTreeSet<(Resource, ObjectId)> = BTreeSet::new();
        for rid in targets {
            if let Some(st) = state.restaurants.get(rid) {
                for k in kinds.singletons() {
                    ids.extend(k.recorded(st, "").map(|id| (k.resource(), id)));
                }
            }
            for r in desired.restaurants.iter().filter(|r| &r.id == rid) {
                ids.extend(named_by_row(kinds, r));
                for k in kinds.singletons() {
                    for d in k.desired(r) {
                        let named = index.key_ids(k.resource(), &d.key).iter();
                        ids.extend(named.map(|id| (k.resource(), id.clone())));
                    }
                }
            }
            for k in kinds.singletons() {
                let claiming = index.claimant_ids(k.resource(), rid.as_str()).iter();
                ids.extend(claiming.map(|id| (k.resource(), id.clone())));
            }
        }
        let linked: Vec<(Resource, ObjectId)> = ids
            .iter()
            .filter_map(|(r, id)| kinds.get(*r)?.links(self.object(*r, id)?))
            .filter(|(r, _)| kinds.get(*r).is_some_and(|k| k.shape() == Shape::One))
            .collect();
        ids.extend(linked);
        let mut view = Actual {
            account: self.singles.account.clone(),
            ..Actual::default()
        };
        for k in kinds.singletons() {
            let r = k.resource();
            let mut places: Vec<usize> = ids
                .iter()
                .filter(|(kind, _)| *kind == r)
                .filter_map(|(_, id)| index.position(r, id))
                .collect();
            places.sort_unstable();
            let all = self.singles.singles(r);
            view.set_singles(r, places.iter().map(|at| all[*at].clone()).collect());
        }
        // What kinds read per account (the billing plans): whole.
        for (r, list) in self.singles.singles_by_kind() {
            if kinds.get(r).is_none_or(|k| k.shape() != Shape::One) {
                view.set_singles(r, list.to_vec());
            }
        }
        view
    }

    /// The object of kind `r` with this id, through the index.
    fn object(&self, r: Resource, id: &ObjectId) -> Option<&ServerObject> {
        let at = self.singles.index().position(r, id)?;
        self.singles.singles(r).get(at)
    }

    fn holds(&self, r: Resource, id: &ObjectId) -> bool {
        self.singles.index().holds(r, id)
    }

    /// The index of the one-per-restaurant objects it holds, for a plan.
    pub(crate) fn index(&self) -> Arc<ObjectIndex> {
        self.singles.index().clone()
    }

    /// Drops an object and the lists under it. A child is looked for in its parent's list
    /// when the parent is known, else in every list of its kind.
    fn drop_object(
        &mut self,
        kinds: &Kinds,
        r: Resource,
        id: &ObjectId,
        parent: Option<&ObjectId>,
    ) {
        if kinds.get(r).is_none_or(|k| k.shape() == Shape::One) {
            self.singles.remove(kinds, r, id);
        } else {
            for list in self.lists_of(r, parent) {
                list.retain(|o| &o.id != id);
            }
        }
        for child in kinds.children_of(r) {
            self.children.remove(&(child.resource(), id.clone()));
        }
    }

    /// The lists of kind `r` (under `parent` alone when known).
    fn lists_of(&mut self, r: Resource, parent: Option<&ObjectId>) -> Vec<&mut Vec<Shared>> {
        match parent {
            Some(p) => self.children.get_mut(&(r, p.clone())).into_iter().collect(),
            None => self
                .children
                .iter_mut()
                .filter(|((kind, _), _)| *kind == r)
                .map(|(_, list)| list)
                .collect(),
        }
    }

    /// The objects of the lists of kind `r` (under `parent` alone when known).
    fn lists_holding(
        &mut self,
        r: Resource,
        parent: Option<&ObjectId>,
    ) -> impl Iterator<Item = &mut Shared> {
        self.lists_of(r, parent).into_iter().flatten()
    }

    /// Brings the cache up to what an apply confirmed; restaurants that failed are marked
    /// for a re-read, and an unknown outcome of a create (or of the account's) drops the
    /// lists.
    pub fn applied(
        &mut self,
        kinds: &Kinds,
        plan: &Plan,
        recorder: Recorder,
        failed: &[&Outcome],
        account: Option<ObjectId>,
    ) {
        let events = recorder
            .0
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        if let Action::Create { body, .. } = &plan.account {
            // The account made now, as sent, under the id state recorded; nothing under it
            // but what this apply made. Without its id, the lists are read again.
            match account {
                Some(id) => {
                    self.singles.set_account(Some(ServerObject::new(
                        id,
                        body.value().as_object().cloned().unwrap_or_default(),
                    )));
                    self.singles.clear();
                    self.plans_due = true;
                }
                None => self.invalidate(),
            }
        }
        let mut created: BTreeMap<&RestaurantId, usize> = BTreeMap::new();
        for e in &events {
            if e.op == Op::Create {
                *created.entry(&e.restaurant).or_default() += 1;
            }
            self.follow(kinds, e);
        }
        for o in failed {
            self.forget(&o.restaurant);
            let planned = plan
                .restaurants
                .iter()
                .filter(|r| r.restaurant_id == o.restaurant)
                .flat_map(|r| &r.actions)
                .filter(|a| matches!(a, Action::Create { .. }))
                .count();
            if created.get(&o.restaurant).copied().unwrap_or(0) < planned {
                self.invalidate();
            }
        }
    }

    /// One confirmed write: a create adds the server's answer, an update merges what was
    /// sent (write-only keys left out), a delete removes the object and what is under it.
    fn follow(&mut self, kinds: &Kinds, e: &Event) {
        let Some(kind) = kinds.get(e.resource) else {
            return;
        };
        match e.op {
            Op::Create => {
                let Some(o) = e.object.clone() else { return };
                // A new parent's lists are empty but for what this apply creates in them.
                for child in kinds.children_of(e.resource) {
                    self.children
                        .insert((child.resource(), o.id.clone()), Vec::new());
                }
                match (kind.shape(), &e.parent) {
                    (Shape::Many, Some(p)) => {
                        if self.children.contains_key(&(e.resource, p.clone())) {
                            let o = self.intern(o);
                            if let Some(list) = self.children.get_mut(&(e.resource, p.clone())) {
                                list.push(o);
                            }
                        }
                    }
                    (Shape::Many, None) => {}
                    (Shape::One, _) => self.add_packed(kinds, e.resource, o),
                }
            }
            Op::Update => {
                let Some(Value::Object(body)) = &e.body else {
                    return;
                };
                let merge = |fields: &mut Object| {
                    for (k, v) in body {
                        if !kind.write_only().contains(&k.as_str()) {
                            fields.insert(k.clone(), v.clone());
                        }
                    }
                };
                if kind.shape() == Shape::One {
                    let keep = kind.lookup_fields();
                    self.singles.update(kinds, &e.id, |o: &mut ServerObject| {
                        o.update_fields(keep, merge)
                    });
                    return;
                }
                for o in self.lists_holding(e.resource, e.parent.as_ref()) {
                    if o.id == e.id {
                        merge(Arc::make_mut(&mut o.fields));
                    }
                }
            }
            Op::Delete => self.drop_object(kinds, e.resource, &e.id, e.parent.as_ref()),
            Op::Adopt | Op::NoOp => {}
        }
    }
}

/// A confirmed write, owned.
struct Event {
    restaurant: RestaurantId,
    resource: Resource,
    parent: Option<ObjectId>,
    op: Op,
    id: ObjectId,
    object: Option<ServerObject>,
    body: Option<Value>,
}

/// Collects what an apply confirmed, for [`Cache::applied`].
#[derive(Default)]
pub struct Recorder(Mutex<Vec<Event>>);

impl Progress for Recorder {
    fn action_done(&self) {}
    fn restaurant_done(&self, _: &Outcome) {}
    fn written(&self, w: &Written<'_>) {
        let e = Event {
            restaurant: w.restaurant.clone(),
            resource: w.resource,
            parent: w.parent.cloned(),
            op: w.op,
            id: w.id.clone(),
            // A create's answer parsed here, not in apply: the controller reads it, a batch
            // apply never does. One that does not parse leaves the object unknown.
            object: w.object.and_then(Created::object),
            body: w.body.cloned(),
        };
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(s: &str) -> ObjectId {
        ObjectId::parse(s).expect("valid id")
    }

    fn obj(i: &str, v: Value) -> ServerObject {
        ServerObject::new(id(i), v.as_object().cloned().unwrap_or_default())
    }

    fn event(op: Op, resource: Resource, i: &str, parent: Option<&str>) -> Event {
        Event {
            restaurant: RestaurantId::new("r1"),
            resource,
            parent: parent.map(id),
            op,
            id: id(i),
            object: None,
            body: None,
        }
    }

    /// Creates add the server's answer (a new agent's lists start empty and take its tools);
    /// updates merge what was sent but never a write-only key; deletes drop the object and
    /// the lists under it.
    #[test]
    fn the_cache_follows_confirmed_writes() {
        let kinds = Kinds::builtin();
        let mut c = Cache::default();
        let mut agent = event(Op::Create, Resource::AGENT, "a1", None);
        agent.object = Some(obj("a1", json!({"name": "Chez A"})));
        c.follow(&kinds, &agent);
        let mut tool = event(Op::Create, Resource::TOOL, "t1", Some("a1"));
        tool.object = Some(obj("t1", json!({"name": "end_call"})));
        c.follow(&kinds, &tool);
        assert!(c.holds(Resource::AGENT, &id("a1")));
        assert_eq!(c.children[&(Resource::TOOL, id("a1"))].len(), 1);
        assert!(
            c.children
                .get(&(Resource::PHONE_LINE, id("a1")))
                .is_some_and(Vec::is_empty),
            "a new agent has no phone line but what this apply made"
        );

        // A tool created under a parent whose list was never read is not invented.
        let mut stray = event(Op::Create, Resource::TOOL, "t2", Some("a9"));
        stray.object = Some(obj("t2", json!({"name": "x"})));
        c.follow(&kinds, &stray);
        assert!(!c.children.contains_key(&(Resource::TOOL, id("a9"))));

        let mut rename = event(Op::Update, Resource::AGENT, "a1", None);
        rename.body = Some(json!({"name": "Chez B"}));
        c.follow(&kinds, &rename);
        let a = &c.singles.singles(Resource::AGENT)[0];
        assert!(a.is_packed(), "agents are held packed");
        assert_eq!(a.name(), Some("Chez B"));
        assert_eq!(a.all_fields()["name"], "Chez B");

        let mut line = event(Op::Create, Resource::PHONE_LINE, "p1", Some("a1"));
        line.object = Some(obj("p1", json!({"phoneNumber": "+331"})));
        c.follow(&kinds, &line);
        let mut pw = event(Op::Update, Resource::PHONE_LINE, "p1", Some("a1"));
        pw.body = Some(json!({"sipPassword": "s3cret", "phoneNumber": "+332"}));
        c.follow(&kinds, &pw);
        let p = &c.children[&(Resource::PHONE_LINE, id("a1"))][0];
        assert_eq!(p.fields["phoneNumber"], "+332");
        assert!(!p.fields.contains_key("sipPassword"), "no secret is cached");

        c.follow(&kinds, &event(Op::Delete, Resource::AGENT, "a1", None));
        assert!(!c.holds(Resource::AGENT, &id("a1")));
        assert!(c.children.keys().all(|(_, parent)| parent != &id("a1")));
    }

    /// The index the cache keeps through confirmed writes (agents created, renamed, moved to
    /// another restaurant and final customer, deleted) and a resync replacing the lists is
    /// the one built afresh over what it holds; the view of one restaurant finds its objects
    /// through it.
    #[test]
    fn the_kept_index_follows_writes_and_resyncs() {
        let kinds = Kinds::builtin();
        let mut c = Cache::default();
        let fresh = |c: &Cache| ObjectIndex::of(&kinds, &c.singles);
        let agent = |i: &str, r: &str, name: &str, fc: &str| {
            let mut e = event(Op::Create, Resource::AGENT, i, None);
            e.object = Some(obj(
                i,
                json!({"name": name, "config": {"restaurantId": r}, "finalCustomerId": fc}),
            ));
            e
        };
        let mut fc = event(Op::Create, Resource::FINAL_CUSTOMER, "f1", None);
        fc.object = Some(obj("f1", json!({"name": "Chez A"})));
        for e in [
            fc,
            agent("a1", "r1", "Chez A", "f1"),
            agent("a2", "r2", "Chez B", "f1"),
            agent("a3", "r1", "Chez C", "f9"),
        ] {
            c.follow(&kinds, &e);
            assert_eq!(**c.singles.index(), fresh(&c));
        }
        let mut moved = event(Op::Update, Resource::AGENT, "a1", None);
        moved.body = Some(json!({"name": "Chez Z", "config": {"restaurantId": "r3"}}));
        c.follow(&kinds, &moved);
        assert_eq!(**c.singles.index(), fresh(&c));
        let r3: Vec<&str> = c
            .singles
            .index()
            .claimant_ids(Resource::AGENT, "r3")
            .iter()
            .map(ObjectId::as_str)
            .collect();
        assert_eq!(r3, ["a1"]);
        c.follow(&kinds, &event(Op::Delete, Resource::AGENT, "a2", None));
        assert_eq!(**c.singles.index(), fresh(&c));
        assert!(!c.singles.index().holds(Resource::AGENT, &id("a2")));

        // A resync's lists (what `resync` installs), then more writes.
        let mut lists = Actual::default();
        lists.add_single(
            Resource::AGENT,
            obj("a7", json!({"config": {"restaurantId": "r1"}})),
        );
        lists.add_single(Resource::AGENT, obj("a7", json!({"name": "listed twice"})));
        c.singles = Indexed::new(&kinds, lists);
        c.follow(&kinds, &agent("a8", "r1", "Chez A", "f1"));
        assert_eq!(**c.singles.index(), fresh(&c));
        assert_eq!(
            c.singles.singles(Resource::AGENT).len(),
            2,
            "an id listed twice is kept once"
        );

        // The view of r1 holds the agents claiming it, found through the index.
        let r1: BTreeSet<RestaurantId> = [RestaurantId::new("r1")].into();
        let desired = Desired {
            account: crate::model::spec::AccountSpec {
                name: "A".into(),
                email: "a@example.com".into(),
            },
            restaurants: Vec::new(),
            held: BTreeSet::new(),
            hold_all: false,
        };
        let view = c.view(&kinds, &desired, &State::default(), &r1);
        let ids: Vec<&str> = view
            .singles(Resource::AGENT)
            .iter()
            .map(|o| o.id.as_str())
            .collect();
        assert_eq!(ids, ["a7", "a8"]);
    }

    /// A backend storing `stored` (lineage, serial) whose loads are counted.
    struct Stored {
        stored: (uuid::Uuid, u64),
        loads: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl crate::state::StateBackend for Stored {
        fn describe(&self) -> String {
            "test".into()
        }
        async fn lock(
            &self,
            _: &crate::state::backend::LockInfo,
            _: std::time::Duration,
        ) -> Result<Box<dyn crate::state::backend::LockGuard>, crate::state::StateError> {
            unreachable!("no lock here")
        }
        async fn load(&self) -> Result<Option<State>, crate::state::StateError> {
            self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut s = State::new();
            (s.lineage, s.serial) = self.stored;
            Ok(Some(s))
        }
        async fn commit(
            &self,
            _: &State,
            _: &[crate::state::Change],
        ) -> Result<(), crate::state::StateError> {
            Ok(())
        }
        async fn stored_serial(
            &self,
        ) -> Result<Option<(uuid::Uuid, u64)>, crate::state::StateError> {
            Ok(Some(self.stored))
        }
    }

    #[tokio::test]
    async fn a_resync_reuses_the_kept_state_while_current_and_never_holds_two() {
        let mut kept = State::new();
        kept.serial = 7;
        kept.restaurants.insert(
            RestaurantId::new("r1"),
            crate::state::RestaurantState::default(),
        );
        let backend = Stored {
            stored: (kept.lineage, 7),
            loads: Default::default(),
        };
        let mut cache = Cache {
            state: Some(kept.clone()),
            state_reusable: true,
            ..Cache::default()
        };
        let got = cache.take_or_load_state(&backend).await.expect("read");
        assert_eq!(got, Some(kept.clone()), "the kept copy, not a load");
        assert_eq!(backend.loads.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert!(cache.state.is_none(), "handed over, not copied");
        // Someone committed since: the kept copy goes, the stored state is read.
        let backend = Stored {
            stored: (kept.lineage, 8),
            loads: Default::default(),
        };
        cache.state = Some(kept);
        let got = cache.take_or_load_state(&backend).await.expect("read");
        assert_eq!(got.map(|s| s.serial), Some(8));
        assert_eq!(backend.loads.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(cache.state.is_none());
    }

    /// Identical bodies under different parents are held once.
    #[test]
    fn identical_children_share_one_body() {
        let mut c = Cache::default();
        let a = c.intern(obj("t1", json!({"name": "end_call", "x": [1, 2]})));
        let b = c.intern(obj("t2", json!({"name": "end_call", "x": [1, 2]})));
        let other = c.intern(obj("t3", json!({"name": "leave_message"})));
        assert!(Arc::ptr_eq(&a.fields, &b.fields));
        assert!(!Arc::ptr_eq(&a.fields, &other.fields));
        assert_eq!(b.object().id, id("t2"));
    }

    /// The recorder keeps what apply reports, owned, for after the apply.
    #[test]
    fn the_recorder_keeps_every_write() {
        let r = Recorder::default();
        let rid = RestaurantId::new("r1");
        let a = id("a1");
        let body = json!({"name": "n"});
        r.written(&Written {
            restaurant: &rid,
            resource: Resource::AGENT,
            parent: None,
            op: Op::Update,
            id: &a,
            object: None,
            body: Some(&body),
        });
        // A create's answer, kept as text by apply, is parsed here, without its token.
        let answer = json!({"id": "a2", "name": "Chez A", "apiToken": "tok"});
        let created = Created::parse(answer.to_string().into_bytes()).expect("valid");
        r.written(&Written {
            restaurant: &rid,
            resource: Resource::AGENT,
            parent: None,
            op: Op::Create,
            id: &created.id,
            object: Some(&created),
            body: None,
        });
        let events = r.0.into_inner().expect("not poisoned");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].body.as_ref(), Some(&body));
        assert_eq!(events[0].restaurant, rid);
        let o = events[1].object.as_ref().expect("the answer's object");
        assert_eq!(o.id, id("a2"));
        assert_eq!(
            o.fields,
            *json!({"name": "Chez A"}).as_object().expect("object")
        );
    }
}
