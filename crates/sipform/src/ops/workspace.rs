//! A loaded project: its settings, everything it wants to exist, and its state backend.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::config::Settings;
use crate::front::diagnostics::Skipped;
use crate::front::validate;
use crate::inventory::{self, Inventory, InventoryError, InventoryRead, WriteBack};
use crate::model::secret::redact_url;
use crate::model::spec::Desired;
use crate::plan::Plan;
use crate::refresh::{Refresh, RefreshError};
use crate::remote::{Client, ClientError};
use crate::resources::Kinds;
use crate::revision::Revision;
use crate::state::{
    self, CommitHook, LockGuard, LockInfo, ProjectRef, State, StateBackend, StateWriter,
};

use super::plan::PlanOptions;
use super::OpsError;

/// A loaded, validated project with its settings and state backend. Read-only once built: a
/// command that needs other settings resolves other [`Settings`] and loads again.
pub struct Workspace {
    settings: Settings,
    desired: Desired,
    backend: Arc<dyn StateBackend>,
    /// What apply also writes the ids to, when the inventory takes them (the platform's rows).
    write_back: Option<WriteBack>,
    /// Restaurants left out because their own input is invalid (see [`Workspace::skipped`]).
    skipped: Vec<Skipped>,
    /// The kinds of server object, built once ([`Workspace::with_kinds`] for others).
    kinds: Kinds,
    /// The configuration's revision, computed on first use or given
    /// ([`Workspace::with_revision`]: the controller's copy of the files is no repository).
    revision: std::sync::OnceLock<Revision>,
    /// Where the restaurants were read from, when this workspace opened it ([`Workspace::load`]):
    /// apply reads it again under the state lock ([`Workspace::reread_inventory`]).
    inventory: Option<Arc<dyn Inventory>>,
}

impl Workspace {
    /// Loads and validates everything; opens (but does not lock) the state backend. The
    /// restaurants come from the inventory `sipform.yaml` names (see [`Workspace::load_from`]).
    /// A restaurant whose own input is invalid is skipped, not fatal: see [`Workspace::skipped`].
    pub async fn load(settings: Settings) -> Result<Workspace, OpsError> {
        let source = open_inventory(&settings).await?;
        let ws = Self::load_from(settings, source.as_ref(), Kinds::builtin()).await?;
        Ok(Workspace {
            inventory: Some(source),
            ..ws
        })
    }

    /// Reads the restaurants again, with `state`'s known: apply calls it under the state lock,
    /// after reading state, so what it plans and the ids state holds are one snapshot. A
    /// restaurant the controller provisioned after this workspace was loaded is then in both,
    /// never planned as gone (issue 24). Does nothing for a workspace not loaded from its
    /// inventory ([`Workspace::new`], [`Workspace::for_read`]).
    pub(crate) async fn reread_inventory(&mut self, state: &State) -> Result<(), OpsError> {
        let Some(source) = self.inventory.clone() else {
            return Ok(());
        };
        let read = source.read_all(&state.restaurant_ids()).await;
        let read = read.map_err(|e| read_failed(&self.settings, e))?;
        let env = self.settings.render_env();
        let root = &self.settings.root;
        let report = validate::check_inventory(root, self.settings.project(), &env, Some(read))?;
        self.desired = report.validated.desired;
        self.skipped = report.skipped;
        Ok(())
    }

    /// [`Workspace::load`] from an inventory already open, over `kinds`: every restaurant it
    /// holds, with every one state knows when it asks (a row's `agent_id` may not have been
    /// written back yet).
    pub(crate) async fn load_from(
        settings: Settings,
        source: &dyn Inventory,
        kinds: Kinds,
    ) -> Result<Workspace, OpsError> {
        let root = &settings.root;
        let mut backend = None;
        let mut known = BTreeSet::new();
        if source.reads_known() {
            let b = state::open(&settings.state, root, Some(&state_project(&settings)))?;
            known = b
                .load()
                .await?
                .map(|s| s.restaurant_ids())
                .unwrap_or_default();
            backend = Some(b);
        }
        let read = source.read_all(&known).await;
        let read = read.map_err(|e| read_failed(&settings, e))?;
        let env = settings.render_env();
        let report = validate::check_inventory(root, settings.project(), &env, Some(read))?;
        let backend = match backend {
            Some(b) => b,
            None => state::open(&settings.state, root, Some(&state_project(&settings)))?,
        };
        Ok(Workspace {
            write_back: source.write_back(),
            ..Self::checked(settings, backend, report, kinds)
        })
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
            write_back: None,
            skipped: Vec::new(),
            kinds: Kinds::builtin(),
            revision: Default::default(),
            inventory: None,
        })
    }

    /// A workspace for some restaurants of `source`, already read (the controller's targeted
    /// reconcile), over a state backend kept open between runs. Validated as
    /// [`Workspace::load`] does; an invalid restaurant is skipped, as there.
    pub(crate) fn for_read(
        settings: Settings,
        backend: Arc<dyn StateBackend>,
        source: &dyn Inventory,
        read: InventoryRead,
        kinds: Kinds,
    ) -> Result<Workspace, OpsError> {
        let env = settings.render_env();
        let report =
            validate::check_inventory(&settings.root, settings.project(), &env, Some(read))?;
        Ok(Workspace {
            write_back: source.write_back(),
            ..Self::checked(settings, backend, report, kinds)
        })
    }

    fn checked(
        settings: Settings,
        backend: Arc<dyn StateBackend>,
        report: validate::Report,
        kinds: Kinds,
    ) -> Workspace {
        Workspace {
            settings,
            desired: report.validated.desired,
            backend,
            write_back: None,
            skipped: report.skipped,
            kinds,
            revision: Default::default(),
            inventory: None,
        }
    }

    /// The same project, at a revision computed elsewhere (the controller's, from the project
    /// the configuration was copied from).
    pub(crate) fn with_revision(self, revision: Revision) -> Workspace {
        Workspace {
            revision: revision.into(),
            ..self
        }
    }

    /// The configuration's revision (git commit, dirty, digest), computed once.
    pub fn revision(&self) -> Result<&Revision, OpsError> {
        if let Some(r) = self.revision.get() {
            return Ok(r);
        }
        let computed = Revision::of(&self.settings.root, &self.settings)?;
        Ok(self.revision.get_or_init(|| computed))
    }

    /// The same project over other kinds of server object (the controller's, built once; a
    /// program embedding sipform adds its own with [`Kinds::with`]).
    pub fn with_kinds(self, kinds: Kinds) -> Workspace {
        Workspace { kinds, ..self }
    }

    /// The state backend, to keep open across runs (the controller).
    pub fn backend(&self) -> Arc<dyn StateBackend> {
        self.backend.clone()
    }

    /// The same project without its database inventory's write-back: for applying to something
    /// other than the platform's server (the demo's emulator), whose ids must never reach the
    /// platform's rows.
    pub(super) fn detached(self) -> Workspace {
        Workspace {
            write_back: None,
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

    pub(crate) fn server_error(&self, source: ClientError) -> OpsError {
        OpsError::server(&self.settings.server_url, source)
    }

    /// Takes the state lock for `operation`, waiting up to the settings' lock timeout.
    pub async fn lock(&self, operation: &str) -> Result<Box<dyn LockGuard>, OpsError> {
        let who = LockInfo::for_this_process(operation);
        Ok(self.backend.lock(&who, self.settings.lock_timeout).await?)
    }

    /// Current state, or `None` when the backend holds none yet.
    pub(crate) async fn load_state(&self) -> Result<Option<State>, OpsError> {
        Ok(self.backend.load().await?)
    }

    /// Current state, or a fresh history when there is none yet (this project's from the
    /// start, so no write has to add the project later).
    pub async fn state(&self) -> Result<State, OpsError> {
        let mut state = self.load_state().await?.unwrap_or_default();
        state.bind(&state_project(&self.settings));
        Ok(state)
    }

    /// Current state, reusing `kept` when the backend still stores its lineage and serial
    /// (nothing was committed since it was read or written): the controller's batches read
    /// one meta row instead of every restaurant's state. Call under the state lock. Also
    /// says whether this backend can tell (else keeping a copy is of no use).
    pub async fn state_reusing(&self, kept: Option<State>) -> Result<(State, bool), OpsError> {
        let stored = self.backend.stored_serial().await?;
        if let (Some(kept), Some(stored)) = (kept, stored) {
            if stored == (kept.lineage, kept.serial) {
                return Ok((kept, true));
            }
        }
        Ok((self.state().await?, stored.is_some()))
    }

    /// A fresh history, this project's from the start: no write has to bind it later (the
    /// file backend binds a copy of state on each whole write of an unbound one).
    pub(crate) fn fresh_state(&self) -> State {
        let mut state = State::default();
        state.bind(&state_project(&self.settings));
        state
    }

    /// Reads the server and diffs: what apply would do from `state` ([`super::plan::plan_over`]
    /// over a refresh of the server).
    pub async fn plan(
        &self,
        client: &Client,
        state: &State,
        opts: &PlanOptions,
    ) -> Result<Plan, OpsError> {
        let mut server = Refresh::new(client, &self.settings.account.name);
        super::plan::plan_over(self, state, opts, &mut server).await
    }

    /// The kinds of server object this project manages, in dependency order.
    pub fn kinds(&self) -> &Kinds {
        &self.kinds
    }

    /// A refresh that failed: a call to the server, or what it has contradicting itself.
    pub(crate) fn refresh_error(&self, e: RefreshError) -> OpsError {
        match e {
            RefreshError::Server(e) => self.server_error(e),
            conflict => OpsError::Conflict(conflict.to_string()),
        }
    }

    /// Checks that a saved plan still describes what apply would do, restaurant by restaurant:
    /// same server and lineage, then a fresh plan whose actions for the account and for every
    /// restaurant the saved plan touches are the saved ones. State or the server moving for
    /// other restaurants does not make it stale; anything moving for one it touches (its
    /// objects, its state, the shared tool files) does, naming the restaurant.
    pub(crate) async fn check_fresh(
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
                    if self.kinds.get(*resource).is_some_and(|k| k.replaces()))
            }),
            targets: saved.targets.iter().cloned().collect(),
            only_changes: false,
            allow_rollback: saved.allow_rollback,
            allow_dirty: saved.allow_dirty,
            ignore_windows: saved.ignore_windows,
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

    /// The platform's rows ids and tokens are written back to, in database mode.
    pub fn write_back(&self) -> Option<&WriteBack> {
        self.write_back.as_ref()
    }

    /// The one place a state writer is made: this project's backend, whether it keeps tokens,
    /// and the platform's rows as a commit hook in database mode.
    pub fn writer(&self, state: State) -> StateWriter {
        let hook = self
            .write_back
            .clone()
            .map(|w| Arc::new(w) as Arc<dyn CommitHook>);
        StateWriter::new(
            self.backend.clone(),
            state,
            self.settings.state.store_tokens(),
            hook,
        )
    }
}

/// The inventory `settings` names, open.
pub(crate) async fn open_inventory(settings: &Settings) -> Result<Arc<dyn Inventory>, OpsError> {
    inventory::open(&settings.inventory, &settings.root)
        .await
        .map_err(|e| read_failed(settings, e))
}

/// An inventory that could not be read at all. A folder that cannot be listed is reported
/// with every problem of what the restaurants share (tools, template), so one run shows all.
pub(super) fn read_failed(settings: &Settings, e: InventoryError) -> OpsError {
    match e {
        InventoryError::Database(e) => OpsError::Database(e),
        InventoryError::Invalid(mut diags) => {
            let env = settings.render_env();
            let shared = InventoryRead::default();
            let project = settings.project();
            let checked = validate::check_inventory(&settings.root, project, &env, Some(shared));
            if let Err(more) = checked {
                diags.extend(more);
            }
            OpsError::Invalid(diags)
        }
    }
}

/// The project state is bound to: `project:`, else the account name, and the account name.
pub(super) fn state_project(settings: &Settings) -> ProjectRef {
    ProjectRef::of(settings.project.as_deref(), &settings.account.name)
}
