//! Which restaurant goes in which wave: the canary, then cumulative waves over the rest of
//! the fleet ordered by a hash of the restaurant id. Pure, so the assignment is the same on
//! every run and every machine (a restart or another controller picks the same waves).

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::model::ids::RestaurantId;
use crate::model::spec::{Canary, RolloutPolicy};

/// A restaurant's place in the fleet's order: the first 8 bytes of sha256 of its id (the id
/// breaks a tie, see [`by_rank`]). Stable across runs, versions and machines.
pub fn rank(id: &RestaurantId) -> u64 {
    let digest = Sha256::digest(id.as_str().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Sorts restaurants by [`rank`], then id.
fn by_rank(ids: &mut [&RestaurantId]) {
    ids.sort_by_cached_key(|id| (rank(id), *id));
}

/// The canary a rollout starts with: the listed restaurants that are in the fleet, or the
/// first `n` of the fleet by [`rank`].
pub fn choose_canary(policy: &RolloutPolicy, fleet: &BTreeSet<RestaurantId>) -> Vec<RestaurantId> {
    match &policy.canary {
        Canary::Restaurants(ids) => ids
            .iter()
            .map(|s| RestaurantId::new(s.as_str()))
            .filter(|id| fleet.contains(id))
            .collect(),
        Canary::Count(n) => {
            let mut ordered: Vec<&RestaurantId> = fleet.iter().collect();
            by_rank(&mut ordered);
            ordered.into_iter().take(*n as usize).cloned().collect()
        }
    }
}

/// How many restaurants a policy's canary names (what a change must exceed to be rolled out).
pub fn canary_size(policy: &RolloutPolicy) -> usize {
    match &policy.canary {
        Canary::Count(n) => *n as usize,
        Canary::Restaurants(ids) => ids.len(),
    }
}

/// The fleet split in waves: `waves[0]` is the canary, then one entry per policy wave (each
/// holding only the restaurants it adds), every restaurant in exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub waves: Vec<Vec<RestaurantId>>,
    wave_of: BTreeMap<RestaurantId, usize>,
}

impl Assignment {
    /// Splits `fleet` (the restaurants with an agent) after `canary`.
    pub fn new(
        policy: &RolloutPolicy,
        canary: &[RestaurantId],
        fleet: &BTreeSet<RestaurantId>,
    ) -> Assignment {
        let canary_set: BTreeSet<&RestaurantId> = canary.iter().collect();
        let mut rest: Vec<&RestaurantId> =
            fleet.iter().filter(|id| !canary_set.contains(id)).collect();
        by_rank(&mut rest);
        let mut waves = vec![canary.to_vec()];
        let mut taken = 0;
        let last = policy.waves.len().saturating_sub(1);
        for (i, size) in policy.waves.iter().enumerate() {
            let reach = if i == last {
                rest.len()
            } else {
                size.reach(rest.len()).unwrap_or(rest.len()).max(taken)
            };
            waves.push(rest[taken..reach].iter().map(|id| (*id).clone()).collect());
            taken = reach;
        }
        let wave_of = waves
            .iter()
            .enumerate()
            .flat_map(|(i, w)| w.iter().map(move |id| (id.clone(), i)))
            .collect();
        Assignment { waves, wave_of }
    }

    /// The wave `id` is in; `None` for a restaurant of no wave (new since the rollout began).
    pub fn wave_of(&self, id: &RestaurantId) -> Option<usize> {
        self.wave_of.get(id).copied()
    }

    /// The last wave's index.
    pub fn last(&self) -> usize {
        self.waves.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::WaveSize;

    fn policy(canary: Canary, waves: &[&str]) -> RolloutPolicy {
        RolloutPolicy {
            canary,
            waves: waves
                .iter()
                .map(|w| WaveSize::Percent(w.to_string()))
                .collect(),
            pause: "0s".into(),
            max_failures: 0,
            health: None,
            rollback: None,
        }
    }

    fn fleet(n: usize) -> BTreeSet<RestaurantId> {
        (0..n)
            .map(|i| RestaurantId::new(format!("r{i:04}")))
            .collect()
    }

    #[test]
    fn canary_then_waves_cover_the_fleet_once() {
        let p = policy(Canary::Count(5), &["25%", "100%"]);
        let f = fleet(200);
        let canary = choose_canary(&p, &f);
        let a = Assignment::new(&p, &canary, &f);
        let sizes: Vec<usize> = a.waves.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![5, 49, 146]);
        let all: BTreeSet<&RestaurantId> = a.waves.iter().flatten().collect();
        assert_eq!(all.len(), 200);
        assert_eq!(a.wave_of(&canary[0]), Some(0));
        assert_eq!(a.wave_of(&RestaurantId::new("new")), None);
    }

    #[test]
    fn the_assignment_is_stable_and_not_the_inventory_order() {
        let p = policy(Canary::Count(5), &["10%", "100%"]);
        let f = fleet(100);
        let canary = choose_canary(&p, &f);
        assert_eq!(canary, choose_canary(&p, &f));
        let first_five: Vec<RestaurantId> = f.iter().take(5).cloned().collect();
        assert_ne!(canary, first_five, "a hash, not the id order");
        // A restaurant added later moves no one out of the canary.
        let mut bigger = f.clone();
        bigger.insert(RestaurantId::new("zz-new"));
        let a = Assignment::new(&p, &canary, &bigger);
        assert_eq!(a.waves[0], canary);
    }

    #[test]
    fn an_explicit_canary_keeps_only_restaurants_of_the_fleet() {
        let p = policy(
            Canary::Restaurants(vec!["r0003".into(), "gone".into()]),
            &["100%"],
        );
        let f = fleet(10);
        let canary = choose_canary(&p, &f);
        assert_eq!(canary, vec![RestaurantId::new("r0003")]);
        let a = Assignment::new(&p, &canary, &f);
        assert_eq!(a.waves[1].len(), 9);
        assert_eq!(canary_size(&p), 2);
    }

    #[test]
    fn the_last_wave_takes_everyone_left() {
        let p = policy(Canary::Count(1), &["1%", "10%"]);
        let f = fleet(1000);
        let canary = choose_canary(&p, &f);
        let a = Assignment::new(&p, &canary, &f);
        let sizes: Vec<usize> = a.waves.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 10, 989]);
    }
}
