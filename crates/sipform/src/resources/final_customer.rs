//! The final customer: one per restaurant, the billing entity, under the account.
//!
//! Adoption when state knows none: the final customer the platform's row names
//! (`final_customer_id`, database mode) when it exists, else the one the restaurant's agent
//! points at, else one of the desired name and email that no agent references.

use async_trait::async_trait;
use serde_json::Value;

use super::{AdoptCx, Adoption, DesiredObject, Index, Kind, Parents, Shape};
use crate::model::ids::{FinalCustomerId, ObjectId, RestaurantId};
use crate::model::spec::DesiredRestaurant;
use crate::plan::{Reason, Resource};
use crate::remote::{Client, ClientError, Created, Route, Secrets, ServerObject};
use crate::state::{Change, RestaurantState};

const LIST: &str = "/api/final-customers";
const ONE: &str = "/api/final-customers/:id";

pub struct FinalCustomer;

/// Whether a server final customer has the desired name and email (absent email = null).
pub(crate) fn same_identity(o: &ServerObject, body: &Value) -> bool {
    o.get("name") == body.get("name")
        && crate::compare::same(
            o.get("email").unwrap_or(&Value::Null),
            body.get("email").unwrap_or(&Value::Null),
        )
}

/// The final customer to adopt for a restaurant whose agent (if any) is `agent`: the one the
/// agent points at, else the first of the desired name and email that no agent references
/// and no other restaurant takes. Several such candidates are reported (the note).
pub fn adopt<'a>(
    desired: &Value,
    agent: Option<&ServerObject>,
    index: &Index<'a>,
    free: &dyn Fn(&ObjectId) -> bool,
) -> (Option<(&'a ServerObject, Reason)>, Option<String>) {
    let via_agent = agent
        .and_then(super::agent::final_customer_of)
        .filter(|id| free(id))
        .and_then(|id| index.by_id(Resource::FINAL_CUSTOMER, &id));
    if let Some(f) = via_agent {
        return (Some((f, Reason::AgentsFinalCustomer)), None);
    }
    let name = desired.get("name").and_then(Value::as_str).unwrap_or("");
    let candidates: Vec<&ServerObject> = index
        .by_key(Resource::FINAL_CUSTOMER, name)
        .iter()
        .copied()
        .filter(|f| {
            same_identity(f, desired)
                && free(&f.id)
                && !index.linked(Resource::FINAL_CUSTOMER, &f.id)
        })
        .collect();
    let note = (candidates.len() > 1).then(|| {
        let ids: Vec<&str> = candidates.iter().map(|f| f.id.as_str()).collect();
        format!(
            "{} final customers match this restaurant's name and email ({}); sipform adopts {} and no other restaurant may take it",
            ids.len(),
            ids.join(", "),
            ids[0]
        )
    });
    (
        candidates
            .first()
            .map(|f| (*f, Reason::FoundByNameAndEmail)),
        note,
    )
}

#[async_trait]
impl Kind for FinalCustomer {
    fn resource(&self) -> Resource {
        Resource::FINAL_CUSTOMER
    }

    fn assumed_routes(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("GET", "/api/final-customers?accountId=:id"),
            ("GET", "/api/final-customers/:id"),
            ("PUT", "/api/final-customers/:id"),
            ("DELETE", "/api/final-customers/:id"),
        ]
    }

    fn shape(&self) -> Shape {
        Shape::One
    }

    fn named_by_row(&self, r: &DesiredRestaurant) -> Option<ObjectId> {
        r.platform_final_customer.clone()
    }

    fn parent(&self) -> Option<Resource> {
        Some(Resource::ACCOUNT)
    }

    fn desired(&self, r: &DesiredRestaurant) -> Vec<DesiredObject> {
        vec![DesiredObject {
            key: r.final_customer.name.clone(),
            body: serde_json::to_value(&r.final_customer).unwrap_or(Value::Null),
        }]
    }

    fn update_whole(&self) -> bool {
        false
    }

    fn lookup_fields(&self) -> Option<&'static [&'static str]> {
        Some(&["name", "email"])
    }

    fn adopt<'a>(&self, cx: &AdoptCx<'_, 'a>) -> Adoption<'a> {
        let row = cx.wanted.platform_final_customer.as_ref();
        if let Some(f) = row
            .filter(|id| (cx.free)(id))
            .and_then(|id| cx.index.by_id(Resource::FINAL_CUSTOMER, id))
        {
            return Adoption {
                found: Some((f, Reason::PlatformFinalCustomerId)),
                note: None,
            };
        }
        let (found, note) = adopt(
            cx.desired,
            cx.matched.get(&Resource::AGENT).copied(),
            cx.index,
            cx.free,
        );
        Adoption { found, note }
    }

    fn recorded(&self, st: &RestaurantState, _key: &str) -> Option<ObjectId> {
        st.final_customer_id.as_ref()?.to_object_id().ok()
    }

    fn change(
        &self,
        restaurant: &RestaurantId,
        _key: &str,
        id: Option<&ObjectId>,
        _secrets: Option<&Secrets>,
    ) -> Change {
        Change::FinalCustomer {
            restaurant: restaurant.clone(),
            id: id.map(FinalCustomerId::from),
        }
    }

    async fn list(
        &self,
        client: &Client,
        account: &ObjectId,
    ) -> Result<Vec<ServerObject>, ClientError> {
        super::list_of_account(client, LIST, account, None).await
    }

    async fn list_packed(
        &self,
        client: &Client,
        account: &ObjectId,
    ) -> Result<Vec<ServerObject>, ClientError> {
        super::list_of_account(client, LIST, account, self.lookup_fields()).await
    }

    async fn create(
        &self,
        client: &Client,
        parents: &Parents,
        body: &Value,
    ) -> Result<Created, ClientError> {
        let mut body = body.clone();
        if let Value::Object(m) = &mut body {
            m.insert("accountId".into(), parents.account.as_str().into());
        }
        let route = Route::new(LIST, &[]);
        client.create(&route, &body).await
    }

    async fn find_created(
        &self,
        client: &Client,
        parents: &Parents,
        _restaurant: &RestaurantId,
        body: &Value,
        taken: &(dyn for<'x> Fn(&'x ObjectId) -> bool + Sync),
    ) -> Result<Option<Created>, ClientError> {
        let list = self.list(client, &parents.account).await?;
        Ok(super::unclaimed(list, |o| same_identity(o, body), taken))
    }

    async fn read_one(
        &self,
        client: &Client,
        id: &ObjectId,
    ) -> Result<Option<ServerObject>, ClientError> {
        super::read_one_at(client, ONE, id).await
    }

    async fn update(
        &self,
        client: &Client,
        _parents: &Parents,
        id: &ObjectId,
        body: &Value,
    ) -> Result<(), ClientError> {
        client.put(&Route::new(ONE, &[id.as_str()]), body).await
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
