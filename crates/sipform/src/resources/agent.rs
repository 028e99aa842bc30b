//! The agent: one per restaurant, under the account and its final customer. It carries the
//! tokens the platform needs (recorded, never printed).
//!
//! Adoption when state knows none: the agent the platform's row names (`agent_id`, database
//! mode) when it exists and claims no other restaurant; else the oldest agent whose
//! `config.restaurantId` is the restaurant's. Others claiming it are reported, never touched.

use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;

use super::{AdoptCx, Adoption, DesiredObject, Index, Kind, Parents, Shape};
use crate::model::ids::{AgentId, ObjectId, RestaurantId};
use crate::model::secret::Secret;
use crate::model::spec::DesiredRestaurant;
use crate::plan::{Reason, Resource};
use crate::remote::{Client, ClientError, Created, Route, Secrets, ServerObject};
use crate::state::{AgentTokens, Change, RestaurantState};

const LIST: &str = "/api/agents";
const ONE: &str = "/api/agents/:id";

pub struct Agent;

/// `config.restaurantId` of a server agent.
pub(crate) fn restaurant_of(o: &ServerObject) -> Option<&str> {
    o.lookup("config.restaurantId")?.as_str()
}

/// The final customer a server agent points at (ignored when not a valid id).
pub(crate) fn final_customer_of(o: &ServerObject) -> Option<ObjectId> {
    o.str_field("finalCustomerId")
        .and_then(|s| ObjectId::parse(s).ok())
}

/// Oldest first: by `createdAt`, then id.
fn age_key(o: &ServerObject) -> (&str, &str) {
    (o.str_field("createdAt").unwrap_or(""), o.id.as_str())
}

/// The agent a restaurant adopts: the oldest that claims it and no one else has. The others
/// that claim it are reported by diff on every plan.
pub fn adopt<'a>(
    claimants: &[&'a ServerObject],
    free: &dyn Fn(&ObjectId) -> bool,
) -> Option<(&'a ServerObject, Reason)> {
    claimants
        .iter()
        .copied()
        .filter(|a| free(&a.id))
        .min_by(|a, b| age_key(a).cmp(&age_key(b)))
        .map(|a| (a, Reason::FoundByRestaurantId))
}

/// The agent the platform's row names, when it exists, no other restaurant's state holds it,
/// and its `config.restaurantId` (if any) is this restaurant's: the platform decides which of
/// several agents a restaurant uses.
pub(crate) fn by_row<'a>(
    restaurant: &RestaurantId,
    row: Option<&ObjectId>,
    index: &Index<'a>,
    free: &dyn Fn(&ObjectId) -> bool,
) -> Option<&'a ServerObject> {
    let id = row.filter(|id| free(id))?;
    index
        .by_id(Resource::AGENT, id)
        .filter(|a| restaurant_of(a).is_none_or(|r| r == restaurant.as_str()))
}

fn tokens(secrets: &Secrets) -> Option<AgentTokens> {
    let api = secrets.api_token.clone()?;
    Some(AgentTokens {
        api_token: api,
        public_token: secrets
            .public_token
            .clone()
            .unwrap_or_else(|| Secret::new(String::new())),
    })
}

async fn get(client: &Client, id: &ObjectId) -> Result<(ServerObject, Secrets), ClientError> {
    let route = Route::new(ONE, &[id.as_str()]);
    super::one(client.get_one(&route).await?, &route, Method::GET)
}

#[async_trait]
impl Kind for Agent {
    fn resource(&self) -> Resource {
        Resource::AGENT
    }

    fn assumed_routes(&self) -> &'static [(&'static str, &'static str)] {
        &[("DELETE", "/api/agents/:id")]
    }

    fn shape(&self) -> Shape {
        Shape::One
    }

    fn named_by_row(&self, r: &DesiredRestaurant) -> Option<ObjectId> {
        r.platform_agent.clone()
    }

    fn parent(&self) -> Option<Resource> {
        Some(Resource::FINAL_CUSTOMER)
    }

    fn desired(&self, r: &DesiredRestaurant) -> Vec<DesiredObject> {
        vec![DesiredObject {
            key: r.agent.name.clone(),
            body: serde_json::to_value(&r.agent).unwrap_or(Value::Null),
        }]
    }

    fn update_whole(&self) -> bool {
        false
    }

    fn claims<'a>(&self, o: &'a ServerObject) -> Option<&'a str> {
        restaurant_of(o)
    }

    fn lookup_fields(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "name",
            "config.restaurantId",
            "finalCustomerId",
            "createdAt",
        ])
    }

    fn links(&self, o: &ServerObject) -> Option<(Resource, ObjectId)> {
        Some((Resource::FINAL_CUSTOMER, final_customer_of(o)?))
    }

    fn adopt<'a>(&self, cx: &AdoptCx<'_, 'a>) -> Adoption<'a> {
        if let Some(a) = by_row(
            cx.restaurant,
            cx.wanted.platform_agent.as_ref(),
            cx.index,
            cx.free,
        ) {
            return Adoption {
                found: Some((a, Reason::PlatformAgentId)),
                note: None,
            };
        }
        Adoption {
            found: adopt(
                &cx.index.claimants(Resource::AGENT, cx.restaurant.as_str()),
                cx.free,
            ),
            note: None,
        }
    }

    fn recorded(&self, st: &RestaurantState, _key: &str) -> Option<ObjectId> {
        st.agent_id.as_ref()?.to_object_id().ok()
    }

    fn change(
        &self,
        restaurant: &RestaurantId,
        _key: &str,
        id: Option<&ObjectId>,
        secrets: Option<&Secrets>,
    ) -> Change {
        Change::Agent {
            restaurant: restaurant.clone(),
            id: id.map(AgentId::from),
            tokens: secrets.and_then(tokens),
        }
    }

    /// Agents are listed per account, not per final customer.
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
        let fc = parents.require(Resource::FINAL_CUSTOMER)?;
        let mut body = body.clone();
        if let Value::Object(m) = &mut body {
            m.insert("accountId".into(), parents.account.as_str().into());
            m.insert("finalCustomerId".into(), fc.as_str().into());
        }
        let route = Route::new(LIST, &[]);
        client.create(&route, &body).await
    }

    async fn find_created(
        &self,
        client: &Client,
        parents: &Parents,
        restaurant: &RestaurantId,
        _body: &Value,
        taken: &(dyn for<'x> Fn(&'x ObjectId) -> bool + Sync),
    ) -> Result<Option<Created>, ClientError> {
        let list = self.list(client, &parents.account).await?;
        let found = list
            .into_iter()
            .find(|o| restaurant_of(o) == Some(restaurant.as_str()) && !taken(&o.id));
        match found {
            // A list may come without tokens: read the agent whole.
            Some(o) => get(client, &o.id).await.map(|found| Some(found.into())),
            None => Ok(None),
        }
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

    /// The server deletes the agent's tools with it.
    async fn delete(
        &self,
        client: &Client,
        _parents: &Parents,
        id: &ObjectId,
    ) -> Result<(), ClientError> {
        client.delete(&Route::new(ONE, &[id.as_str()])).await
    }

    /// Tokens for state and the platform's row: one read, no write.
    async fn adopted(
        &self,
        client: &Client,
        restaurant: &RestaurantId,
        key: &str,
        id: &ObjectId,
    ) -> Result<Change, ClientError> {
        let (_, secrets) = get(client, id).await?;
        Ok(self.change(restaurant, key, Some(id), Some(&secrets)))
    }
}
