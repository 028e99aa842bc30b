use super::*;
use serde_json::json;

mod model {
    //! A pure model of the server for plan-level tests: objects a plan creates exist with the
    //! fields it sent, under ids this model makes, and state records them as apply would.

    use std::collections::BTreeMap;

    use serde_json::Value;

    use crate::model::ids::ObjectId;
    use crate::model::spec::Desired;
    use crate::plan::{Action, Body, Plan};
    use crate::remote::ServerObject;
    use crate::resources::{Actual, Kinds, Shape};
    use crate::state::{Change, State};

    fn object(id: &str, body: &Body, extra: &[(&str, &str)]) -> ServerObject {
        let mut fields = body.value().as_object().cloned().unwrap_or_default();
        for (k, v) in extra {
            fields.insert((*k).into(), Value::String((*v).into()));
        }
        ServerObject::new(ObjectId::parse(id).expect("model ids are valid"), fields)
    }

    /// What the server holds, and what state says, after `plan` is carried out on `actual`.
    /// Only creates and updates are modelled (what the convergence properties need).
    pub fn applied(kinds: &Kinds, plan: &Plan, actual: &Actual, state: &State) -> (Actual, State) {
        let mut actual = actual.clone();
        let mut state = state.clone();
        let mut next = 0;
        let mut fresh = |prefix: &str| {
            next += 1;
            format!("{prefix}-{next}")
        };
        let account = match &plan.account {
            Action::Create { body, .. } => {
                let a = object(&fresh("acc"), body, &[]);
                actual.account = Some(a.clone());
                a.id
            }
            other => other.id().cloned().expect("an existing account has an id"),
        };
        state.apply(&Change::Account((&account).into()), false);
        for rp in &plan.restaurants {
            let mut parents: BTreeMap<&str, ObjectId> = BTreeMap::new();
            for a in &rp.actions {
                let kind = kinds.get(a.resource()).expect("a known kind");
                match a {
                    Action::Create { name, body, .. } => {
                        let id = fresh(a.resource().as_str());
                        match kind.shape() {
                            Shape::One => {
                                let mut extra = vec![("accountId", account.as_str())];
                                if let Some(fc) = parents.get("finalCustomer") {
                                    extra.push(("finalCustomerId", fc.as_str()));
                                }
                                let o = object(&id, body, &extra);
                                actual
                                    .singles
                                    .entry(a.resource())
                                    .or_default()
                                    .push(o.clone());
                                parents.insert(a.resource().as_str(), o.id.clone());
                                state.apply(
                                    &kind.change(&rp.restaurant_id, name, Some(&o.id), None),
                                    false,
                                );
                            }
                            Shape::Many => {
                                let parent = kind.parent().expect("a child has a parent");
                                let pid = parents[parent.as_str()].clone();
                                let o = object(&id, body, &[]);
                                actual
                                    .children
                                    .entry((a.resource(), pid))
                                    .or_default()
                                    .push(o.clone());
                                state.apply(
                                    &kind.change(&rp.restaurant_id, name, Some(&o.id), None),
                                    false,
                                );
                            }
                        }
                    }
                    Action::Update { id, body, .. } => {
                        for list in actual
                            .singles
                            .values_mut()
                            .chain(actual.children.values_mut())
                        {
                            for o in list.iter_mut().filter(|o| &o.id == id) {
                                let body = body.value();
                                for (k, v) in body.as_object().into_iter().flatten() {
                                    o.fields.insert(k.clone(), v.clone());
                                }
                            }
                        }
                        parents.insert(a.resource().as_str(), id.clone());
                    }
                    Action::Adopt { id, name, .. } => {
                        state.apply(&kind.change(&rp.restaurant_id, name, Some(id), None), false);
                        parents.insert(a.resource().as_str(), id.clone());
                    }
                    Action::NoOp { id, .. } => {
                        parents.insert(a.resource().as_str(), id.clone());
                    }
                    Action::Delete { .. } => {}
                }
            }
        }
        (actual, state)
    }

    /// The bundled project, rendered.
    pub fn bundled() -> Desired {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let env = crate::front::render::RenderEnv {
            app_url: "http://localhost:3000".into(),
        };
        crate::front::validate::desired(&root, &env)
            .unwrap_or_else(|d| panic!("{d}"))
            .desired
    }
}

/// The plan over sipform's own kinds.
fn plan(desired: &Desired, actual: &Actual, state: &State, opts: &PlanOptions) -> Plan {
    plan_with(&Kinds::builtin(), desired, actual, state, opts)
}

fn opts() -> PlanOptions {
    PlanOptions::default()
}

#[test]
fn a_fresh_plan_creates_everything_in_dependency_order() {
    let desired = model::bundled();
    let plan = plan(&desired, &Actual::default(), &State::new(), &opts());
    assert_eq!(plan.account.op(), crate::plan::Op::Create);
    let wanted = desired
        .restaurants
        .iter()
        .filter(|r| r.create_if_missing)
        .count();
    assert_eq!(plan.restaurants.len(), wanted);
    for rp in &plan.restaurants {
        let kinds: Vec<Resource> = rp.actions.iter().map(Action::resource).collect();
        assert_eq!(kinds[..2], [Resource::FINAL_CUSTOMER, Resource::AGENT]);
        assert!(kinds[2..14].iter().all(|k| *k == Resource::TOOL));
        assert_eq!(kinds[14..], [Resource::SUBSCRIPTION]);
        assert_eq!(kinds.len(), 15, "{} actions", kinds.len());
        assert!(rp.actions.iter().all(|a| a.op() == crate::plan::Op::Create));
    }
}

#[test]
fn the_plan_of_what_applying_produced_is_empty() {
    let kinds = Kinds::builtin();
    let desired = model::bundled();
    let first = plan(&desired, &Actual::default(), &State::new(), &opts());
    let (actual, state) = model::applied(&kinds, &first, &Actual::default(), &State::new());
    let second = plan(&desired, &actual, &state, &opts());
    assert!(!second.has_changes(), "{:#?}", second.restaurants);
}

#[test]
fn what_state_does_not_know_is_adopted_not_created_again() {
    let kinds = Kinds::builtin();
    let desired = model::bundled();
    let first = plan(&desired, &Actual::default(), &State::new(), &opts());
    let (actual, _) = model::applied(&kinds, &first, &Actual::default(), &State::new());
    // State lost: everything exists, nothing may be created twice.
    let again = plan(&desired, &actual, &State::new(), &opts());
    assert_eq!(again.summary.add, 0, "{:#?}", again.restaurants);
    assert_eq!(again.summary.change, 0);
    assert!(again.summary.adopt > 0);
    let reasons: std::collections::BTreeSet<String> =
        again.actions().filter_map(Action::reason).collect();
    assert!(
        reasons.contains("found by config.restaurantId"),
        "{reasons:?}"
    );
    assert!(
        reasons.contains("the agent's finalCustomerId"),
        "{reasons:?}"
    );
    assert!(reasons.contains("found by name"), "{reasons:?}");
}

#[test]
fn a_stray_or_duplicate_child_is_deleted_with_its_reason() {
    let kinds = Kinds::builtin();
    let desired = model::bundled();
    let first = plan(&desired, &Actual::default(), &State::new(), &opts());
    let (mut actual, state) = model::applied(&kinds, &first, &Actual::default(), &State::new());
    let (key, tools) = actual
        .children
        .iter_mut()
        .find(|(k, _)| k.0 == Resource::TOOL)
        .expect("some agent has tools");
    let agent = key.1.clone();
    let mut dup = tools[0].clone();
    dup.id = ObjectId::parse("t-dup").expect("valid");
    let mut stray = tools[0].clone();
    stray.id = ObjectId::parse("t-stray").expect("valid");
    stray.fields.insert("name".into(), json!("legacy_upsell"));
    tools.push(dup);
    tools.push(stray);
    let p = plan(&desired, &actual, &state, &opts());
    let deletes: Vec<(String, String)> = p
        .actions()
        .filter(|a| a.op() == crate::plan::Op::Delete)
        .map(|a| {
            (
                a.remote_id().unwrap_or("").to_string(),
                a.reason().unwrap_or_default(),
            )
        })
        .collect();
    let first_tool = actual.children[&(Resource::TOOL, agent)][0]
        .name()
        .unwrap_or("")
        .to_string();
    assert_eq!(
        deletes,
        vec![
            (
                "t-dup".to_string(),
                format!("duplicate of tool {first_tool}")
            ),
            ("t-stray".to_string(), "not declared in tools/".to_string()),
        ]
    );
}

#[test]
fn a_restaurant_gone_from_the_inventory_is_only_noted_without_allow_destroy() {
    let kinds = Kinds::builtin();
    let mut desired = model::bundled();
    let first = plan(&desired, &Actual::default(), &State::new(), &opts());
    let (actual, state) = model::applied(&kinds, &first, &Actual::default(), &State::new());
    let gone = desired.restaurants.remove(0);
    let p = plan(&desired, &actual, &state, &opts());
    assert!(!p.has_changes());
    let rp = p
        .restaurants
        .iter()
        .find(|r| r.restaurant_id == gone.id)
        .expect("listed");
    assert!(
        rp.notes[0].starts_with("gone from the inventory: agent "),
        "{:?}",
        rp.notes
    );
    let destroy = PlanOptions {
        allow_destroy: true,
        ..opts()
    };
    let p = plan(&desired, &actual, &state, &destroy);
    let rp = p
        .restaurants
        .iter()
        .find(|r| r.restaurant_id == gone.id)
        .expect("listed");
    let ops: Vec<(Resource, String)> = rp
        .actions
        .iter()
        .map(|a| (a.resource(), a.reason().unwrap_or_default()))
        .collect();
    assert_eq!(
        ops,
        vec![
            (
                Resource::AGENT,
                "restaurant gone from the inventory (its tools and phone lines go with it)"
                    .to_string()
            ),
            (
                Resource::FINAL_CUSTOMER,
                "restaurant gone from the inventory (its subscriptions go with it)".to_string()
            ),
        ]
    );
}

#[test]
fn another_restaurants_object_is_never_adopted() {
    let kinds = Kinds::builtin();
    let desired = model::bundled();
    let first = plan(&desired, &Actual::default(), &State::new(), &opts());
    let (actual, mut state) = model::applied(&kinds, &first, &Actual::default(), &State::new());
    // Restaurant 0 lost its state; restaurant 1's state claims restaurant 0's agent.
    let (r0, r1) = (&desired.restaurants[0].id, &desired.restaurants[1].id);
    let taken = state.restaurants.remove(r0).expect("applied").agent_id;
    state.restaurants.get_mut(r1).expect("applied").agent_id = taken.clone();
    let p = plan(&desired, &actual, &state, &opts());
    let rp = p
        .restaurants
        .iter()
        .find(|r| &r.restaurant_id == r0)
        .expect("planned");
    let agent = rp
        .actions
        .iter()
        .find(|a| a.resource() == Resource::AGENT)
        .expect("an agent action");
    assert_eq!(agent.op(), crate::plan::Op::Create, "{rp:#?}");
    assert!(taken.is_some());
    // Restaurant 1, whose state names restaurant 0's agent, is skipped with an error naming
    // both: planning it would rewrite that agent's restaurant (issue 25, item 2).
    let skipped = p
        .restaurants
        .iter()
        .find(|r| &r.restaurant_id == r1)
        .expect("reported");
    assert!(skipped.actions.is_empty(), "{skipped:#?}");
    assert!(
        skipped
            .notes
            .iter()
            .any(|n| n.starts_with("error:") && n.contains(r0.as_str()) && n.contains(r1.as_str())),
        "{skipped:#?}"
    );
}

/// The platform's row naming another restaurant's agent, or a final customer another
/// restaurant's agent uses, is an error naming both; the other restaurants are planned as
/// before (issue 25, item 2).
#[test]
fn a_row_naming_another_restaurants_object_skips_the_restaurant() {
    let kinds = Kinds::builtin();
    let mut desired = model::bundled();
    let first = plan(&desired, &Actual::default(), &State::new(), &opts());
    let (actual, state) = model::applied(&kinds, &first, &Actual::default(), &State::new());
    let (r0, r1) = (
        desired.restaurants[0].id.clone(),
        desired.restaurants[1].id.clone(),
    );
    let agent_of = |r: &RestaurantId| {
        state.restaurants[r]
            .agent_id
            .as_ref()
            .and_then(|a| a.to_object_id().ok())
    };
    let fc_of = |r: &RestaurantId| {
        state.restaurants[r]
            .final_customer_id
            .as_ref()
            .and_then(|a| a.to_object_id().ok())
    };
    for (agent, fc) in [(agent_of(&r0), None), (None, fc_of(&r0))] {
        let mut state = state.clone();
        state.restaurants.remove(&r1);
        desired.restaurants[1].platform_agent = agent.clone();
        desired.restaurants[1].platform_final_customer = fc.clone();
        let p = plan(&desired, &actual, &state, &opts());
        let rp = p
            .restaurants
            .iter()
            .find(|r| r.restaurant_id == r1)
            .expect("reported");
        assert!(rp.actions.is_empty(), "{agent:?} {fc:?}: {rp:#?}");
        assert!(
            rp.notes.iter().any(|n| n.starts_with("error:")
                && n.contains(r0.as_str())
                && n.contains(r1.as_str())),
            "{rp:#?}"
        );
        let other = p.restaurants.iter().find(|r| r.restaurant_id == r0);
        assert!(
            other.is_some_and(
                |r| !r.has_changes() && !r.notes.iter().any(|n| n.starts_with("error:"))
            ),
            "restaurant 0 is planned as before: {other:#?}"
        );
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// For any subset of the bundled restaurants, with any voice: applying the plan, then
        /// planning again, finds nothing to do; and a second edit of the voices changes exactly
        /// the agents whose voice changed, with one-key bodies.
        #[test]
        fn apply_then_plan_is_empty_and_edits_are_minimal(
            keep in proptest::collection::vec(any::<bool>(), 3),
            voices in proptest::collection::vec(0usize..3, 3),
            edits in proptest::collection::vec(0usize..3, 3),
        ) {
            let names = ["sage", "alloy", "verse"];
            let kinds = Kinds::builtin();
            let mut desired = model::bundled();
            let mut i = 0;
            desired.restaurants.retain(|_| { i += 1; keep[i - 1] });
            for (r, v) in desired.restaurants.iter_mut().zip(&voices) {
                r.agent.ai_voice = names[*v].into();
            }
            let first = plan(&desired, &Actual::default(), &State::new(), &opts());
            let (actual, state) = model::applied(&kinds, &first, &Actual::default(), &State::new());
            let second = plan(&desired, &actual, &state, &opts());
            prop_assert!(!second.has_changes());
            prop_assert_eq!(shown(&with_kept(&desired, &actual, &state)), shown(&second));

            let mut edited = desired.clone();
            let mut expected = 0;
            for ((r, v), e) in edited.restaurants.iter_mut().zip(&voices).zip(&edits) {
                r.agent.ai_voice = names[*e].into();
                if v != e && r.create_if_missing {
                    expected += 1;
                }
            }
            let third = plan(&edited, &actual, &state, &opts());
            prop_assert_eq!(shown(&with_kept(&edited, &actual, &state)), shown(&third));
            prop_assert_eq!(third.summary.change, expected);
            prop_assert_eq!(third.summary.add + third.summary.delete + third.summary.adopt, 0);
            for a in third.actions().filter(|a| a.op() == crate::plan::Op::Update) {
                prop_assert_eq!(a.resource(), Resource::AGENT);
                prop_assert_eq!(a.body().and_then(|b| b.value().as_object().map(|m| m.len())), Some(1));
            }
        }
    }
}

/// Issue 11: a restaurant provisioned twice. Its extra agent and final customer are listed as
/// duplicates (not changes); with the platform's row naming the extra copy, that copy is
/// adopted instead and the other one is the duplicate.
#[test]
fn a_second_copy_is_a_duplicate_unless_the_platform_row_names_it() {
    let kinds = Kinds::builtin();
    let mut desired = model::bundled();
    let first = plan(&desired, &Actual::default(), &State::new(), &opts());
    let (mut actual, state) = model::applied(&kinds, &first, &Actual::default(), &State::new());
    let r0 = desired.restaurants[0].id.clone();
    let agent = actual.singles[&Resource::AGENT]
        .iter()
        .find(|a| crate::resources::agent::restaurant_of(a) == Some(r0.as_str()))
        .cloned()
        .expect("agent");
    let fc_id = crate::resources::agent::final_customer_of(&agent).expect("fc");
    let mut fc = actual.singles[&Resource::FINAL_CUSTOMER]
        .iter()
        .find(|f| f.id == fc_id)
        .cloned()
        .expect("fc");
    fc.id = ObjectId::parse("fc-copy").unwrap();
    let mut copy = agent.clone();
    copy.id = ObjectId::parse("agent-copy").unwrap();
    copy.fields
        .insert("finalCustomerId".into(), json!("fc-copy"));
    copy.fields
        .insert("createdAt".into(), json!("2099-01-01T00:00:00Z"));
    actual
        .singles
        .get_mut(&Resource::FINAL_CUSTOMER)
        .unwrap()
        .push(fc);
    actual.singles.get_mut(&Resource::AGENT).unwrap().push(copy);

    let p = plan(&desired, &actual, &state, &opts());
    assert!(!p.has_changes(), "duplicates are not changes");
    assert_eq!(p.duplicates.len(), 1, "{:#?}", p.duplicates);
    assert_eq!(p.duplicates[0].restaurant_id, r0);
    assert_eq!(
        p.duplicates[0].agents,
        [ObjectId::parse("agent-copy").unwrap()]
    );
    assert_eq!(
        p.duplicates[0].final_customers,
        [ObjectId::parse("fc-copy").unwrap()]
    );

    // Taken over with no state: the row names the copy, which wins over the older agent.
    desired.restaurants[0].platform_agent = Some(ObjectId::parse("agent-copy").unwrap());
    desired.restaurants[0].platform_final_customer = Some(ObjectId::parse("fc-copy").unwrap());
    let p = plan(&desired, &actual, &State::new(), &opts());
    let adopted: Vec<(String, String)> = p.restaurants[0]
        .actions
        .iter()
        .filter(|a| a.resource() == Resource::AGENT || a.resource() == Resource::FINAL_CUSTOMER)
        .map(|a| {
            (
                a.remote_id().unwrap_or("").to_string(),
                a.reason().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        adopted.contains(&("agent-copy".into(), "the platform row's agent_id".into())),
        "{adopted:?}"
    );
    assert!(
        adopted.contains(&(
            "fc-copy".into(),
            "the platform row's final_customer_id".into()
        )),
        "{adopted:?}"
    );
    assert_eq!(p.duplicates.len(), 1);
    assert_eq!(p.duplicates[0].agents, std::slice::from_ref(&agent.id));
    assert_eq!(p.duplicates[0].final_customers, [fc_id]);
}

/// The plan made with the lookups the controller's cache keeps (an index and the owners, built
/// apart from the plan) instead of those the plan builds.
fn with_kept(desired: &Desired, actual: &Actual, state: &State) -> Plan {
    let kinds = Kinds::builtin();
    let o = opts();
    let index = ObjectIndex::of(&kinds, actual);
    let owners = Owners::of(&kinds, state);
    let lookups = Lookups {
        index: Some(&index),
        owners: Some(&owners),
    };
    let mut planner = Planner::new(&kinds, desired, actual, lookups, state, &o);
    while let Some(batch) = planner.next_batch(usize::MAX) {
        planner.plan_batch(batch, &actual.children);
    }
    planner.finish()
}

/// What a plan says, without when it was made.
fn shown(p: &Plan) -> serde_json::Value {
    let mut v = serde_json::to_value(p).expect("plan as JSON");
    if let Some(o) = v.as_object_mut() {
        o.remove("createdAt");
    }
    v
}

/// The plan built a restaurant at a time, each batch given only the children lists it asks
/// for, as `ops` streams it.
fn batched(desired: &Desired, actual: &Actual, state: &State) -> Plan {
    let kinds = Kinds::builtin();
    let o = opts();
    let mut planner = Planner::new(&kinds, desired, actual, Lookups::default(), state, &o);
    while let Some(batch) = planner.next_batch(1) {
        let children: Children = batch
            .parents
            .iter()
            .filter_map(|k| Some((k.clone(), actual.children.get(k)?.clone())))
            .collect();
        planner.plan_batch(batch, &children);
    }
    planner.finish()
}

/// [`batched`] as `ops` runs it: the children lists of the next two batches are asked for
/// before the batch before them is planned, then each batch is rechecked and given what it
/// lacks.
fn read_ahead(desired: &Desired, actual: &Actual, state: &State) -> Plan {
    let kinds = Kinds::builtin();
    let o = opts();
    let lists = |parents: &BTreeSet<(Resource, ObjectId)>| -> Children {
        parents
            .iter()
            .filter_map(|k| Some((k.clone(), actual.children.get(k)?.clone())))
            .collect()
    };
    let mut planner = Planner::new(&kinds, desired, actual, Lookups::default(), state, &o);
    let mut ahead = std::collections::VecDeque::new();
    loop {
        while ahead.len() < 2 {
            let Some(b) = planner.next_batch(1) else {
                break;
            };
            ahead.push_back((lists(&b.parents), b));
        }
        let Some((mut children, mut batch)) = ahead.pop_front() else {
            break;
        };
        let missing: BTreeSet<_> = planner.recheck(&mut batch).into_iter().collect();
        children.extend(lists(&missing));
        planner.plan_batch(batch, &children);
    }
    planner.finish()
}

#[test]
fn a_plan_read_ahead_is_the_plan_built_at_once() {
    let kinds = Kinds::builtin();
    let desired = model::bundled();
    let first = plan(&desired, &Actual::default(), &State::new(), &opts());
    let (actual, state) = model::applied(&kinds, &first, &Actual::default(), &State::new());
    // Without state every object is adopted, so a batch read ahead may name the lists of an
    // object the batch before it takes.
    for st in [state, State::new()] {
        same_as_at_once(&desired, &actual, &st, read_ahead);
    }
}

/// Asserts that `built` plans what one pass over everything plans.
fn same_as_at_once(
    desired: &Desired,
    actual: &Actual,
    state: &State,
    built: fn(&Desired, &Actual, &State) -> Plan,
) -> Plan {
    let once = plan(desired, actual, state, &opts());
    let other = built(desired, actual, state);
    assert_eq!(
        serde_json::to_value(&once.restaurants).expect("json"),
        serde_json::to_value(&other.restaurants).expect("json")
    );
    assert_eq!(once.remote_fingerprint, other.remote_fingerprint);
    once
}

#[test]
fn a_plan_for_people_leaves_out_unchanged_restaurants_only() {
    let kinds = Kinds::builtin();
    let mut desired = model::bundled();
    // No billing: the model's account has no plan, which would give every restaurant a note.
    for r in &mut desired.restaurants {
        r.billing_plan = crate::resources::subscription::NONE.to_string();
    }
    let first = plan(&desired, &Actual::default(), &State::new(), &opts());
    let (mut actual, state) = model::applied(&kinds, &first, &Actual::default(), &State::new());
    let people = PlanOptions {
        only_changes: true,
        ..opts()
    };
    let full = plan(&desired, &actual, &state, &opts());
    assert_eq!(
        full.restaurants.len(),
        desired.restaurants.len(),
        "no-ops listed"
    );
    let short = plan(&desired, &actual, &state, &people);
    assert!(short.restaurants.is_empty(), "{:#?}", short.restaurants);
    assert_eq!(short.summary, full.summary);
    assert_eq!(short.remote_fingerprint, full.remote_fingerprint);

    // One restaurant's agent renamed on the server: only it is listed, whole.
    let r0 = desired.restaurants[0].id.clone();
    let agent = actual
        .singles
        .get_mut(&Resource::AGENT)
        .and_then(|a| {
            a.iter_mut()
                .find(|a| crate::resources::agent::restaurant_of(a) == Some(r0.as_str()))
        })
        .expect("agent");
    agent.fields.insert("name".into(), json!("renamed by hand"));
    let full = plan(&desired, &actual, &state, &opts());
    let short = plan(&desired, &actual, &state, &people);
    assert_eq!(short.restaurants.len(), 1);
    assert_eq!(short.restaurants[0].restaurant_id, r0);
    assert_eq!(
        Some(&short.restaurants[0]),
        full.restaurants.iter().find(|r| r.restaurant_id == r0)
    );
    assert_eq!(short.summary, full.summary);
}

#[test]
fn a_plan_built_batch_by_batch_is_the_plan_built_at_once() {
    let kinds = Kinds::builtin();
    let desired = model::bundled();
    let first = plan(&desired, &Actual::default(), &State::new(), &opts());
    let (mut actual, state) = model::applied(&kinds, &first, &Actual::default(), &State::new());
    // A stray tool, and state lost for adoption: both must come out the same.
    if let Some(tools) = actual
        .children
        .iter_mut()
        .find(|(k, _)| k.0 == Resource::TOOL)
        .map(|(_, v)| v)
    {
        let mut stray = tools[0].clone();
        stray.id = ObjectId::parse("stray-1").expect("valid");
        stray.fields.insert("name".into(), json!("not_declared"));
        tools.push(stray);
    }
    for st in [state, State::new()] {
        let once = same_as_at_once(&desired, &actual, &st, batched);
        assert!(once.has_changes() || once.summary.adopt > 0);
    }
}

#[test]
fn restaurants_share_one_body_per_tool() {
    let desired = model::bundled();
    let plan = plan(&desired, &Actual::default(), &State::new(), &opts());
    let bodies = |i: usize| -> Vec<Body> {
        plan.restaurants[i]
            .actions
            .iter()
            .filter(|a| a.resource() == Resource::TOOL)
            .filter_map(|a| match a {
                Action::Create { body, .. } => Some(body.clone()),
                _ => None,
            })
            .collect()
    };
    let (a, b) = (bodies(0), bodies(1));
    assert_eq!(a.len(), 12);
    assert!(a.iter().zip(&b).all(|(x, y)| Body::ptr_eq(x, y)));
    assert!(a.iter().all(|x| !x.is_packed()));
    // The agent's own body is its own, kept as text.
    let agent = |i: usize| plan.restaurants[i].actions[1].body().cloned();
    assert_ne!(agent(0), agent(1));
    assert!(agent(0).is_some_and(|b| b.is_packed()));
}

/// The plan of `actual` with its agents and final customers packed, as a plan reads them.
fn packed(desired: &Desired, actual: &Actual, state: &State) -> Plan {
    let kinds = Kinds::builtin();
    let mut actual = actual.clone();
    for k in kinds.singletons() {
        if let (Some(keep), Some(list)) = (k.lookup_fields(), actual.singles.get_mut(&k.resource()))
        {
            list.iter_mut().for_each(|o| o.pack(keep));
        }
    }
    assert!(actual.singles[&Resource::AGENT]
        .iter()
        .all(|a| a.is_packed() && a.get("basePrompt").is_none()));
    plan(desired, &actual, state, &opts())
}

#[test]
fn packed_server_objects_plan_what_whole_ones_plan() {
    let kinds = Kinds::builtin();
    let desired = model::bundled();
    let first = plan(&desired, &Actual::default(), &State::new(), &opts());
    let (mut actual, state) = model::applied(&kinds, &first, &Actual::default(), &State::new());
    // Unchanged, with state and without it (everything adopted through the lookup fields).
    for st in [state.clone(), State::new()] {
        same_as_at_once(&desired, &actual, &st, packed);
    }
    // Fields that only the comparison reads, edited on the server: still seen once packed.
    let agents = actual.singles.get_mut(&Resource::AGENT).expect("agents");
    agents[0]
        .fields
        .insert("basePrompt".into(), json!("edited by hand"));
    let fcs = actual
        .singles
        .get_mut(&Resource::FINAL_CUSTOMER)
        .expect("final customers");
    fcs[0]
        .fields
        .insert("phone".into(), json!("+33 1 00 00 00 00"));
    let edited = same_as_at_once(&desired, &actual, &state, packed);
    assert_eq!(edited.summary.change, 2, "{:#?}", edited.restaurants);
}
