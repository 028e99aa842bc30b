//! diff: desired vs actual, object by object and field by field, into a [`Plan`].
//!
//! Pure: no I/O, no HTTP types; tests call it directly. It walks the resource kinds in their
//! declared order. Matching, in order of trust: the id in state; then the kind's adoption rule
//! (an agent by `config.restaurantId`, its final customer by the agent's `finalCustomerId` or
//! by name and email, a tool by name); then create. Only the keys sipform sets are compared,
//! absent equals null, and numbers compare by value, so `apply` then `plan` is empty.
//! An object that claims another restaurant of the inventory or state (an agent's
//! `config.restaurantId`, or an agent linking to a final customer) is never taken, whether
//! state, the platform's row or adoption offers it: that restaurant is skipped with an error.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value};

use crate::compare::diff_value;
use crate::model::ids::{ObjectId, RestaurantId};
use crate::model::spec::{Desired, DesiredRestaurant};
use crate::plan::{
    Action, Body, Duplicates, FieldChange, Op, Plan, Reason, RestaurantPlan, Summary,
    PLAN_FORMAT_VERSION,
};
use crate::remote::ServerObject;
use crate::resources::actual::list_digest;
use crate::resources::index::ObjectIndex;
use crate::resources::{account, Actual, AdoptCx, Adoption, Index, Kind, Kinds, Resource, Shape};
use crate::state::{RestaurantState, State};

/// Choices that shape a plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Delete the objects of restaurants gone from the inventory.
    pub allow_destroy: bool,
    /// Replace objects the server cannot update (a subscription to another plan).
    pub allow_replace: bool,
    /// Restaurants to consider; empty means all.
    pub targets: BTreeSet<RestaurantId>,
    /// Leave out restaurants with nothing to do and nothing to say (their objects all
    /// unchanged): for a plan that is only printed for people, which never shows them. A plan
    /// that is saved or printed as JSON keeps them (it lists every object, as Terraform's
    /// does); at 10,000 restaurants they were 40 MB of no-op actions.
    pub only_changes: bool,
    /// `--allow-rollback`: restaurants recorded at a newer commit may go back (see `ops`).
    pub allow_rollback: bool,
    /// `--allow-dirty`: uncommitted changes may go over restaurants recorded at a commit.
    pub allow_dirty: bool,
    /// `--ignore-windows`: change windows and live calls hold nothing (see `ops::hold`).
    pub ignore_windows: bool,
}

impl PlanOptions {
    fn in_scope(&self, r: &RestaurantId) -> bool {
        self.targets.is_empty() || self.targets.contains(r)
    }
}

/// Builds the plan over `kinds`, from an [`Actual`] that holds every object read.
pub fn plan_with(
    kinds: &Kinds,
    desired: &Desired,
    actual: &Actual,
    state: &State,
    opts: &PlanOptions,
) -> Plan {
    let mut planner = Planner::new(kinds, desired, actual, Lookups::default(), state, opts);
    while let Some(batch) = planner.next_batch(usize::MAX) {
        planner.plan_batch(batch, &actual.children);
    }
    planner.finish()
}

pub(crate) use crate::resources::actual::Children;
pub use crate::resources::owners::Owners;

/// Lookups a plan may be given instead of building them: the controller's cache keeps both
/// over everything it holds, so that a plan of one restaurant costs its objects, not a pass
/// over the whole account and state. `None`: the plan builds its own, once.
#[derive(Default, Clone, Copy)]
pub struct Lookups<'a> {
    /// Covers the plan's `actual` or more.
    pub index: Option<&'a ObjectIndex>,
    /// Of the very state planned from ([`Owners::is_of`]).
    pub owners: Option<&'a Owners>,
}

/// Restaurants to plan next, and the children lists they need (child kind, parent id).
pub struct Batch {
    range: std::ops::Range<usize>,
    pub parents: BTreeSet<(Resource, ObjectId)>,
}

/// A plan built a batch of restaurants at a time, so that the objects under each parent
/// (twelve tools per agent) are read, compared and dropped batch by batch instead of all
/// being held at once: memory stays flat in the number of restaurants. [`plan_with`] is the
/// same over one batch.
pub(crate) struct Planner<'a> {
    cx: Cx<'a>,
    desired: &'a Desired,
    actual: &'a Actual,
    state: &'a State,
    opts: &'a PlanOptions,
    /// The next restaurant of `desired` to plan.
    next: usize,
    restaurants: Vec<RestaurantPlan>,
    /// One digest per children list compared, for the plan's fingerprint.
    digests: BTreeMap<(Resource, ObjectId), u64>,
    /// What no duplicate can be besides what state records: what the platform's rows name.
    rows_name: HashSet<ObjectId>,
    /// The duplicates found so far, settled by [`Planner::finish`].
    duplicates: Vec<Duplicates>,
}

impl<'a> Planner<'a> {
    /// `actual` needs no children: [`Planner::plan_batch`] is given them. The lookups given
    /// (see [`Lookups`]) are used as they are; the others are built over `actual` and `state`.
    pub fn new(
        kinds: &'a Kinds,
        desired: &'a Desired,
        actual: &'a Actual,
        given: Lookups<'a>,
        state: &'a State,
        opts: &'a PlanOptions,
    ) -> Self {
        let index = match given.index {
            Some(kept) => Index::with(kinds, actual, kept),
            None => Index::new(kinds, actual),
        };
        let owners = match given.owners.filter(|o| o.is_of(state)) {
            Some(kept) => Cow::Borrowed(kept),
            None => Cow::Owned(Owners::of(kinds, state)),
        };
        let mut cx = Cx::new(kinds, actual, index, owners, state);
        cx.inventory = desired
            .restaurants
            .iter()
            .map(|r| r.id.as_str())
            .chain(desired.held.iter().map(RestaurantId::as_str))
            .collect();
        cx.allow_replace = opts.allow_replace;
        Planner {
            cx,
            desired,
            actual,
            state,
            opts,
            next: 0,
            restaurants: Vec::new(),
            digests: BTreeMap::new(),
            rows_name: duplicates::named_by_rows(kinds, desired, state),
            duplicates: Vec::new(),
        }
    }

    /// The next (at most) `n` restaurants, and the parents whose children they need; `None`
    /// once every restaurant is planned.
    pub(crate) fn next_batch(&mut self, n: usize) -> Option<Batch> {
        let all = &self.desired.restaurants;
        if self.next >= all.len() {
            return None;
        }
        let range = self.next..self.next.saturating_add(n).min(all.len());
        self.next = range.end;
        let parents = self.parents_of(range.clone());
        Some(Batch { range, parents })
    }

    /// The children lists a batch needs now that every restaurant before it is planned, and
    /// those of them it did not name: a batch whose lists were read ahead, while the batch
    /// before it was planned, may need one more (when that batch adopted the object this one
    /// would have matched). Usually none.
    pub(crate) fn recheck(&self, batch: &mut Batch) -> Vec<(Resource, ObjectId)> {
        let now = self.parents_of(batch.range.clone());
        let missing = now.difference(&batch.parents).cloned().collect();
        batch.parents = now;
        missing
    }

    /// The parents whose children the restaurants of `range` need, matched as their plan will
    /// match them; what the matching adopts is given back.
    fn parents_of(&self, range: std::ops::Range<usize>) -> BTreeSet<(Resource, ObjectId)> {
        let mut parents = BTreeSet::new();
        *self.cx.trial.borrow_mut() = Some(Vec::new());
        for r in self.desired.restaurants[range]
            .iter()
            .filter(|r| self.opts.in_scope(&r.id))
        {
            parents.extend(self.cx.parents(r, self.state.restaurants.get(&r.id)));
            parents.extend(duplicates::parents(&self.claimants(r), &|id| {
                self.protected(id)
            }));
        }
        let adopted = self.cx.trial.borrow_mut().take().unwrap_or_default();
        let mut taken = self.cx.taken.borrow_mut();
        for id in adopted {
            taken.remove(&id);
        }
        parents
    }

    /// Whether no dedupe may touch `id`: state records it, or a platform row names it.
    fn protected(&self, id: &ObjectId) -> bool {
        self.cx.owners.records(id) || self.rows_name.contains(id)
    }

    /// The agents claiming restaurant `r` (their `config.restaurantId`).
    fn claimants(&self, r: &'a DesiredRestaurant) -> Vec<&'a ServerObject> {
        self.cx.index.claimants(Resource::AGENT, r.id.as_str())
    }

    /// Plans the batch's restaurants against `children` (at least the lists it names).
    pub(crate) fn plan_batch(&mut self, batch: Batch, children: &Children) {
        for key in &batch.parents {
            if let Some(list) = children.get(key) {
                self.digests.insert(key.clone(), list_digest(list));
            }
        }
        for r in &self.desired.restaurants[batch.range] {
            if !self.opts.in_scope(&r.id) {
                continue;
            }
            let rp = self
                .cx
                .restaurant(r, self.state.restaurants.get(&r.id), children);
            let protected = |id: &ObjectId| self.protected(id);
            let found = duplicates::of_restaurant(r, &self.claimants(r), &protected, &rp, children);
            self.duplicates.extend(found);
            // Leaving an unchanged restaurant out loses no protection from duplicates: a
            // no-op's object is one state records, which `protected` holds already.
            let unchanged = rp.notes.is_empty() && rp.actions.iter().all(|a| a.op() == Op::NoOp);
            if (self.opts.only_changes && unchanged) || rp.actions.is_empty() && rp.notes.is_empty()
            {
                continue;
            }
            self.restaurants.push(rp);
        }
    }

    /// The plan: the account, the restaurants planned, then those gone from the inventory.
    pub fn finish(mut self) -> Plan {
        let (desired, state, opts) = (self.desired, self.state, self.opts);
        let recorded_account = state
            .account_id
            .as_ref()
            .and_then(|i| i.to_object_id().ok());
        let account = account::action(
            &desired.account,
            self.actual.account.as_ref(),
            recorded_account.as_ref(),
        );
        let desired_ids: HashSet<&RestaurantId> =
            desired.restaurants.iter().map(|r| &r.id).collect();
        // A targeted plan looks at its targets' entries only, not every restaurant of state.
        let in_state: Box<dyn Iterator<Item = (&RestaurantId, &RestaurantState)>> =
            if opts.targets.is_empty() {
                Box::new(state.restaurants.iter())
            } else {
                Box::new(
                    opts.targets
                        .iter()
                        .filter_map(|t| state.restaurants.get_key_value(t)),
                )
            };
        for (rid, st) in in_state {
            // A restaurant skipped for invalid input is still in the inventory: never "gone".
            if desired_ids.contains(rid) || desired.holds(rid) || !opts.in_scope(rid) {
                continue;
            }
            self.restaurants
                .push(self.cx.gone(rid, st, opts.allow_destroy));
        }
        let restaurants = self.restaurants;
        let duplicates = duplicates::settle(self.duplicates, &restaurants);
        // Account-wide: only a plan of every restaurant, whose ids are all known, can tell.
        let orphans = if opts.targets.is_empty() && !desired.hold_all {
            let recorded = |id: &ObjectId| self.cx.owners.records(id);
            let known = |r: &str| self.cx.known(r);
            orphans::find(self.cx.kinds, self.actual, &known, &recorded)
        } else {
            Vec::new()
        };
        let summary = Summary::of(
            std::iter::once(&account).chain(restaurants.iter().flat_map(|r| r.actions.iter())),
        );
        Plan {
            format_version: PLAN_FORMAT_VERSION,
            sipform_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at: chrono::Utc::now(),
            // Named by whoever read the server (`ops`): diff never sees where it was.
            server_url: String::new(),
            lineage: state.lineage,
            state_serial: state.serial,
            remote_fingerprint: self.actual.fingerprint_with(&self.digests),
            duplicates,
            orphans,
            targets: opts.targets.iter().cloned().collect(),
            allow_destroy: opts.allow_destroy,
            account,
            restaurants,
            summary,
            // Said by `ops`, which knows the configuration's revision: diff compares objects.
            revision: None,
            allow_rollback: opts.allow_rollback,
            allow_dirty: opts.allow_dirty,
            revision_notes: Vec::new(),
            guardrails: Vec::new(),
            ignore_windows: opts.ignore_windows,
            holds: Vec::new(),
        }
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
    owners: Cow<'a, Owners>,
    state: &'a State,
    /// The restaurants of the inventory (held ones too). With state's, the known
    /// restaurants: an object that claims one of them is never another restaurant's (issue
    /// 25, item 2).
    inventory: HashSet<&'a str>,
    /// Ids adopted earlier in this plan, by restaurant: never adopted twice.
    taken: RefCell<HashMap<ObjectId, RestaurantId>>,
    /// While a batch's parents are looked up ahead of its plan: the ids adopted meanwhile,
    /// given back afterwards so that the plan itself judges adoption as if in one pass.
    trial: RefCell<Option<Vec<ObjectId>>>,
    /// See [`PlanOptions::allow_replace`].
    allow_replace: bool,
    /// The one-per-restaurant objects by kind and id, by the restaurant they claim, by what
    /// links to them: a lookup per restaurant, not a scan of every object (which made a plan
    /// quadratic in the number of restaurants).
    index: Index<'a>,
    /// Bodies shared between restaurants.
    shared: Shared,
}

/// The bodies that restaurants share: the same tool wanted by 10,000 restaurants is one body
/// in the plan, not 10,000 copies. Keyed by kind and name, it keeps the last body seen; a
/// body equal to it is the same [`Body`]. A one-per-restaurant kind's body (an agent's) is
/// its restaurant's own: packed as text, never kept here.
#[derive(Default)]
struct Shared {
    creates: RefCell<HashMap<Resource, HashMap<String, Body>>>,
    updates: RefCell<HashMap<Resource, HashMap<String, Body>>>,
}

impl Shared {
    /// The body of a create of `desired`.
    fn create(&self, k: &dyn Kind, name: &str, desired: &Value) -> Body {
        Self::share(&self.creates, k, name, desired)
    }

    /// The body of a whole-object update to `desired`.
    fn update(&self, k: &dyn Kind, name: &str, desired: &Value) -> Body {
        Self::share(&self.updates, k, name, desired)
    }

    fn share(
        bodies: &RefCell<HashMap<Resource, HashMap<String, Body>>>,
        k: &dyn Kind,
        name: &str,
        desired: &Value,
    ) -> Body {
        if k.shape() == Shape::One {
            return Body::packed(desired);
        }
        let mut bodies = bodies.borrow_mut();
        let of_kind = bodies.entry(k.resource()).or_default();
        match of_kind.get(name) {
            Some(b) if *b.value() == *desired => b.clone(),
            _ => {
                let b = Body::shared(desired.clone());
                of_kind.insert(name.to_string(), b.clone());
                b
            }
        }
    }
}

impl<'a> Cx<'a> {
    fn new(
        kinds: &'a Kinds,
        actual: &'a Actual,
        index: Index<'a>,
        owners: Cow<'a, Owners>,
        state: &'a State,
    ) -> Self {
        Cx {
            kinds,
            actual,
            account_exists: actual.account.is_some(),
            owners,
            state,
            inventory: HashSet::new(),
            taken: RefCell::new(HashMap::new()),
            trial: RefCell::new(None),
            allow_replace: false,
            index,
            shared: Shared::default(),
        }
    }

    /// Whether `r` is a restaurant of the inventory or of state.
    fn known(&self, r: &str) -> bool {
        self.inventory.contains(r) || self.state.restaurants.contains_key(&RestaurantId::new(r))
    }

    fn free_for(&self, id: &ObjectId, r: &RestaurantId) -> bool {
        !self.owners.records_for_other(id, r)
            && self.taken.borrow().get(id).is_none_or(|owner| owner == r)
    }

    /// The object state records for a one-per-restaurant kind, if it still exists.
    fn recorded(&self, k: &dyn Kind, st: Option<&RestaurantState>) -> Option<&'a ServerObject> {
        let id = k.recorded(st?, "")?;
        self.index.by_id(k.resource(), &id)
    }

    /// Matches this restaurant's one-per-restaurant objects, children first: a child names
    /// its parent (the agent its final customer). Returns what was found and the notes, or
    /// the error that skips the restaurant: an object state, the platform's row or adoption
    /// gives it that belongs to another restaurant.
    fn matches(
        &self,
        singles: &[&dyn Kind],
        r: &DesiredRestaurant,
        st: Option<&RestaurantState>,
    ) -> Result<(HashMap<Resource, Found<'a>>, Vec<String>), String> {
        let mut notes = Vec::new();
        let mut matched: HashMap<Resource, &'a ServerObject> = HashMap::new();
        let mut found: HashMap<Resource, Found<'a>> = HashMap::new();
        if !self.account_exists {
            return Ok((found, notes));
        }
        for k in singles.iter().rev() {
            let f = match self.recorded(*k, st) {
                Some(obj) => {
                    self.check_owner(*k, obj, &r.id, "state records")?;
                    Some(Found { obj, adopted: None })
                }
                None => {
                    if let Some(obj) = k
                        .named_by_row(r)
                        .and_then(|id| self.index.by_id(k.resource(), &id))
                    {
                        self.check_owner(*k, obj, &r.id, "the platform's row names")?;
                    }
                    let free = |id: &ObjectId| self.free_for(id, &r.id);
                    let desired = k.desired(r).into_iter().next().map(|d| d.body);
                    let null = Value::Null;
                    let adoption: Adoption<'a> = k.adopt(&AdoptCx {
                        restaurant: &r.id,
                        wanted: r,
                        desired: desired.as_ref().unwrap_or(&null),
                        actual: self.actual,
                        index: &self.index,
                        matched: &matched,
                        free: &free,
                    });
                    notes.extend(adoption.note);
                    if let Some((obj, _)) = adoption.found {
                        self.check_owner(*k, obj, &r.id, "adoption found")?;
                    }
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
                        if let Some(trial) = self.trial.borrow_mut().as_mut() {
                            trial.push(f.obj.id.clone());
                        }
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
        Ok((found, notes))
    }

    /// Refuses an object for restaurant `r` that claims another restaurant of the inventory
    /// or state (an agent's `config.restaurantId`, or that of an agent linking to it): taking
    /// it would rewrite the other restaurant's object. An error naming both.
    fn check_owner(
        &self,
        k: &dyn Kind,
        obj: &ServerObject,
        r: &RestaurantId,
        how: &str,
    ) -> Result<(), String> {
        let other = k
            .claims(obj)
            .into_iter()
            .chain(self.index.linkers_claim(k.resource(), &obj.id))
            .find(|c| *c != r.as_str() && self.known(c));
        match other {
            None => Ok(()),
            Some(other) => Err(format!(
                "error: {how} {} {} for restaurant {r}, but it belongs to restaurant {other} (its config.restaurantId): restaurant {r} is skipped, nothing of it is planned, until its state or platform row is corrected",
                k.resource().label(),
                obj.id,
            )),
        }
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
                .index
                .claimants(k.resource(), r.as_str())
                .iter()
                .filter(|o| Some(&o.id) != managed && !self.owners.records(&o.id))
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

    /// The children lists restaurant `r`'s plan reads: (child kind, id of its parent object).
    fn parents(
        &self,
        r: &DesiredRestaurant,
        st: Option<&RestaurantState>,
    ) -> Vec<(Resource, ObjectId)> {
        let singles: Vec<&dyn Kind> = self.kinds.singletons().collect();
        // Matching again in `restaurant` finds the same: what it adopts is kept for `r`.
        let Ok((found, _)) = self.matches(&singles, r, st) else {
            return Vec::new();
        };
        self.kinds
            .iter()
            .filter(|k| k.shape() == crate::resources::Shape::Many)
            .filter_map(|k| {
                let parent = found.get(&k.parent()?)?;
                Some((k.resource(), parent.obj.id.clone()))
            })
            .collect()
    }

    fn restaurant(
        &self,
        r: &DesiredRestaurant,
        st: Option<&RestaurantState>,
        children: &Children,
    ) -> RestaurantPlan {
        let singles: Vec<&dyn Kind> = self.kinds.singletons().collect();
        let (found, notes) = match self.matches(&singles, r, st) {
            Ok(m) => m,
            Err(e) => {
                return RestaurantPlan {
                    restaurant_id: r.id.clone(),
                    name: r.agent.name.clone(),
                    actions: Vec::new(),
                    notes: vec![e],
                }
            }
        };

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
                    &self.shared,
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
            let read = parent.and_then(|p| children.get(&(k.resource(), p.obj.id.clone())));
            actions.extend(self.children(k, r, st, parent, read, &mut notes));
        }
        // Held until the plan is done with: no spare capacity (half again the actions, at
        // 10,000 restaurants 15 MB).
        actions.shrink_to_fit();
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
        read: Option<&Vec<ServerObject>>,
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
                .flat_map(|d| object_actions(&self.shared, k, &d.key, None, &d.body, Vec::new()))
                .collect();
        };
        let server = match read {
            Some(s) => s.as_slice(),
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
            actions.extend(object_actions(
                &self.shared,
                k,
                &d.key,
                f.as_ref(),
                &d.body,
                hidden,
            ));
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
                        reason: Reason::NotDeclared(
                            format!("{} (replaced, --allow-replace)", k.declared_in()).into(),
                        ),
                    });
                    out.push(Action::Create {
                        resource,
                        name,
                        body,
                        write_only: write_only(k),
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
                            .join(" and ")
                            .into(),
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
                Reason::DuplicateOf(Box::new((
                    k.resource().label().to_string(),
                    name.to_string(),
                )))
            } else {
                Reason::NotDeclared(k.declared_in().into())
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

/// The kind's write-only keys, as a create names them.
fn write_only(k: &dyn Kind) -> Box<[String]> {
    k.write_only().iter().map(|p| p.to_string()).collect()
}

/// A create of `desired`, its body shared with the restaurants that want the same.
fn create(shared: &Shared, k: &dyn Kind, name: &str, desired: &Value) -> Action {
    Action::Create {
        resource: k.resource(),
        name: name.to_string(),
        body: shared.create(k, name, desired),
        write_only: write_only(k),
    }
}

/// The PUT body: the whole object, or the changed top-level keys (the agent's `config` is one
/// key, so it always goes whole).
fn update_body(
    shared: &Shared,
    k: &dyn Kind,
    name: &str,
    desired: &Value,
    changes: &[FieldChange],
) -> Body {
    if k.update_whole() {
        return shared.update(k, name, desired);
    }
    let empty = Map::new();
    let dmap = desired.as_object().unwrap_or(&empty);
    let top: BTreeSet<&str> = changes
        .iter()
        .map(|c| c.path.split('.').next().unwrap_or(""))
        .collect();
    Body::packed(&Value::Object(
        top.into_iter()
            .filter_map(|key| Some((key.to_string(), dmap.get(key)?.clone())))
            .collect(),
    ))
}

/// Create, or adopt and/or update, or no-op, for one object. The kind's write-only keys
/// ([`Kind::write_only`]) are not compared (the server never returns them): `hidden` holds
/// their changes, and a create shows them as sensitive, without a value.
fn object_actions(
    shared: &Shared,
    k: &dyn Kind,
    name: &str,
    found: Option<&Found<'_>>,
    desired: &Value,
    hidden: Vec<FieldChange>,
) -> Vec<Action> {
    let resource = k.resource();
    let write_only = k.write_only();
    let Some(f) = found else {
        return vec![create(shared, k, name, desired)];
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
    // A packed object's fields, parsed back for this comparison only.
    let actual = f.obj.all_fields();
    for (key, dv) in dmap
        .iter()
        .filter(|(key, _)| !write_only.contains(&key.as_str()))
    {
        diff_value(
            key,
            dv,
            actual.get(key).unwrap_or(&Value::Null),
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
    let body = update_body(shared, k, name, desired, &changes);
    out.push(Action::Update {
        resource,
        name: name.to_string(),
        id,
        changes: changes.into(),
        body,
    });
    out
}

mod duplicates;
mod orphans;

#[cfg(test)]
mod tests;
