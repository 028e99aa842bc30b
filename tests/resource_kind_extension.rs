//! The extension point, proven from outside the crate: a toy resource kind — a "note" per agent,
//! keyed by name — added with `Kinds::with`, with no change to sipform. diff plans it, apply
//! creates, updates and deletes it, state records it in the generic slot, and a second plan is
//! empty. Its "server" is a map in this file: the kind's calls are its own business.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use sipform::apply::{self, Silent};
use sipform::config::{Overrides, Settings};
use sipform::diff::{self, PlanOptions};
use sipform::model::ids::{ObjectId, RestaurantId};
use sipform::model::resource::ResourceNames;
use sipform::model::spec::{DesiredRestaurant, StateConfig};
use sipform::ops::Workspace;
use sipform::plan::{Op, Plan, Resource};
use sipform::refresh;
use sipform::remote::{Client, ClientError, Created, Secrets, ServerObject};
use sipform::resources::{DesiredObject, Kind, Kinds, Parents, Shape};
use sipform::state::{async_trait, Change, RestaurantState};
use sipform_emulator::{Emulator, EmulatorConfig};

const NOTE: Resource = Resource::custom(&ResourceNames::new("note", "note"));

/// Notes under agents: (agent id, note id) → fields.
#[derive(Default)]
struct Note {
    server: Mutex<BTreeMap<(String, String), serde_json::Map<String, Value>>>,
    next: Mutex<u32>,
    greeting: Mutex<String>,
}

impl Note {
    fn count(&self) -> usize {
        self.server.lock().map(|s| s.len()).unwrap_or(0)
    }
}

#[async_trait]
impl Kind for Note {
    fn resource(&self) -> Resource {
        NOTE
    }

    fn shape(&self) -> Shape {
        Shape::Many
    }

    fn parent(&self) -> Option<Resource> {
        Some(Resource::AGENT)
    }

    fn desired(&self, r: &DesiredRestaurant) -> Vec<DesiredObject> {
        let greeting = self.greeting.lock().map(|g| g.clone()).unwrap_or_default();
        vec![DesiredObject {
            key: "greeting".into(),
            body: json!({"name": "greeting", "text": format!("{greeting} {}", r.agent.name)}),
        }]
    }

    fn update_whole(&self) -> bool {
        true
    }

    fn recorded(&self, st: &RestaurantState, key: &str) -> Option<ObjectId> {
        st.objects.get("note")?.get(key).cloned()
    }

    fn change(
        &self,
        restaurant: &RestaurantId,
        key: &str,
        id: Option<&ObjectId>,
        _secrets: Option<&Secrets>,
    ) -> Change {
        Change::Object {
            restaurant: restaurant.clone(),
            kind: "note".into(),
            key: key.into(),
            id: id.cloned(),
        }
    }

    async fn list(
        &self,
        _client: &Client,
        agent: &ObjectId,
    ) -> Result<Vec<ServerObject>, ClientError> {
        let server = self
            .server
            .lock()
            .map_err(|_| ClientError::Build("poisoned".into()))?;
        Ok(server
            .iter()
            .filter(|((a, _), _)| a == agent.as_str())
            .map(|((_, id), fields)| {
                ServerObject::new(
                    ObjectId::parse(id).expect("ids made here are valid"),
                    fields.clone(),
                )
            })
            .collect())
    }

    async fn create(
        &self,
        _client: &Client,
        parents: &Parents,
        body: &Value,
    ) -> Result<Created, ClientError> {
        let agent = parents.require(Resource::AGENT)?.clone();
        let id = {
            let mut n = self
                .next
                .lock()
                .map_err(|_| ClientError::Build("poisoned".into()))?;
            *n += 1;
            format!("note-{n}")
        };
        let fields = body.as_object().cloned().unwrap_or_default();
        self.server
            .lock()
            .map_err(|_| ClientError::Build("poisoned".into()))?
            .insert((agent.to_string(), id.clone()), fields.clone());
        Ok((
            ServerObject::new(ObjectId::parse(&id).expect("valid"), fields),
            Secrets::default(),
        )
            .into())
    }

    async fn find_created(
        &self,
        _client: &Client,
        _parents: &Parents,
        _restaurant: &RestaurantId,
        _body: &Value,
        _taken: &(dyn for<'x> Fn(&'x ObjectId) -> bool + Sync),
    ) -> Result<Option<Created>, ClientError> {
        Ok(None)
    }

    async fn update(
        &self,
        _client: &Client,
        parents: &Parents,
        id: &ObjectId,
        body: &Value,
    ) -> Result<(), ClientError> {
        let agent = parents.require(Resource::AGENT)?.to_string();
        let mut server = self
            .server
            .lock()
            .map_err(|_| ClientError::Build("poisoned".into()))?;
        if let Some(f) = server.get_mut(&(agent, id.to_string())) {
            *f = body.as_object().cloned().unwrap_or_default();
        }
        Ok(())
    }

    async fn delete(
        &self,
        _client: &Client,
        parents: &Parents,
        id: &ObjectId,
    ) -> Result<(), ClientError> {
        let agent = parents.require(Resource::AGENT)?.to_string();
        self.server
            .lock()
            .map_err(|_| ClientError::Build("poisoned".into()))?
            .remove(&(agent, id.to_string()));
        Ok(())
    }
}

async fn plan(ws: &Workspace, kinds: &Kinds, client: &Client) -> Plan {
    let state = ws.state().await.expect("state");
    let actual = refresh::refresh_with(
        kinds,
        client,
        &ws.settings().account.name,
        ws.desired(),
        &state,
        None,
    )
    .await
    .expect("refresh");
    let opts = PlanOptions {
        allow_destroy: false,
        targets: BTreeSet::new(),
        ..PlanOptions::default()
    };
    diff::plan_with(kinds, ws.desired(), &actual, &state, &opts)
}

async fn apply(ws: &Workspace, kinds: &Kinds, client: &Client, plan: &Plan) {
    let state = ws.state().await.expect("state");
    let writer = ws.writer(state);
    let report = apply::apply_with(kinds, plan, client, &writer, &Silent).await;
    assert!(!report.failed(), "{}", sipform::output::report(&report));
}

fn count(plan: &Plan, op: Op) -> usize {
    plan.actions()
        .filter(|a| a.resource() == NOTE && a.op() == op)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kind_added_from_outside_is_planned_applied_and_recorded() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let scratch = tempfile::tempdir().expect("tempdir");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let overrides = Overrides {
        server_url: Some(emu.base_url()),
        api_key: Some(None),
        state: Some(StateConfig::File {
            path: scratch.path().join("state.json"),
            store_tokens: false,
        }),
        ..Overrides::default()
    };
    let settings = Settings::load(&root, &overrides).expect("settings");
    let ws = Workspace::load(settings).await.expect("workspace");
    let client = ws.client().expect("client");
    let note = Arc::new(Note::default());
    *note.greeting.lock().expect("lock") = "Bonjour".into();
    let kinds = Kinds::builtin().with(note.clone());
    let restaurants = ws.desired().restaurants.len();

    // Fresh: every restaurant gets its note after its agent.
    let first = plan(&ws, &kinds, &client).await;
    assert_eq!(count(&first, Op::Create), restaurants);
    for rp in &first.restaurants {
        let at = |r: Resource| rp.actions.iter().position(|a| a.resource() == r);
        assert!(
            at(Resource::AGENT) < at(NOTE),
            "the note comes after its parent"
        );
    }
    apply(&ws, &kinds, &client, &first).await;
    assert_eq!(note.count(), restaurants);
    let state = ws.state().await.expect("state");
    assert!(state.restaurants.values().all(|r| r
        .objects
        .get("note")
        .is_some_and(|n| n.contains_key("greeting"))));

    // Converged.
    let again = plan(&ws, &kinds, &client).await;
    assert!(
        !again.has_changes(),
        "{}",
        sipform::output::human(&again, false)
    );

    // An edit is one update per restaurant, nothing else.
    *note.greeting.lock().expect("lock") = "Bonsoir".into();
    let edit = plan(&ws, &kinds, &client).await;
    assert_eq!(count(&edit, Op::Update), restaurants);
    assert_eq!(edit.summary.change, restaurants);
    apply(&ws, &kinds, &client, &edit).await;
    assert!(!plan(&ws, &kinds, &client).await.has_changes());

    // A note made by hand under an agent is not declared: deleted, with the kind's reason.
    let agent = ws
        .state()
        .await
        .expect("state")
        .restaurants
        .values()
        .find_map(|r| r.agent_id.clone())
        .expect("an agent");
    note.server.lock().expect("lock").insert(
        (agent.to_string(), "note-stray".into()),
        json!({"name": "stray", "text": "?"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let stray = plan(&ws, &kinds, &client).await;
    assert_eq!(count(&stray, Op::Delete), 1);
    let reason = stray
        .actions()
        .find(|a| a.op() == Op::Delete)
        .and_then(|a| a.reason());
    assert_eq!(
        reason.as_deref(),
        Some("not declared in the project's files")
    );
    apply(&ws, &kinds, &client, &stray).await;
    assert_eq!(note.count(), restaurants);
    emu.shutdown().await;
}
