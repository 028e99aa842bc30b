//! Subscriptions: each final customer is subscribed to one billing plan (`billing.plan` in
//! `sipform.yaml`), as the platform's own provisioning does, so the restaurant is billed.
//!
//! Shape: many under the final customer, keyed by plan id, though one is wanted. The API lists
//! subscriptions per final customer (`GET /api/final-customers/:id/subscriptions`), which is
//! how refresh reads a many-per-parent kind; a one-per-restaurant kind is listed per account,
//! which this API cannot do. Keyed by plan id, a platform-made subscription to the wanted plan
//! is adopted, and any other is seen (a duplicate, an old plan).
//!
//! The server has no update: a subscription to another plan is replaced (delete, then create),
//! which [`Kind::replaces`] guards behind `--allow-replace`. State keeps one id per restaurant
//! (whatever the plan), so a plan change finds the old subscription to replace.
//!
//! The plan id is resolved from the account's plans, read once by refresh. When the account is
//! created by the same run, nothing can be read at plan time: the body then carries the choice
//! (`{"plan": "default"}`) and the create resolves it, reading the plans once per run (the
//! only state a kind holds: a cache of that one read).

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::{Actual, DesiredObject, Kind, Parents, Shape};
use crate::model::ids::{ObjectId, RestaurantId};
use crate::model::spec::DesiredRestaurant;
use crate::plan::Resource;
use crate::remote::{Client, ClientError, Created, Route, Secrets, ServerObject};
use crate::state::{Change, RestaurantState};

const LIST: &str = "/api/final-customers/:id/subscriptions";
const ONE: &str = "/api/subscriptions/:id";
const PLANS: &str = "/api/plans";

/// The one slot in state: a restaurant records one subscription, whatever its plan.
const SLOT: &str = "billing";

/// `billing.plan` values with a meaning of their own.
pub const DEFAULT: &str = "default";
pub(crate) const NONE: &str = "none";

#[derive(Default)]
pub struct Subscription {
    /// The account's plans, read at most once per run by a create that could not be resolved
    /// at plan time (the account did not exist yet).
    plans: Mutex<Option<(ObjectId, Vec<ServerObject>)>>,
}

/// The account's plans (`GET /api/plans?accountId=`).
pub async fn list_plans(
    client: &Client,
    account: &ObjectId,
) -> Result<Vec<ServerObject>, ClientError> {
    let route = Route::new(PLANS, &[]).query("accountId", account.as_str());
    super::list_at(client, &route).await
}

/// The plan `choice` names among `plans`: `default` is the platform's rule (the first active
/// plan that is not an option, by sortOrder); another value is an active plan's name.
/// `Ok(None)` for `none`; `Err` says why no plan fits.
pub fn resolve<'a>(
    plans: &'a [ServerObject],
    choice: &str,
) -> Result<Option<&'a ServerObject>, String> {
    let active = |p: &&ServerObject| p.get("isActive") != Some(&Value::Bool(false));
    match choice {
        NONE => Ok(None),
        DEFAULT => {
            let mut candidates: Vec<&ServerObject> = plans
                .iter()
                .filter(active)
                .filter(|p| p.get("isOption") != Some(&Value::Bool(true)))
                .collect();
            // Stable: plans of equal sortOrder keep the server's order.
            candidates.sort_by(|a, b| {
                let key = |p: &ServerObject| p.get("sortOrder").and_then(Value::as_f64);
                key(a)
                    .unwrap_or(f64::MAX)
                    .total_cmp(&key(b).unwrap_or(f64::MAX))
            });
            candidates.first().copied().map(Some).ok_or_else(|| {
                "billing.plan is `default`, but the account has no active plan that is not an option: no subscription is planned".to_string()
            })
        }
        name => {
            let named: Vec<&ServerObject> = plans
                .iter()
                .filter(active)
                .filter(|p| p.name() == Some(name))
                .collect();
            match named.as_slice() {
                [one] => Ok(Some(one)),
                [] => Err(format!(
                    "billing.plan names {name:?}, but the account has no active plan of that name: no subscription is planned"
                )),
                more => Err(format!(
                    "billing.plan names {name:?}, but {} active plans have that name: no subscription is planned",
                    more.len()
                )),
            }
        }
    }
}

fn plan_of(o: &ServerObject) -> Option<&str> {
    o.str_field("planId")
}

impl Subscription {
    /// The plan id a create sends: the body's, else the choice resolved against the account's
    /// plans (read once per run).
    async fn plan_id(
        &self,
        client: &Client,
        account: &ObjectId,
        body: &Value,
    ) -> Result<String, ClientError> {
        if let Some(id) = body.get("planId").and_then(Value::as_str) {
            return Ok(id.to_string());
        }
        let choice = body.get("plan").and_then(Value::as_str).unwrap_or(DEFAULT);
        let mut cache = self.plans.lock().await;
        if cache.as_ref().is_none_or(|(a, _)| a != account) {
            *cache = Some((account.clone(), list_plans(client, account).await?));
        }
        let plans = cache.as_ref().map_or(&[][..], |(_, p)| p.as_slice());
        match resolve(plans, choice) {
            Ok(Some(p)) => Ok(p.id.as_str().to_string()),
            Ok(None) => Err(ClientError::Build(
                "billing.plan is `none`: no subscription to create".into(),
            )),
            Err(why) => Err(ClientError::Build(why)),
        }
    }
}

#[async_trait]
impl Kind for Subscription {
    fn resource(&self) -> Resource {
        Resource::SUBSCRIPTION
    }

    fn shape(&self) -> Shape {
        Shape::Many
    }

    fn parent(&self) -> Option<Resource> {
        Some(Resource::FINAL_CUSTOMER)
    }

    fn needs_account_data(&self, r: &DesiredRestaurant) -> bool {
        r.billing_plan != NONE
    }

    async fn account_data(
        &self,
        client: &Client,
        account: &ObjectId,
    ) -> Result<Option<(Resource, Vec<ServerObject>)>, ClientError> {
        Ok(Some((Resource::PLAN, list_plans(client, account).await?)))
    }

    /// Without the account's plans: the choice, resolved when created.
    fn desired(&self, r: &DesiredRestaurant) -> Vec<DesiredObject> {
        if r.billing_plan == NONE {
            return Vec::new();
        }
        vec![DesiredObject {
            key: r.billing_plan.clone(),
            body: json!({ "plan": r.billing_plan }),
        }]
    }

    fn desired_in(
        &self,
        r: &DesiredRestaurant,
        actual: &Actual,
    ) -> Result<Vec<DesiredObject>, String> {
        if actual.account.is_none() {
            return Ok(self.desired(r));
        }
        Ok(resolve(actual.singles(Resource::PLAN), &r.billing_plan)?
            .map(|p| DesiredObject {
                key: p.id.as_str().to_string(),
                body: json!({ "planId": p.id.as_str() }),
            })
            .into_iter()
            .collect())
    }

    fn update_whole(&self) -> bool {
        true
    }

    fn replaces(&self) -> bool {
        true
    }

    fn declared_in(&self) -> &'static str {
        "billing.plan"
    }

    fn key_of<'a>(&self, o: &'a ServerObject) -> Option<&'a str> {
        plan_of(o)
    }

    fn recorded(&self, st: &RestaurantState, _key: &str) -> Option<ObjectId> {
        st.object(Resource::SUBSCRIPTION.as_str(), SLOT).cloned()
    }

    fn change(
        &self,
        restaurant: &RestaurantId,
        _key: &str,
        id: Option<&ObjectId>,
        _secrets: Option<&Secrets>,
    ) -> Change {
        Change::Object {
            restaurant: restaurant.clone(),
            kind: Resource::SUBSCRIPTION.as_str().to_string(),
            key: SLOT.to_string(),
            id: id.cloned(),
        }
    }

    async fn list(
        &self,
        client: &Client,
        final_customer: &ObjectId,
    ) -> Result<Vec<ServerObject>, ClientError> {
        let route = Route::new(LIST, &[final_customer.as_str()]);
        super::list_at(client, &route).await
    }

    async fn create(
        &self,
        client: &Client,
        parents: &Parents,
        body: &Value,
    ) -> Result<Created, ClientError> {
        let fc = parents.require(Resource::FINAL_CUSTOMER)?;
        let plan = self.plan_id(client, &parents.account, body).await?;
        let route = Route::new(LIST, &[fc.as_str()]);
        client.create(&route, &json!({ "planId": plan })).await
    }

    async fn find_created(
        &self,
        client: &Client,
        parents: &Parents,
        _restaurant: &RestaurantId,
        body: &Value,
        taken: &(dyn for<'x> Fn(&'x ObjectId) -> bool + Sync),
    ) -> Result<Option<Created>, ClientError> {
        let fc = parents.require(Resource::FINAL_CUSTOMER)?;
        let plan = self.plan_id(client, &parents.account, body).await?;
        let list = self.list(client, fc).await?;
        Ok(super::unclaimed(
            list,
            |o| plan_of(o) == Some(plan.as_str()),
            taken,
        ))
    }

    /// Never planned: a change replaces the subscription ([`Kind::replaces`]).
    async fn update(
        &self,
        _client: &Client,
        _parents: &Parents,
        _id: &ObjectId,
        _body: &Value,
    ) -> Result<(), ClientError> {
        Err(ClientError::Build(
            "a subscription cannot be updated, only replaced".into(),
        ))
    }

    async fn delete(
        &self,
        client: &Client,
        _parents: &Parents,
        id: &ObjectId,
    ) -> Result<(), ClientError> {
        client.delete(&Route::new(ONE, &[id.as_str()])).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plans() -> Vec<ServerObject> {
        let list = json!([
            {"id": "p3", "name": "Old", "isOption": false, "isActive": false, "sortOrder": 0},
            {"id": "p2", "name": "Extra", "isOption": true, "isActive": true, "sortOrder": 0},
            {"id": "p1", "name": "Pro", "isOption": false, "isActive": true, "sortOrder": 2},
            {"id": "p0", "name": "Standard", "isOption": false, "isActive": true, "sortOrder": 1},
        ]);
        let Value::Array(a) = list else { return vec![] };
        a.into_iter()
            .filter_map(|v| match v {
                Value::Object(o) => ServerObject::parse(o, String::new).ok().map(|x| x.0),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_default_is_the_first_active_non_option_by_sort_order() {
        let p = plans();
        assert_eq!(
            resolve(&p, DEFAULT).ok().flatten().map(|p| p.id.as_str()),
            Some("p0")
        );
        assert_eq!(
            resolve(&p, "Pro").ok().flatten().map(|p| p.id.as_str()),
            Some("p1")
        );
        assert!(resolve(&p, NONE).is_ok_and(|p| p.is_none()));
        assert!(resolve(&p, "Old").is_err(), "inactive plans are not chosen");
        assert!(resolve(&p[..2], DEFAULT).is_err());
    }
}
