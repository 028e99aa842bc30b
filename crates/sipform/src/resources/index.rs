//! Lookups over what refresh read, built once per plan: matching a restaurant's objects (by
//! id, by the restaurant they claim, by what links to them) costs a hash lookup, never a scan
//! of every object, which made adoption quadratic in the number of restaurants.

use std::collections::HashMap;

use super::{Actual, Kinds, Resource};
use crate::model::ids::ObjectId;
use crate::remote::ServerObject;

/// Objects by a name they carry (nested so that a lookup by any `&str` borrows nothing).
type ByName<'a> = HashMap<&'a str, Vec<&'a ServerObject>>;

/// Indexes over the one-per-restaurant objects of an [`Actual`].
pub struct Index<'a> {
    by_id: HashMap<(Resource, &'a ObjectId), &'a ServerObject>,
    claimants: HashMap<Resource, ByName<'a>>,
    by_key: HashMap<Resource, ByName<'a>>,
    /// For each linked object, the restaurants the objects linking to it claim (`None` for a
    /// linker that claims none).
    linked: HashMap<(Resource, ObjectId), Vec<Option<&'a str>>>,
}

impl<'a> Index<'a> {
    pub fn new(kinds: &Kinds, actual: &'a Actual) -> Index<'a> {
        let mut by_id = HashMap::new();
        let mut claimants: HashMap<Resource, ByName<'a>> = HashMap::new();
        let mut by_key: HashMap<Resource, ByName<'a>> = HashMap::new();
        let mut linked: HashMap<(Resource, ObjectId), Vec<Option<&'a str>>> = HashMap::new();
        for k in kinds.singletons() {
            for o in actual.singles(k.resource()) {
                // The first listed wins, as a scan would find it.
                by_id.entry((k.resource(), &o.id)).or_insert(o);
                if let Some(r) = k.claims(o) {
                    claimants
                        .entry(k.resource())
                        .or_default()
                        .entry(r)
                        .or_default()
                        .push(o);
                }
                if let Some(key) = k.key_of(o) {
                    by_key
                        .entry(k.resource())
                        .or_default()
                        .entry(key)
                        .or_default()
                        .push(o);
                }
                if let Some(to) = k.links(o) {
                    linked.entry(to).or_default().push(k.claims(o));
                }
            }
        }
        Index {
            by_id,
            claimants,
            by_key,
            linked,
        }
    }

    /// The object of kind `r` with this id.
    pub fn by_id(&self, r: Resource, id: &ObjectId) -> Option<&'a ServerObject> {
        self.by_id.get(&(r, id)).copied()
    }

    /// The objects of kind `r` that name `restaurant` as theirs ([`super::Kind::claims`]), in
    /// the order the server listed them.
    pub fn claimants(&self, r: Resource, restaurant: &str) -> &[&'a ServerObject] {
        lookup(&self.claimants, r, restaurant)
    }

    /// The objects of kind `r` whose key ([`super::Kind::key_of`]: the name) is `key`, in
    /// the order the server listed them.
    pub(crate) fn by_key(&self, r: Resource, key: &str) -> &[&'a ServerObject] {
        lookup(&self.by_key, r, key)
    }

    /// Whether some object points at this one ([`super::Kind::links`]: an agent's
    /// `finalCustomerId`).
    pub fn linked(&self, r: Resource, id: &ObjectId) -> bool {
        self.linked.contains_key(&(r, id.clone()))
    }

    /// The restaurants claimed by the objects that link to this one (an agent's
    /// `config.restaurantId` for its final customer): whose it is, when it claims nothing itself.
    pub(crate) fn linkers_claim(
        &self,
        r: Resource,
        id: &ObjectId,
    ) -> impl Iterator<Item = &'a str> + '_ {
        self.linked
            .get(&(r, id.clone()))
            .into_iter()
            .flatten()
            .filter_map(|c| *c)
    }
}

fn lookup<'s, 'a>(
    map: &'s HashMap<Resource, ByName<'a>>,
    r: Resource,
    name: &str,
) -> &'s [&'a ServerObject] {
    map.get(&r)
        .and_then(|m| m.get(name))
        .map_or(&[], Vec::as_slice)
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
        assert_eq!(ids(ix.claimants(Resource::AGENT, "r1")), ["a1", "a2"]);
        assert!(ix.claimants(Resource::AGENT, "r9").is_empty());
        assert_eq!(
            ids(ix.by_key(Resource::FINAL_CUSTOMER, "Chez A")),
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
}
