//! Lookups over the one-per-restaurant objects: matching a restaurant's objects (by id, by the
//! restaurant they claim, by name, by what links to them) costs a hash lookup, never a scan of
//! every object, which made adoption quadratic in the number of restaurants.
//!
//! Two parts. [`ObjectIndex`] is owned and names objects by id: the CLI builds one per run;
//! the controller's cache keeps one over everything it holds, updated as its objects change
//! ([`Indexed`]), so that a plan of one restaurant never rebuilds it. [`Index`] is a plan's:
//! an `ObjectIndex` and the objects its ids resolve to (the [`Actual`] the plan was given).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use super::{Actual, Kind, Kinds, Resource};
use crate::model::ids::ObjectId;
use crate::remote::ServerObject;

/// Ids by a name they carry, in listing order.
type ByName = HashMap<Resource, HashMap<String, Vec<ObjectId>>>;

/// What links to an object: each linker's kind, id and the restaurant it claims, in the
/// kinds' order then listing order.
type Linkers = HashMap<(Resource, ObjectId), Vec<(Resource, ObjectId, Option<String>)>>;

/// The lookups over the lists of one-per-restaurant objects, by id. Ids are unique per kind:
/// an object listed twice is indexed (and kept by [`Indexed`]) once, at its first place.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectIndex {
    /// Each object's place in its kind's list.
    pos: HashMap<Resource, HashMap<ObjectId, usize>>,
    claimants: ByName,
    by_key: ByName,
    linked: Linkers,
}

impl ObjectIndex {
    /// The index of every one-per-restaurant object of `actual` (the first of an id listed
    /// twice).
    pub fn of(kinds: &Kinds, actual: &Actual) -> ObjectIndex {
        let mut ix = ObjectIndex::default();
        for k in kinds.singletons() {
            for (i, o) in actual.singles(k.resource()).iter().enumerate() {
                if !ix.holds(k.resource(), &o.id) {
                    ix.insert(kinds, k, o, i);
                }
            }
        }
        ix
    }

    /// Whether it holds the object of kind `r` with this id.
    pub fn holds(&self, r: Resource, id: &ObjectId) -> bool {
        self.position(r, id).is_some()
    }

    /// The place of the object of kind `r` with this id in its kind's list.
    pub fn position(&self, r: Resource, id: &ObjectId) -> Option<usize> {
        self.pos.get(&r)?.get(id).copied()
    }

    /// The ids of kind `r` that claim `restaurant` ([`Kind::claims`]), in listing order.
    pub fn claimant_ids(&self, r: Resource, restaurant: &str) -> &[ObjectId] {
        ids(&self.claimants, r, restaurant)
    }

    /// The ids of kind `r` whose key ([`Kind::key_of`]: the name) is `key`, in listing order.
    pub fn key_ids(&self, r: Resource, key: &str) -> &[ObjectId] {
        ids(&self.by_key, r, key)
    }

    /// Whether some object points at this one ([`Kind::links`]: an agent's
    /// `finalCustomerId`).
    pub fn linked(&self, r: Resource, id: &ObjectId) -> bool {
        self.linked.contains_key(&(r, id.clone()))
    }

    /// The restaurants claimed by the objects that link to this one (an agent's
    /// `config.restaurantId` for its final customer).
    pub fn linkers_claim(&self, r: Resource, id: &ObjectId) -> impl Iterator<Item = &str> + '_ {
        self.linked
            .get(&(r, id.clone()))
            .into_iter()
            .flatten()
            .filter_map(|(_, _, c)| c.as_deref())
    }

    /// Where the object of kind `r` with this id sorts among linkers: kinds' order, then place.
    fn rank(&self, kinds: &Kinds, r: Resource, id: &ObjectId) -> (usize, usize) {
        (kinds.rank(r), self.position(r, id).unwrap_or(usize::MAX))
    }

    /// Indexes `o`, of kind `k`, at place `at` of its list; each list stays in listing order.
    fn insert(&mut self, kinds: &Kinds, k: &dyn Kind, o: &ServerObject, at: usize) {
        let r = k.resource();
        self.pos.entry(r).or_default().insert(o.id.clone(), at);
        let place = |ix: &ObjectIndex, id: &ObjectId| ix.position(r, id).unwrap_or(usize::MAX);
        for (names, name) in [(0, k.claims(o)), (1, k.key_of(o))] {
            let Some(name) = name else { continue };
            let before = {
                let list = ids(
                    if names == 0 {
                        &self.claimants
                    } else {
                        &self.by_key
                    },
                    r,
                    name,
                );
                list.partition_point(|id| place(self, id) < at)
            };
            let map = if names == 0 {
                &mut self.claimants
            } else {
                &mut self.by_key
            };
            let list = map
                .entry(r)
                .or_default()
                .entry(name.to_string())
                .or_default();
            insert_one(list, before, o.id.clone());
        }
        if let Some(to) = k.links(o) {
            let me = (kinds.rank(r), at);
            let before = self.linked.get(&to).map_or(0, |list| {
                list.partition_point(|(lr, id, _)| self.rank(kinds, *lr, id) < me)
            });
            let claim = k.claims(o).map(str::to_string);
            let list = self.linked.entry(to).or_default();
            insert_one(list, before, (r, o.id.clone(), claim));
        }
    }

    /// Forgets `o`, of kind `k` (the places after it are [`ObjectIndex::shift`]ed apart).
    fn remove(&mut self, k: &dyn Kind, o: &ServerObject) {
        let r = k.resource();
        if let Some(c) = k.claims(o) {
            drop_id(&mut self.claimants, r, c, &o.id);
        }
        if let Some(key) = k.key_of(o) {
            drop_id(&mut self.by_key, r, key, &o.id);
        }
        if let Some(to) = k.links(o) {
            if let Some(list) = self.linked.get_mut(&to) {
                list.retain(|(lr, id, _)| (*lr, id) != (r, &o.id));
                if list.is_empty() {
                    self.linked.remove(&to);
                }
            }
        }
        if let Some(places) = self.pos.get_mut(&r) {
            places.remove(&o.id);
            if places.is_empty() {
                self.pos.remove(&r);
            }
        }
    }
}

/// Inserts `x` at `at`, a lone entry without spare room: most lists hold one id, and a pushed
/// vector keeps room for four (at 10,000 restaurants, megabytes of it).
pub(super) fn insert_one<T>(list: &mut Vec<T>, at: usize, x: T) {
    if list.is_empty() {
        list.reserve_exact(1);
    }
    list.insert(at, x);
}

fn ids<'s>(map: &'s ByName, r: Resource, name: &str) -> &'s [ObjectId] {
    map.get(&r)
        .and_then(|m| m.get(name))
        .map_or(&[], Vec::as_slice)
}

fn drop_id(map: &mut ByName, r: Resource, name: &str, id: &ObjectId) {
    let Some(names) = map.get_mut(&r) else { return };
    if let Some(list) = names.get_mut(name) {
        list.retain(|i| i != id);
        if list.is_empty() {
            names.remove(name);
        }
    }
    if names.is_empty() {
        map.remove(&r);
    }
}

/// An [`Actual`] and its [`ObjectIndex`], changed together: what the controller's cache keeps.
/// Every change costs the objects it touches (a removal also moves the places after it), never
/// a pass over every object; the index is shared with the plans made meanwhile (an `Arc`,
/// copied only if a plan still holds it when the cache changes).
#[derive(Debug, Clone, Default)]
pub struct Indexed {
    actual: Actual,
    index: Arc<ObjectIndex>,
}

impl std::ops::Deref for Indexed {
    type Target = Actual;

    fn deref(&self) -> &Actual {
        &self.actual
    }
}

impl Indexed {
    /// `actual` (each id of a kind kept once, at its first place) with its index.
    pub fn new(kinds: &Kinds, mut actual: Actual) -> Indexed {
        for k in kinds.singletons() {
            if let Some(list) = actual.singles.get_mut(&k.resource()) {
                let mut seen = std::collections::HashSet::new();
                list.retain(|o| seen.insert(o.id.clone()));
            }
        }
        let index = Arc::new(ObjectIndex::of(kinds, &actual));
        Indexed { actual, index }
    }

    /// The index, to hand to a plan.
    pub fn index(&self) -> &Arc<ObjectIndex> {
        &self.index
    }

    /// Sets the account.
    pub fn set_account(&mut self, account: Option<ServerObject>) {
        self.actual.account = account;
    }

    /// Adds `o` of kind `r` at the end of its list (an id it holds already is left as it is).
    pub fn add(&mut self, kinds: &Kinds, r: Resource, o: ServerObject) {
        let Some(k) = kinds.get(r).filter(|k| k.shape() == super::Shape::One) else {
            self.actual.add_single(r, o);
            return;
        };
        if self.index.holds(r, &o.id) {
            return;
        }
        let at = self.actual.singles(r).len();
        Arc::make_mut(&mut self.index).insert(kinds, k, &o, at);
        self.actual.add_single(r, o);
    }

    /// Replaces what a kind lists per account (the billing plans: not indexed).
    pub fn set_account_data(&mut self, r: Resource, list: Vec<ServerObject>) {
        self.actual.set_singles(r, list);
    }

    /// Forgets every object but the account.
    pub fn clear(&mut self) {
        self.actual.clear_singles();
        self.index = Arc::default();
    }

    /// Drops the object `id` of kind `r`.
    pub fn remove(&mut self, kinds: &Kinds, r: Resource, id: &ObjectId) {
        let Some(k) = kinds.get(r).filter(|k| k.shape() == super::Shape::One) else {
            self.actual.remove_single(r, id);
            return;
        };
        let Some(at) = self.index.position(r, id) else {
            return;
        };
        let Some(list) = self.actual.singles.get_mut(&r) else {
            return;
        };
        let gone = list.remove(at);
        let index = Arc::make_mut(&mut self.index);
        index.remove(k, &gone);
        if let Some(places) = index.pos.get_mut(&r) {
            for (i, o) in list.iter().enumerate().skip(at) {
                if let Some(p) = places.get_mut(&o.id) {
                    *p = i;
                }
            }
        }
    }

    /// Changes the one-per-restaurant objects of id `id` in place with `change`; indexed
    /// again when what the index reads of them changed (a rename).
    pub fn update(&mut self, kinds: &Kinds, id: &ObjectId, change: impl Fn(&mut ServerObject)) {
        for k in kinds.singletons() {
            let r = k.resource();
            let Some(at) = self.index.position(r, id) else {
                continue;
            };
            let Some(o) = self.actual.singles.get_mut(&r).and_then(|l| l.get_mut(at)) else {
                continue;
            };
            let before = lookups(k, o);
            let old = o.clone();
            change(o);
            if lookups(k, o) != before {
                let index = Arc::make_mut(&mut self.index);
                index.remove(k, &old);
                index.insert(kinds, k, o, at);
            }
        }
    }
}

/// What the index reads of an object.
fn lookups(
    k: &dyn Kind,
    o: &ServerObject,
) -> (Option<String>, Option<String>, Option<(Resource, ObjectId)>) {
    (
        k.claims(o).map(str::to_string),
        k.key_of(o).map(str::to_string),
        k.links(o),
    )
}

/// A plan's lookups: an [`ObjectIndex`] (built for it, or the one the controller's cache
/// keeps) and the objects of the [`Actual`] it was given, by id. An id the index names that
/// `actual` lacks is no object of this plan's.
pub struct Index<'a> {
    keys: Cow<'a, ObjectIndex>,
    objects: HashMap<Resource, HashMap<&'a ObjectId, &'a ServerObject>>,
}

impl<'a> Index<'a> {
    /// The index of every object of `actual`.
    pub fn new(kinds: &Kinds, actual: &'a Actual) -> Index<'a> {
        Index::over(kinds, actual, Cow::Owned(ObjectIndex::of(kinds, actual)))
    }

    /// `keys` (over `actual`'s objects or more) resolved to `actual`'s objects.
    pub fn with(kinds: &Kinds, actual: &'a Actual, keys: &'a ObjectIndex) -> Index<'a> {
        Index::over(kinds, actual, Cow::Borrowed(keys))
    }

    fn over(kinds: &Kinds, actual: &'a Actual, keys: Cow<'a, ObjectIndex>) -> Index<'a> {
        let mut objects: HashMap<Resource, HashMap<&'a ObjectId, &'a ServerObject>> =
            HashMap::new();
        for k in kinds.singletons() {
            let of_kind = objects.entry(k.resource()).or_default();
            for o in actual.singles(k.resource()) {
                // The first listed wins, as a scan would find it.
                of_kind.entry(&o.id).or_insert(o);
            }
        }
        Index { keys, objects }
    }

    /// The object of kind `r` with this id.
    pub fn by_id(&self, r: Resource, id: &ObjectId) -> Option<&'a ServerObject> {
        self.objects.get(&r)?.get(id).copied()
    }

    fn resolve(&self, r: Resource, ids: &[ObjectId]) -> Vec<&'a ServerObject> {
        ids.iter().filter_map(|id| self.by_id(r, id)).collect()
    }

    /// The objects of kind `r` that name `restaurant` as theirs ([`super::Kind::claims`]), in
    /// the order the server listed them.
    pub fn claimants(&self, r: Resource, restaurant: &str) -> Vec<&'a ServerObject> {
        self.resolve(r, self.keys.claimant_ids(r, restaurant))
    }

    /// The objects of kind `r` whose key ([`super::Kind::key_of`]: the name) is `key`, in
    /// the order the server listed them.
    pub(crate) fn by_key(&self, r: Resource, key: &str) -> Vec<&'a ServerObject> {
        self.resolve(r, self.keys.key_ids(r, key))
    }

    /// Whether some object points at this one ([`super::Kind::links`]: an agent's
    /// `finalCustomerId`).
    pub fn linked(&self, r: Resource, id: &ObjectId) -> bool {
        self.keys.linked(r, id)
    }

    /// The restaurants claimed by the objects that link to this one (an agent's
    /// `config.restaurantId` for its final customer): whose it is, when it claims nothing itself.
    pub(crate) fn linkers_claim(
        &self,
        r: Resource,
        id: &ObjectId,
    ) -> impl Iterator<Item = &str> + '_ {
        self.keys.linkers_claim(r, id)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn obj(v: Value) -> ServerObject {
        let Value::Object(o) = v else {
            panic!("object")
        };
        ServerObject::parse(o, String::new).expect("valid").0
    }

    #[test]
    fn finds_by_id_claim_name_and_link_in_listing_order() {
        let mut actual = Actual::default();
        actual.singles.insert(
            Resource::AGENT,
            vec![
                obj(
                    json!({"id": "a1", "name": "Chez A", "finalCustomerId": "f1",
                           "config": {"restaurantId": "r1"}}),
                ),
                obj(json!({"id": "a2", "name": "Chez A", "config": {"restaurantId": "r1"}})),
                obj(json!({"id": "a3", "name": "Chez B", "config": {"restaurantId": "r2"}})),
            ],
        );
        actual.singles.insert(
            Resource::FINAL_CUSTOMER,
            vec![
                obj(json!({"id": "f1", "name": "Chez A"})),
                obj(json!({"id": "f2", "name": "Chez A"})),
            ],
        );
        let ix = Index::new(&Kinds::builtin(), &actual);
        let ids = |l: &[&ServerObject]| l.iter().map(|o| o.id.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(&ix.claimants(Resource::AGENT, "r1")), ["a1", "a2"]);
        assert!(ix.claimants(Resource::AGENT, "r9").is_empty());
        assert_eq!(
            ids(&ix.by_key(Resource::FINAL_CUSTOMER, "Chez A")),
            ["f1", "f2"]
        );
        let f1 = ObjectId::parse("f1").expect("id");
        let f2 = ObjectId::parse("f2").expect("id");
        assert!(ix.linked(Resource::FINAL_CUSTOMER, &f1));
        assert!(!ix.linked(Resource::FINAL_CUSTOMER, &f2));
        assert_eq!(
            ix.linkers_claim(Resource::FINAL_CUSTOMER, &f1)
                .collect::<Vec<_>>(),
            ["r1"]
        );
        assert_eq!(ix.linkers_claim(Resource::FINAL_CUSTOMER, &f2).count(), 0);
        assert_eq!(
            ix.by_id(Resource::FINAL_CUSTOMER, &f2)
                .map(|o| o.id.to_string()),
            Some("f2".to_string())
        );
        assert!(ix.by_id(Resource::AGENT, &f2).is_none());
    }

    /// One change the controller's cache makes to what it holds.
    #[derive(Debug, Clone)]
    enum Step {
        /// An agent (id, claimed restaurant, name, final customer it links to).
        AddAgent(u8, Option<u8>, u8, Option<u8>),
        /// A final customer (id, name).
        AddCustomer(u8, u8),
        /// An update of the object with this id: its claim, name and link set anew.
        Update(u8, Option<u8>, u8, Option<u8>),
        Remove(bool, u8),
        /// A resync: the lists replaced by these agents and final customers.
        Resync(Vec<(u8, Option<u8>, u8, Option<u8>)>, Vec<(u8, u8)>),
        Clear,
    }

    fn agent(i: u8, claim: Option<u8>, name: u8, link: Option<u8>) -> ServerObject {
        let mut v = json!({"id": format!("a{i}"), "name": format!("n{name}")});
        if let Some(c) = claim {
            v["config"] = json!({"restaurantId": format!("r{c}")});
        }
        if let Some(l) = link {
            v["finalCustomerId"] = json!(format!("f{l}"));
        }
        obj(v)
    }

    fn customer(i: u8, name: u8) -> ServerObject {
        obj(json!({"id": format!("f{i}"), "name": format!("n{name}")}))
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        let a = (
            0u8..6,
            proptest::option::of(0u8..3),
            0u8..3,
            proptest::option::of(0u8..4),
        );
        prop_oneof![
            4 => a.clone().prop_map(|(i, c, n, l)| Step::AddAgent(i, c, n, l)),
            3 => (0u8..4, 0u8..3).prop_map(|(i, n)| Step::AddCustomer(i, n)),
            3 => a.clone().prop_map(|(i, c, n, l)| Step::Update(i, c, n, l)),
            3 => (any::<bool>(), 0u8..6).prop_map(|(k, i)| Step::Remove(k, i)),
            1 => (
                proptest::collection::vec(a, 0..5),
                proptest::collection::vec((0u8..4, 0u8..3), 0..4)
            )
                .prop_map(|(a, f)| Step::Resync(a, f)),
            1 => Just(Step::Clear),
        ]
    }

    fn run(kinds: &Kinds, kept: &mut Indexed, s: Step) {
        match s {
            Step::AddAgent(i, c, n, l) => kept.add(kinds, Resource::AGENT, agent(i, c, n, l)),
            Step::AddCustomer(i, n) => kept.add(kinds, Resource::FINAL_CUSTOMER, customer(i, n)),
            Step::Update(i, c, n, l) => {
                let fields = agent(i, c, n, l).fields;
                let id = ObjectId::parse(&format!("a{i}")).expect("id");
                kept.update(kinds, &id, |o| o.fields = fields.clone());
            }
            Step::Remove(is_agent, i) => {
                let (r, id) = if is_agent {
                    (Resource::AGENT, format!("a{i}"))
                } else {
                    (Resource::FINAL_CUSTOMER, format!("f{i}"))
                };
                kept.remove(kinds, r, &ObjectId::parse(&id).expect("id"));
            }
            Step::Resync(agents, customers) => {
                let mut actual = Actual::default();
                for (i, c, n, l) in agents {
                    actual.add_single(Resource::AGENT, agent(i, c, n, l));
                }
                for (i, n) in customers {
                    actual.add_single(Resource::FINAL_CUSTOMER, customer(i, n));
                }
                *kept = Indexed::new(kinds, actual);
            }
            Step::Clear => kept.clear(),
        }
    }

    proptest::proptest! {
        /// The index the cache keeps through adds, updates (renames, new claims and links),
        /// removals and resyncs is the one built afresh over what it holds, and a plan's
        /// lookups through either find the same objects.
        #[test]
        fn the_kept_index_is_the_one_built_afresh(
            steps in proptest::collection::vec(step(), 0..40)
        ) {
            let kinds = Kinds::builtin();
            let mut kept = Indexed::default();
            for s in steps {
                run(&kinds, &mut kept, s);
                let fresh = ObjectIndex::of(&kinds, &kept);
                proptest::prop_assert_eq!(kept.index().as_ref(), &fresh);
            }
            let via_kept = Index::with(&kinds, &kept, kept.index());
            let via_fresh = Index::new(&kinds, &kept);
            for r in 0..3 {
                let ids = |l: Vec<&ServerObject>| l.iter().map(|o| o.id.clone()).collect::<Vec<_>>();
                proptest::prop_assert_eq!(
                    ids(via_kept.claimants(Resource::AGENT, &format!("r{r}"))),
                    ids(via_fresh.claimants(Resource::AGENT, &format!("r{r}")))
                );
            }
        }
    }
}
