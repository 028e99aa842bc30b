//! Orphans: agents of this account whose `config.restaurantId` names no restaurant of the
//! inventory nor of state. A delete the server answered but did not carry out, or a restaurant
//! removed from state by hand, leaves one: listed on every full plan so someone looks.

use crate::plan::Orphan;
use crate::resources::{Actual, Kinds, Resource};

/// The orphans among the agents `actual` holds: neither recorded in state (`recorded`) nor
/// claiming a restaurant of `known`. In the order the server listed them.
pub(super) fn find(
    kinds: &Kinds,
    actual: &Actual,
    known: &dyn Fn(&str) -> bool,
    recorded: &dyn Fn(&crate::model::ids::ObjectId) -> bool,
) -> Vec<Orphan> {
    let Some(kind) = kinds.get(Resource::AGENT) else {
        return Vec::new();
    };
    actual
        .singles(Resource::AGENT)
        .iter()
        .filter(|o| !recorded(&o.id))
        .filter_map(|o| {
            let claims = kind.claims(o);
            if claims.is_some_and(known) {
                return None;
            }
            Some(Orphan {
                id: o.id.clone(),
                restaurant_id: claims.map(str::to_string),
                name: o.str_field("name").unwrap_or("").to_string(),
            })
        })
        .collect()
}
