//! Which restaurants state records each one-per-restaurant object for: what no other
//! restaurant may adopt, what no dedupe may touch, and whether state maps two restaurants to
//! one object. A lookup per object a plan looks at, instead of a pass over every restaurant
//! of state per plan: the CLI builds it once per run, the controller's cache keeps it with the
//! state it keeps and brings it up to date with the restaurants each batch wrote.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::{Kinds, Resource};
use crate::model::ids::{ObjectId, RestaurantId};
use crate::state::State;

/// The ids state records, by id and by restaurant, as of one state (its lineage and serial).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Owners {
    of: Option<(Uuid, u64)>,
    /// Every restaurant recording an id, with the kind it records it as (normally one), in
    /// order: a vector, not a set (a set's node is ten times the size of one entry).
    by_id: HashMap<ObjectId, Vec<(RestaurantId, Resource)>>,
    ids_of: HashMap<RestaurantId, Vec<(Resource, ObjectId)>>,
}

impl Owners {
    /// The owners of every id `state` records.
    pub fn of(kinds: &Kinds, state: &State) -> Owners {
        let mut owners = Owners {
            of: Some((state.lineage, state.serial)),
            ..Owners::default()
        };
        for rid in state.restaurants.keys() {
            owners.read(kinds, state, rid);
        }
        owners
    }

    /// Whether it is the index of `state` as it is (same lineage and serial).
    pub fn is_of(&self, state: &State) -> bool {
        self.of == Some((state.lineage, state.serial))
    }

    /// The lineage and serial of the state it is of.
    pub fn version(&self) -> Option<(Uuid, u64)> {
        self.of
    }

    /// Brings it from the state it is of to `state`, which differs from it in `changed`
    /// restaurants at most (what one batch wrote): only their entries are read again.
    pub fn follow<'r>(
        &mut self,
        kinds: &Kinds,
        state: &State,
        changed: impl IntoIterator<Item = &'r RestaurantId>,
    ) {
        for rid in changed {
            for (r, id) in self.ids_of.remove(rid).unwrap_or_default() {
                if let Some(owners) = self.by_id.get_mut(&id) {
                    owners.retain(|(o, kind)| (o, *kind) != (rid, r));
                    if owners.is_empty() {
                        self.by_id.remove(&id);
                    }
                }
            }
            self.read(kinds, state, rid);
        }
        self.of = Some((state.lineage, state.serial));
    }

    fn read(&mut self, kinds: &Kinds, state: &State, rid: &RestaurantId) {
        let Some(st) = state.restaurants.get(rid) else {
            return;
        };
        let mut ids: Vec<(Resource, ObjectId)> = kinds
            .singletons()
            .filter_map(|k| Some((k.resource(), k.recorded(st, "")?)))
            .collect();
        ids.shrink_to_fit();
        for (r, id) in &ids {
            let owners = self.by_id.entry(id.clone()).or_default();
            let entry = (rid.clone(), *r);
            if let Err(at) = owners.binary_search(&entry) {
                super::index::insert_one(owners, at, entry);
            }
        }
        if !ids.is_empty() {
            self.ids_of.insert(rid.clone(), ids);
        }
    }

    /// Whether state records `id` for some restaurant.
    pub fn records(&self, id: &ObjectId) -> bool {
        self.by_id.contains_key(id)
    }

    /// Whether state records `id` for a restaurant other than `r`.
    pub fn records_for_other(&self, id: &ObjectId, r: &RestaurantId) -> bool {
        self.by_id
            .get(id)
            .is_some_and(|owners| owners.iter().any(|(o, _)| o != r))
    }

    /// An object state records for two restaurants as the same kind: `(what, id, first
    /// restaurant, second restaurant)`, the smallest such id. One object belongs to one
    /// restaurant; a hand edit or a bad migration that maps another restaurant to it would
    /// rewrite it with the wrong restaurant.
    pub fn shared(&self) -> Option<(&'static str, String, RestaurantId, RestaurantId)> {
        let mut found: BTreeMap<&ObjectId, (Resource, &RestaurantId, &RestaurantId)> =
            BTreeMap::new();
        for (id, owners) in self.by_id.iter().filter(|(_, o)| o.len() > 1) {
            let mut by_kind: HashMap<Resource, &RestaurantId> = HashMap::new();
            for (rid, r) in owners {
                if let Some(first) = by_kind.insert(*r, rid) {
                    found.entry(id).or_insert((*r, first, rid));
                }
            }
        }
        let (id, (r, first, second)) = found.into_iter().next()?;
        Some((r.label(), id.to_string(), first.clone(), second.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ids::{AgentId, FinalCustomerId};
    use crate::state::RestaurantState;

    fn with(agent: &str, fc: Option<&str>) -> RestaurantState {
        RestaurantState {
            agent_id: Some(AgentId::new(agent)),
            final_customer_id: fc.map(FinalCustomerId::new),
            ..RestaurantState::default()
        }
    }

    fn id(s: &str) -> ObjectId {
        ObjectId::parse(s).expect("id")
    }

    /// Brought up to date with the restaurants a batch wrote (one recorded anew, one moved to
    /// another agent, one forgotten), it is the index built afresh of the state after.
    #[test]
    fn followed_it_is_the_index_of_the_state_after() {
        let kinds = Kinds::builtin();
        let mut state = State::default();
        for (r, a, f) in [
            ("r1", "a1", Some("f1")),
            ("r2", "a2", None),
            ("r3", "a3", None),
        ] {
            state.restaurants.insert(RestaurantId::new(r), with(a, f));
        }
        let mut owners = Owners::of(&kinds, &state);
        assert!(owners.is_of(&state));
        assert!(owners.records_for_other(&id("a1"), &RestaurantId::new("r2")));
        assert!(!owners.records_for_other(&id("a1"), &RestaurantId::new("r1")));

        state
            .restaurants
            .insert(RestaurantId::new("r4"), with("a4", Some("f4")));
        state
            .restaurants
            .insert(RestaurantId::new("r2"), with("a9", None));
        state.restaurants.remove(&RestaurantId::new("r3"));
        state.serial += 3;
        assert!(!owners.is_of(&state));
        let changed = ["r2", "r3", "r4"].map(RestaurantId::new);
        owners.follow(&kinds, &state, &changed);
        assert_eq!(owners, Owners::of(&kinds, &state));
        assert!(!owners.records(&id("a2")) && !owners.records(&id("a3")));
        assert!(owners.records(&id("f4")));
    }

    /// Two restaurants recording one agent are found, named in order; an agent id that is
    /// another restaurant's final customer id is not "the same object".
    #[test]
    fn an_object_recorded_for_two_restaurants_is_found() {
        let kinds = Kinds::builtin();
        let mut state = State::default();
        state
            .restaurants
            .insert(RestaurantId::new("r1"), with("x", None));
        state
            .restaurants
            .insert(RestaurantId::new("r2"), with("a2", Some("x")));
        assert_eq!(Owners::of(&kinds, &state).shared(), None);
        state
            .restaurants
            .insert(RestaurantId::new("r0"), with("x", None));
        assert_eq!(
            Owners::of(&kinds, &state).shared(),
            Some((
                "agent",
                "x".to_string(),
                RestaurantId::new("r0"),
                RestaurantId::new("r1")
            ))
        );
    }
}
