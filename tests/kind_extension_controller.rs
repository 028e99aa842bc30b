//! The extension point through the controller: a toy one-per-restaurant kind — a "badge" per
//! restaurant, under the account — added with `Kinds::with` and handed to
//! `controller::run_with`, with no change to sipform. The controller's one pipeline (the
//! inventory, its cache of the server, `ops::plan`, `ops::apply`) creates one badge per
//! restaurant, records it in state, leaves it alone on the next pass, and updates it when its
//! desired form changes. Its "server" is a map in this file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use sipform::config::Overrides;
use sipform::controller::{self, Options, Summary};
use sipform::model::ids::{ObjectId, RestaurantId};
use sipform::model::resource::ResourceNames;
use sipform::model::spec::{DesiredRestaurant, StateConfig};
use sipform::plan::Resource;
use sipform::remote::{Client, ClientError, Created, Secrets, ServerObject};
use sipform::resources::{DesiredObject, Kind, Kinds, Parents, Shape};
use sipform::state::{async_trait, Change, RestaurantState};
use sipform_emulator::{Emulator, EmulatorConfig};

const BADGE: Resource = Resource::custom(&ResourceNames::new("badge", "badge"));

/// Badges under the account: id → fields.
#[derive(Default)]
struct Badge {
    server: Mutex<BTreeMap<String, serde_json::Map<String, Value>>>,
    next: Mutex<u32>,
    creates: Mutex<usize>,
    updates: Mutex<usize>,
    motto: Mutex<String>,
}

fn poisoned<T>(_: T) -> ClientError {
    ClientError::Build("poisoned".into())
}

impl Badge {
    fn count(&self) -> usize {
        self.server.lock().map(|s| s.len()).unwrap_or(0)
    }

    fn writes(&self) -> (usize, usize) {
        let c = self.creates.lock().map(|n| *n).unwrap_or(0);
        let u = self.updates.lock().map(|n| *n).unwrap_or(0);
        (c, u)
    }

    fn texts(&self) -> Vec<String> {
        self.server
            .lock()
            .map(|s| {
                s.values()
                    .filter_map(|f| f.get("text").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[async_trait]
impl Kind for Badge {
    fn resource(&self) -> Resource {
        BADGE
    }

    fn shape(&self) -> Shape {
        Shape::One
    }

    fn parent(&self) -> Option<Resource> {
        None
    }

    fn desired(&self, r: &DesiredRestaurant) -> Vec<DesiredObject> {
        let motto = self.motto.lock().map(|m| m.clone()).unwrap_or_default();
        vec![DesiredObject {
            key: "badge".into(),
            body: json!({
                "name": format!("badge {}", r.id),
                "restaurantId": r.id.as_str(),
                "text": format!("{motto} {}", r.agent.name),
            }),
        }]
    }

    fn update_whole(&self) -> bool {
        true
    }

    fn claims<'a>(&self, o: &'a ServerObject) -> Option<&'a str> {
        o.get("restaurantId").and_then(Value::as_str)
    }

    fn recorded(&self, st: &RestaurantState, _key: &str) -> Option<ObjectId> {
        st.objects.get("badge")?.get("badge").cloned()
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
            kind: "badge".into(),
            key: "badge".into(),
            id: id.cloned(),
        }
    }

    async fn list(
        &self,
        _client: &Client,
        _account: &ObjectId,
    ) -> Result<Vec<ServerObject>, ClientError> {
        let server = self.server.lock().map_err(poisoned)?;
        Ok(server
            .iter()
            .map(|(id, fields)| {
                let id = ObjectId::parse(id).expect("ids made here are valid");
                ServerObject::new(id, fields.clone())
            })
            .collect())
    }

    async fn read_one(
        &self,
        _client: &Client,
        id: &ObjectId,
    ) -> Result<Option<ServerObject>, ClientError> {
        let server = self.server.lock().map_err(poisoned)?;
        Ok(server
            .get(id.as_str())
            .map(|f| ServerObject::new(id.clone(), f.clone())))
    }

    async fn create(
        &self,
        _client: &Client,
        _parents: &Parents,
        body: &Value,
    ) -> Result<Created, ClientError> {
        let id = {
            let mut n = self.next.lock().map_err(poisoned)?;
            *n += 1;
            format!("badge-{n}")
        };
        let fields = body.as_object().cloned().unwrap_or_default();
        self.server
            .lock()
            .map_err(poisoned)?
            .insert(id.clone(), fields.clone());
        *self.creates.lock().map_err(poisoned)? += 1;
        let id = ObjectId::parse(&id).expect("valid");
        Ok((ServerObject::new(id, fields), Secrets::default()).into())
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
        _parents: &Parents,
        id: &ObjectId,
        body: &Value,
    ) -> Result<(), ClientError> {
        let mut server = self.server.lock().map_err(poisoned)?;
        if let Some(f) = server.get_mut(id.as_str()) {
            *f = body.as_object().cloned().unwrap_or_default();
        }
        *self.updates.lock().map_err(poisoned)? += 1;
        Ok(())
    }

    async fn delete(
        &self,
        _client: &Client,
        _parents: &Parents,
        id: &ObjectId,
    ) -> Result<(), ClientError> {
        self.server.lock().map_err(poisoned)?.remove(id.as_str());
        Ok(())
    }
}

/// One `controller --once` over the repository's files inventory, with the badge added.
async fn once(url: &str, state: &std::path::Path, badge: &Arc<Badge>) -> Summary {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut opts = Options::new(root);
    opts.once = true;
    opts.overrides = Overrides {
        server_url: Some(url.to_string()),
        api_key: Some(None),
        state: Some(StateConfig::File {
            path: state.to_path_buf(),
            store_tokens: false,
        }),
        ..Overrides::default()
    };
    let kinds = Kinds::builtin().with(badge.clone());
    let (handle, inbox) = controller::channel();
    controller::run_with(kinds, opts, handle, inbox)
        .await
        .expect("the controller runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_per_restaurant_kind_added_from_outside_is_reconciled_by_the_controller() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let scratch = tempfile::tempdir().expect("tempdir");
    let state_path = scratch.path().join("state.json");
    let badge = Arc::new(Badge::default());
    *badge.motto.lock().expect("lock") = "Bienvenue".into();

    // Fresh: every restaurant gets its agent, its tools and its badge.
    let first = once(&emu.base_url(), &state_path, &badge).await;
    assert!(!first.failed(), "{first:?}");
    let restaurants = first.changed;
    assert!(restaurants > 0, "{first:?}");
    assert_eq!(badge.count(), restaurants, "one badge per restaurant");
    assert_eq!(badge.writes(), (restaurants, 0));
    let state = std::fs::read_to_string(&state_path).expect("state written");
    assert_eq!(
        state.matches("badge-").count(),
        restaurants,
        "state records every badge"
    );

    // Converged: the next pass finds every badge (through the cache's lists and state) and
    // writes nothing.
    let again = once(&emu.base_url(), &state_path, &badge).await;
    assert_eq!(
        (again.changed, again.unchanged),
        (0, restaurants),
        "{again:?}"
    );
    assert_eq!(badge.writes(), (restaurants, 0), "no badge made twice");

    // Its desired form changes: one update per restaurant, no create.
    *badge.motto.lock().expect("lock") = "Bonsoir".into();
    let edit = once(&emu.base_url(), &state_path, &badge).await;
    assert_eq!(edit.changed, restaurants, "{edit:?}");
    assert_eq!(badge.writes(), (restaurants, restaurants));
    assert!(badge.texts().iter().all(|t| t.starts_with("Bonsoir")));
    emu.shutdown().await;
}
