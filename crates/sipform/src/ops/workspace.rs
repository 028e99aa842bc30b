//! A loaded project: its settings, everything it wants to exist, and its state backend.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::config::Settings;
use crate::diff;
use crate::front::diagnostics::Skipped;
use crate::front::validate;
use crate::inventory::PlatformTable;
use crate::model::ids::ObjectId;
use crate::model::secret::redact_url;
use crate::model::spec::Desired;
use crate::plan::Plan;
use crate::refresh;
use crate::remote::{Client, ClientError};
use crate::resources::Resource;
use crate::state::{
    self, CommitHook, LockGuard, LockInfo, ProjectRef, State, StateBackend, StateWriter,
};

use super::plan::PlanOptions;
use super::OpsError;

/// Restaurants planned together: their children lists are read at once (enough to keep the
/// client's slots busy) and dropped once compared.
const PLAN_BATCH: usize = 64;
/// Batches whose children lists are read while an earlier one is planned.
const READ_AHEAD: usize = 3;

/// A loaded, validated project with its settings and state backend. Read-only once built: a
/// command that needs other settings resolves other [`Settings`] and loads again.
pub struct Workspace {
    settings: Settings,
    desired: Desired,
    backend: Arc<dyn StateBackend>,
    /// The platform's `restaurants` table, when the inventory is the database: apply writes
    /// the ids back to it.
    inventory: Option<PlatformTable>,
    /// Restaurants left out because their own input is invalid (see [`Workspace::skipped`]).
    skipped: Vec<Skipped>,
}

impl Workspace {
    /// Loads and validates everything; opens (but does not lock) the state backend. A files
    /// inventory is read offline; a database inventory is read from the platform's table,
    /// together with every row state knows (its `agent_id` may not have been written back yet).
    /// A restaurant whose own input is invalid is skipped, not fatal: see [`Workspace::skipped`].
    pub async fn load(settings: Settings) -> Result<Workspace, OpsError> {
        let env = settings.render_env();
        let root = settings.root.clone();
        match PlatformTable::from_config(&settings.inventory, &root).await? {
            None => {
                let report = validate::check_inventory(&root, settings.project(), &env, None)?;
                let mut ws = Self::new(settings, report.validated.desired)?;
                ws.skipped = report.skipped;
                Ok(ws)
            }
            Some(table) => {
                let backend = state::open(&settings.state, &root, Some(&state_project(&settings)))?;
                let known = backend.load().await?;
                let known = known.map(|s| s.restaurant_ids()).unwrap_or_default();
                let rows = table.read_checked(&known).await?;
                Self::for_rows(settings, backend, table, rows)
            }
        }
    }

    /// A workspace for what `desired` says, validated elsewhere (tests and benchmarks generate
    /// inventories); its state backend is the one `settings` names.
    pub fn new(settings: Settings, desired: Desired) -> Result<Workspace, OpsError> {
        let project = state_project(&settings);
        let backend = state::open(&settings.state, &settings.root, Some(&project))?;
        Ok(Workspace {
            settings,
            desired,
            backend,
            inventory: None,
            skipped: Vec::new(),
        })
    }

    /// A workspace for some rows of the platform's table, already read (the controller's
    /// targeted reconcile), over a state backend kept open between runs. Validated as
    /// [`Workspace::load`] does; an invalid row is skipped, as there.
    pub fn for_rows(
        settings: Settings,
        backend: Arc<dyn StateBackend>,
        table: PlatformTable,
        rows: crate::inventory::InventoryRead,
    ) -> Result<Workspace, OpsError> {
        let env = settings.render_env();
        let report =
            validate::check_inventory(&settings.root, settings.project(), &env, Some(rows))?;
        Ok(Workspace {
            settings,
            desired: report.validated.desired,
            backend,
            inventory: Some(table),
            skipped: report.skipped,
        })
    }

    /// The state backend, to keep open across runs (the controller).
    pub fn backend(&self) -> Arc<dyn StateBackend> {
        self.backend.clone()
    }

    /// The platform's table, in database mode.
    pub fn inventory(&self) -> Option<&PlatformTable> {
        self.inventory.as_ref()
    }

    /// The same project without its database inventory's write-back: for applying to something
    /// other than the platform's server (the demo's emulator), whose ids must never reach the
    /// platform's rows.
    pub(super) fn detached(self) -> Workspace {
        Workspace {
            inventory: None,
            ..self
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn desired(&self) -> &Desired {
        &self.desired
    }

    /// Restaurants left out of this run because their own input (file, row, rendered agent) is
    /// invalid, each with its problems. The others are planned and applied; these are left as
    /// they are (never planned as gone), and plan and apply end with an error so CI notices.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Where state lives, for messages.
    pub fn describe_state(&self) -> String {
        self.backend.describe()
    }

    /// What a user should see once before the run: no key, a key in clear over the network.
    pub fn warnings(&self) -> Vec<String> {
        self.settings.warnings()
    }

    pub fn client(&self) -> Result<Client, OpsError> {
        Client::new(&self.settings).map_err(|source| self.server_error(source))
    }

    fn server_error(&self, source: ClientError) -> OpsError {
        OpsError::server(&self.settings.server_url, source)
    }

    /// Takes the state lock for `operation`, waiting up to the settings' lock timeout.
    pub async fn lock(&self, operation: &str) -> Result<Box<dyn LockGuard>, OpsError> {
        let who = LockInfo::for_this_process(operation);
        Ok(self.backend.lock(&who, self.settings.lock_timeout).await?)
    }

    /// Current state, or `None` when the backend holds none yet.
    pub async fn load_state(&self) -> Result<Option<State>, OpsError> {
        Ok(self.backend.load().await?)
    }

    /// Current state, or a fresh history when there is none yet (this project's from the
    /// start, so no write has to add the project later).
    pub async fn state(&self) -> Result<State, OpsError> {
        let mut state = self.load_state().await?.unwrap_or_default();
        state.bind(&state_project(&self.settings));
        Ok(state)
    }

    /// A fresh history, this project's from the start: no write has to bind it later (the
    /// file backend binds a copy of state on each whole write of an unbound one).
    pub fn fresh_state(&self) -> State {
        let mut state = State::default();
        state.bind(&state_project(&self.settings));
        state
    }

    /// Reads the server and diffs: what apply would do from `state`.
    pub async fn plan(
        &self,
        client: &Client,
        state: &State,
        opts: &PlanOptions,
    ) -> Result<Plan, OpsError> {
        let scope = (!opts.targets.is_empty()).then_some(&opts.targets);
        let kinds = crate::resources::Kinds::builtin();
        // The agents and final customers stay from here to the end of the plan: packed as
        // they are read (see `ServerObject::pack`).
        let (actual, reads) = refresh::read_singles(
            &kinds,
            client,
            &self.settings.account.name,
            &self.desired,
            state,
            scope,
            true,
        )
        .await
        .map_err(|e| match e {
            refresh::RefreshError::Server(e) => self.server_error(e),
            conflict => OpsError::Conflict(conflict.to_string()),
        })?;
        let opts = diff::PlanOptions {
            // A plan is printed, posted and saved: it names the server without its user-info.
            server_url: redact_url(&self.settings.server_url),
            allow_destroy: opts.allow_destroy,
            allow_replace: opts.allow_replace,
            targets: opts.targets.clone(),
            only_changes: opts.only_changes,
        };
        // The objects under each parent (tools under agents) are read, compared and dropped
        // a batch of restaurants at a time: memory stays flat in the number of restaurants.
        // The next batch's lists are read while this one is planned, so the server's round
        // trips and the comparing overlap instead of taking turns.
        let reads: std::collections::HashSet<_> = reads.into_iter().collect();
        let wanted = |parents: &BTreeSet<(Resource, ObjectId)>| -> Vec<_> {
            parents
                .iter()
                .filter(|p| reads.contains(*p))
                .cloned()
                .collect()
        };
        let read_ahead = |parents: Vec<(Resource, ObjectId)>| {
            let client = client.clone();
            AbortOnDrop(tokio::spawn(async move {
                refresh::read_children(&crate::resources::Kinds::builtin(), &client, parents).await
            }))
        };
        let mut planner = diff::Planner::new(&kinds, &self.desired, &actual, state, &opts);
        let mut ahead = std::collections::VecDeque::new();
        loop {
            // Batches read ahead: the later ones keep every slot busy while the first's
            // last answers trickle in.
            while ahead.len() < READ_AHEAD {
                let Some(b) = planner.next_batch(PLAN_BATCH) else {
                    break;
                };
                ahead.push_back((read_ahead(wanted(&b.parents)), b));
            }
            let Some((reading, mut batch)) = ahead.pop_front() else {
                break;
            };
            let mut children = reading.join().await.map_err(|e| self.server_error(e))?;
            let missing: BTreeSet<_> = planner.recheck(&mut batch).into_iter().collect();
            let missing: Vec<_> = wanted(&missing)
                .into_iter()
                .filter(|p| !children.contains_key(p))
                .collect();
            if !missing.is_empty() {
                let more = refresh::read_children(&kinds, client, missing)
                    .await
                    .map_err(|e| self.server_error(e))?;
                children.extend(more);
            }
            planner.plan_batch(batch, &children);
        }
        Ok(planner.finish())
    }

    /// Checks that a saved plan still describes what apply would do, restaurant by restaurant:
    /// same server and lineage, then a fresh plan whose actions for the account and for every
    /// restaurant the saved plan touches are the saved ones. State or the server moving for
    /// other restaurants does not make it stale; anything moving for one it touches (its
    /// objects, its state, the shared tool files) does, naming the restaurant.
    pub async fn check_fresh(
        &self,
        client: &Client,
        saved: &Plan,
        state: &State,
        state_exists: bool,
    ) -> Result<(), OpsError> {
        // Everything that can be checked offline is, before the first request. Plans keep
        // the server URL redacted, so the redacted forms are compared (a hand-edited plan may
        // hold user-info: it is redacted before it is compared or shown).
        let (was, is) = (
            redact_url(&saved.server_url),
            redact_url(&self.settings.server_url),
        );
        if was != is {
            return Err(OpsError::Stale(format!(
                "it was made against {was}, but this run talks to {is}"
            )));
        }
        if state_exists && saved.lineage != state.lineage {
            return Err(OpsError::Stale(format!(
                "it was made for state lineage {}, but state is lineage {}",
                saved.lineage, state.lineage
            )));
        }
        // State only moves forward: a plan made at a later serial than state's means state was
        // rolled back (or one of the two edited), and nothing the plan learnt can be trusted.
        // A serial that moved forward is fine: what moved is judged per restaurant below.
        if state_exists && saved.state_serial > state.serial {
            return Err(OpsError::Stale(format!(
                "it was made at state serial {}, but state is at serial {}: state went back \
                 since (restored or edited)",
                saved.state_serial, state.serial
            )));
        }
        let opts = PlanOptions {
            allow_destroy: saved.allow_destroy,
            // A replacement is planned only under --allow-replace: a saved plan holding one
            // was made with it.
            allow_replace: saved.restaurants.iter().flat_map(|r| &r.actions).any(|a| {
                matches!(a, crate::plan::Action::Delete { resource, .. }
                    if crate::resources::Kinds::builtin().get(*resource).is_some_and(|k| k.replaces()))
            }),
            targets: saved.targets.iter().cloned().collect(),
            only_changes: false,
        };
        let now = self.plan(client, state, &opts).await?;
        // Never send what is not planned now: the state or the server changed for a restaurant
        // the plan touches, its files changed, or the file was edited.
        match crate::plan::first_touched_difference(saved, &now) {
            None => Ok(()),
            Some(what) => Err(OpsError::Stale(format!(
                "{what} differs from what sipform plans now (state or the server changed for \
                 it since, the files changed, or the plan was edited)"
            ))),
        }
    }

    /// Heals rows a crash left behind (state committed, row not yet updated) before applying;
    /// how many rows it wrote.
    pub async fn reconcile_inventory(&self, state: &State) -> Result<u64, OpsError> {
        match &self.inventory {
            Some(t) => Ok(t.write_back().reconcile(state).await?),
            None => Ok(0),
        }
    }

    /// The one place a state writer is made: this project's backend, whether it keeps tokens,
    /// and the platform's rows as a commit hook in database mode.
    pub fn writer(&self, state: State) -> StateWriter {
        let hook = self
            .inventory
            .as_ref()
            .map(|t| Arc::new(t.write_back()) as Arc<dyn CommitHook>);
        StateWriter::new(
            self.backend.clone(),
            state,
            self.settings.state.store_tokens(),
            hook,
        )
    }
}

/// The project state is bound to: `project:`, else the account name, and the account name.
pub(super) fn state_project(settings: &Settings) -> ProjectRef {
    ProjectRef::of(settings.project.as_deref(), &settings.account.name)
}

/// A spawned task that is cancelled when its handle is dropped: a plan that fails stops the
/// read it started ahead instead of leaving it running.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl AbortOnDrop<Result<crate::resources::actual::Children, ClientError>> {
    /// The read's answer; a read that panicked panics here, as if it had run inline.
    async fn join(mut self) -> Result<crate::resources::actual::Children, ClientError> {
        match (&mut self.0).await {
            Ok(v) => v,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(ClientError::Build("a read ahead was cancelled".into())),
        }
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
