//! ToolConfigs: twelve per agent, keyed by name, replaced whole on update. Tools under the
//! agent that no file declares, and duplicates of a declared name, are deleted.

use async_trait::async_trait;
use serde_json::Value;

use super::{DesiredObject, Kind, Parents, Shape};
use crate::model::ids::{ObjectId, RestaurantId, ToolId};
use crate::model::spec::{DesiredRestaurant, ToolSpec};
use crate::plan::Resource;
use crate::remote::{Client, ClientError, Created, Route, Secrets, ServerObject};
use crate::state::{Change, RestaurantState};

const LIST: &str = "/api/agents/:id/tools";
const ONE: &str = "/api/agents/:id/tools/:toolId";

pub struct Tool;

/// Keys of a ToolConfig that sipform sets, with null for the optional ones a spec leaves out,
/// so that a server value the spec does not want is seen (and cleared).
pub fn body(t: &ToolSpec) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        for k in [
            "http",
            "contextUpdates",
            "condition",
            "extraCostResponseField",
        ] {
            m.entry(k.to_string()).or_insert(Value::Null);
        }
    }
    v
}

#[async_trait]
impl Kind for Tool {
    fn resource(&self) -> Resource {
        Resource::TOOL
    }

    fn assumed_routes(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("GET", "/api/agents/:id/tools"),
            ("PUT", "/api/agents/:id/tools/:id"),
            ("DELETE", "/api/agents/:id/tools/:id"),
        ]
    }

    fn shape(&self) -> Shape {
        Shape::Many
    }

    fn parent(&self) -> Option<Resource> {
        Some(Resource::AGENT)
    }

    fn desired(&self, r: &DesiredRestaurant) -> Vec<DesiredObject> {
        r.tools
            .iter()
            .zip(r.tools.bodies(body))
            .map(|(t, b)| DesiredObject {
                key: t.name.clone(),
                body: b.clone(),
            })
            .collect()
    }

    fn update_whole(&self) -> bool {
        true
    }

    fn declared_in(&self) -> &'static str {
        "tools/"
    }

    fn recorded(&self, st: &RestaurantState, key: &str) -> Option<ObjectId> {
        st.tools.get(key)?.to_object_id().ok()
    }

    fn change(
        &self,
        restaurant: &RestaurantId,
        key: &str,
        id: Option<&ObjectId>,
        _secrets: Option<&Secrets>,
    ) -> Change {
        Change::Tool {
            restaurant: restaurant.clone(),
            name: key.to_string(),
            id: id.map(ToolId::from),
        }
    }

    async fn list(
        &self,
        client: &Client,
        agent: &ObjectId,
    ) -> Result<Vec<ServerObject>, ClientError> {
        let route = Route::new(LIST, &[agent.as_str()]);
        super::list_at(client, &route).await
    }

    async fn create(
        &self,
        client: &Client,
        parents: &Parents,
        body: &Value,
    ) -> Result<Created, ClientError> {
        let agent = parents.require(Resource::AGENT)?;
        let route = Route::new(LIST, &[agent.as_str()]);
        client.create(&route, body).await
    }

    async fn find_created(
        &self,
        client: &Client,
        parents: &Parents,
        _restaurant: &RestaurantId,
        body: &Value,
        taken: &(dyn for<'x> Fn(&'x ObjectId) -> bool + Sync),
    ) -> Result<Option<Created>, ClientError> {
        let agent = parents.require(Resource::AGENT)?;
        let name = body.get("name").and_then(Value::as_str);
        let list = self.list(client, agent).await?;
        Ok(super::unclaimed(list, |o| o.name() == name, taken))
    }

    async fn update(
        &self,
        client: &Client,
        parents: &Parents,
        id: &ObjectId,
        body: &Value,
    ) -> Result<(), ClientError> {
        let agent = parents.require(Resource::AGENT)?;
        client
            .put(&Route::new(ONE, &[agent.as_str(), id.as_str()]), body)
            .await
    }

    async fn delete(
        &self,
        client: &Client,
        parents: &Parents,
        id: &ObjectId,
    ) -> Result<(), ClientError> {
        let agent = parents.require(Resource::AGENT)?;
        client
            .delete(&Route::new(ONE, &[agent.as_str(), id.as_str()]))
            .await
    }
}
