//! `status`: where each restaurant stands, for people and machines. The report's shape is the
//! one `sipform status --json` prints and the controller serves at `/v1/status`, so a script
//! reads either the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{OpsError, Workspace};
use crate::model::ids::RestaurantId;
use crate::plan::{Action, Op, Plan};
use crate::state::{Change, RestaurantState, State};

/// Where one restaurant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// The server matches its row (as of `when`).
    Synced,
    /// The server differs from its row: an apply (or the controller) would change it.
    OutOfSync,
    /// Its last reconcile failed in a way worth retrying (the server or the database was down).
    Failed,
    /// Its last reconcile failed in a way that fails again until its row or the files change.
    Parked,
    /// Something looks due but is not done (a row deleted without `--allow-destroy`).
    Held,
    /// Suspended by `sipform suspend`: never changed until resumed.
    Suspended,
    /// Known, not reconciled yet.
    Pending,
}

impl Health {
    /// Every status, in the order counts are shown.
    pub const ALL: [Health; 7] = [
        Health::Synced,
        Health::OutOfSync,
        Health::Failed,
        Health::Parked,
        Health::Held,
        Health::Suspended,
        Health::Pending,
    ];

    /// The words people read (`out of sync`); JSON uses the snake_case name.
    pub fn words(self) -> &'static str {
        match self {
            Health::Synced => "synced",
            Health::OutOfSync => "out of sync",
            Health::Failed => "failed",
            Health::Parked => "parked",
            Health::Held => "held",
            Health::Suspended => "suspended",
            Health::Pending => "pending",
        }
    }

    /// The JSON name (`out_of_sync`).
    pub fn key(self) -> &'static str {
        match self {
            Health::OutOfSync => "out_of_sync",
            h => h.words(),
        }
    }

    /// Needs someone's attention: shown first, with its reason.
    pub fn is_problem(self) -> bool {
        matches!(self, Health::Failed | Health::Parked | Health::Held)
    }
}

/// One restaurant's line. Its name is tenant data: escaped by whoever shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestaurantStatus {
    pub id: RestaurantId,
    /// From the inventory (or the plan); `None` when only state knows the restaurant.
    pub name: Option<String>,
    pub status: Health,
    /// Why, in a sentence: a failure's error, a hold's note, what is out of sync.
    pub reason: Option<String>,
    /// When this was found (RFC 3339, UTC); `None` when only recorded state says it.
    pub when: Option<String>,
    /// The configuration revision that last reconciled it.
    pub revision: Option<String>,
    /// That revision went back from this commit (`apply --allow-rollback`): shown until a
    /// later revision reconciles it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_from: Option<String>,
}

/// The controller's change feed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feed {
    /// The change log is read without error (LISTEN connected, or polled).
    pub connected: bool,
    /// The change-log trigger is on the platform's table (`controller install-trigger`).
    pub installed: bool,
}

/// The controller's work queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue {
    /// Restaurants waiting (due or backing off).
    pub depth: usize,
    /// Of those, due now.
    pub due: usize,
    /// Parked after a fatal failure.
    pub parked: usize,
}

/// The whole report: counts by status and one line per restaurant, in id order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// The revision of the configuration this report was made with.
    pub revision: Option<String>,
    /// When the report was made (RFC 3339, UTC).
    pub generated_at: String,
    /// Every status, zero included, so a script never misses a key.
    pub counts: BTreeMap<Health, usize>,
    /// A controller's feed and queue (absent from a report made without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<Feed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<Queue>,
    /// The rollout a controller is carrying out (docs/rollout.md), when one was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<super::rollout::RolloutStatus>,
    pub restaurants: Vec<RestaurantStatus>,
}

impl StatusReport {
    /// A report of `restaurants` (any order: sorted by id here), counted.
    pub fn new(revision: Option<String>, mut restaurants: Vec<RestaurantStatus>) -> StatusReport {
        restaurants.sort_by(|a, b| a.id.cmp(&b.id));
        let mut counts: BTreeMap<Health, usize> = Health::ALL.iter().map(|h| (*h, 0)).collect();
        for r in &restaurants {
            *counts.entry(r.status).or_default() += 1;
        }
        StatusReport {
            revision,
            generated_at: now_rfc3339(),
            counts,
            feed: None,
            queue: None,
            rollout: None,
            restaurants,
        }
    }

    /// Only restaurant `id`'s line (`--restaurant`, `?restaurant=`), recounted.
    pub fn only(self, id: &RestaurantId) -> StatusReport {
        let keep = self
            .restaurants
            .into_iter()
            .filter(|r| &r.id == id)
            .collect();
        StatusReport {
            generated_at: self.generated_at,
            feed: self.feed,
            queue: self.queue,
            rollout: self.rollout,
            ..StatusReport::new(self.revision, keep)
        }
    }
}

/// Now, as RFC 3339 in UTC to the second.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The revision state records as having reconciled `r` last.
/// The revision that last reconciled `r`, as headers show it (`abc1234`, `abc1234+dirty`,
/// `no-git`).
pub(crate) fn applied_revision(r: &RestaurantState) -> Option<String> {
    r.revision.as_ref().map(|v| v.revision().short())
}

/// The commit the recorded revision went back from, when it was a rollback.
pub(crate) fn rolled_back_from(r: &RestaurantState) -> Option<String> {
    let from = r.revision.as_ref()?.rollback_from.as_ref()?;
    Some(from.short().to_string())
}

/// What `sipform status` looks at.
#[derive(Debug, Clone, Default)]
pub struct StatusOptions {
    /// Compare with the server through a plan (else: what state and the inventory say).
    pub refresh: bool,
    /// Only this restaurant.
    pub restaurant: Option<RestaurantId>,
}

/// Where each restaurant stands, from the inventory and state, and with `refresh` from a
/// plan against the server: out of sync when the plan changes anything of it.
pub async fn status(ws: &Workspace, opts: &StatusOptions) -> Result<StatusReport, OpsError> {
    let state = ws.state().await?;
    let own = ws.revision()?.short();
    let mut rows = from_state(ws, &state, &own);
    if opts.refresh {
        let plan_opts = super::plan::PlanOptions {
            targets: opts.restaurant.iter().cloned().collect(),
            ..Default::default()
        };
        super::plan::check_targets(ws, &state, &plan_opts)?;
        let plan = ws.plan(&ws.client()?, &state, &plan_opts).await?;
        compare(&mut rows, &plan);
    }
    let report = StatusReport::new(Some(own), rows.into_values().collect());
    match &opts.restaurant {
        None => Ok(report),
        Some(id) => {
            let one = report.only(id);
            if one.restaurants.is_empty() {
                return Err(OpsError::NoSuchRestaurant(id.as_str().to_string()));
            }
            Ok(one)
        }
    }
}

/// Without the server: what the last apply recorded, for every restaurant of the inventory
/// (skipped ones failed, with why) and of state.
/// A restaurant the last apply reconciled at another revision than this checkout's is out of
/// sync (this revision is not applied to it yet).
fn from_state(
    ws: &Workspace,
    state: &State,
    own: &str,
) -> BTreeMap<RestaurantId, RestaurantStatus> {
    let mut rows = BTreeMap::new();
    let row = |id: &RestaurantId, name: Option<String>, status, reason: Option<&str>| {
        let recorded = state.restaurants.get(id);
        let suspended = recorded.is_some_and(|r| r.suspended);
        let revision = recorded.and_then(applied_revision);
        let behind = revision.as_deref().filter(|r| *r != own);
        let (status, reason) = match (status, behind) {
            (Health::Synced, Some(old)) => (
                Health::OutOfSync,
                Some(format!("runs revision {old}; {own} not applied yet")),
            ),
            (status, _) => (status, reason.map(str::to_string)),
        };
        RestaurantStatus {
            id: id.clone(),
            name,
            status: if suspended { Health::Suspended } else { status },
            reason: if suspended { None } else { reason },
            when: None,
            revision,
            rolled_back_from: recorded.and_then(rolled_back_from),
        }
    };
    for r in &ws.desired().restaurants {
        let known = state
            .restaurants
            .get(&r.id)
            .is_some_and(|s| s.agent_id.is_some());
        let (status, reason) = match (known, r.create_if_missing) {
            (true, _) => (Health::Synced, None),
            (false, false) => (
                Health::Synced,
                Some("needs no agent (neither SIP nor chat)"),
            ),
            (false, true) => (Health::Pending, Some("not applied yet")),
        };
        let name = Some(r.agent.name.clone());
        rows.insert(r.id.clone(), row(&r.id, name, status, reason));
    }
    for s in ws.skipped() {
        if let Some(id) = &s.id {
            let id = RestaurantId::new(id.as_str());
            let why = s.diagnostics.to_string();
            rows.insert(id.clone(), row(&id, None, Health::Failed, Some(&why)));
        }
    }
    for id in state.restaurants.keys() {
        if !rows.contains_key(id) && !ws.desired().holds(id) {
            let why = "gone from the inventory: its objects stay until `apply --allow-destroy`";
            rows.insert(id.clone(), row(id, None, Health::Held, Some(why)));
        }
    }
    rows
}

/// A plan's verdict on each restaurant it covers: out of sync (what would change), held (its
/// notes) or synced, as of now.
fn compare(rows: &mut BTreeMap<RestaurantId, RestaurantStatus>, plan: &Plan) {
    let when = now_rfc3339();
    let holds: std::collections::HashMap<&RestaurantId, &crate::plan::Hold> =
        plan.holds.iter().map(|h| (&h.restaurant_id, h)).collect();
    for rp in &plan.restaurants {
        let Some(row) = rows.get_mut(&rp.restaurant_id) else {
            continue;
        };
        if matches!(row.status, Health::Suspended | Health::Failed) {
            continue;
        }
        let changed: Vec<String> = rp
            .actions
            .iter()
            .filter(|a| a.op().is_change())
            .map(describe_action)
            .collect();
        (row.status, row.reason) = if let Some(h) = holds.get(&rp.restaurant_id) {
            // Its changes wait (a change window): held, not out of sync.
            (
                Health::Held,
                Some(format!("{}: {}", h.message, describe_changes(&changed))),
            )
        } else if !changed.is_empty() {
            (Health::OutOfSync, Some(describe_changes(&changed)))
        } else if !rp.notes.is_empty() {
            (Health::Held, Some(rp.notes.join("; ")))
        } else {
            (Health::Synced, None)
        };
        row.when = Some(when.clone());
    }
    // Restaurants the plan has nothing to say of are up to date.
    let planned: BTreeSet<&RestaurantId> =
        plan.restaurants.iter().map(|r| &r.restaurant_id).collect();
    for (id, row) in rows.iter_mut() {
        if !planned.contains(id) && row.status == Health::Synced {
            row.when = Some(when.clone());
        }
    }
}

/// At most this many changes are named in one line; the rest are counted.
const NAMED_CHANGES: usize = 12;

/// `agent name, tool end_call: description` (and `… and N more`).
pub(crate) fn describe_changes(changed: &[String]) -> String {
    let mut text = changed
        .iter()
        .take(NAMED_CHANGES)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if changed.len() > NAMED_CHANGES {
        text.push_str(&format!(" and {} more", changed.len() - NAMED_CHANGES));
    }
    text
}

/// What one action changes, by object and field (`agent name`, `tool end_call: description`,
/// `create tool end_call`): field names only, never a value.
pub(crate) fn describe_action(a: &Action) -> String {
    let r = a.resource();
    // A kind whose objects are keyed by name (a tool) is named; one per restaurant (the
    // agent) needs no name: `describe` quotes only free-text names.
    let keyed = !r.describe("").ends_with('"');
    let object = if keyed {
        format!("{} {}", r.label(), a.name())
    } else {
        r.label().to_string()
    };
    match a.op() {
        Op::Create => format!("create {object}"),
        Op::Delete => format!("delete {object}"),
        _ => {
            let fields: Vec<String> = a.changes().iter().map(|c| c.path.clone()).collect();
            let sep = if keyed { ": " } else { " " };
            format!("{object}{sep}{}", fields.join(", "))
        }
    }
}

/// How long `--controller` waits for `/v1/status`.
const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(10);

/// A running controller's report (`GET <url>/v1/status`), for `sipform status --controller`.
pub async fn from_controller(
    url: &str,
    restaurant: Option<&RestaurantId>,
) -> Result<StatusReport, OpsError> {
    let shown = crate::model::secret::redact_url(url);
    let fail = |message: String| OpsError::Controller {
        url: shown.clone(),
        message,
    };
    let client = reqwest::Client::builder()
        .timeout(CONTROLLER_TIMEOUT)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut request = client.get(format!("{}/v1/status", url.trim_end_matches('/')));
    if let Some(id) = restaurant {
        request = request.query(&[("restaurant", id.as_str())]);
    }
    let answer = request
        .send()
        .await
        .map_err(|e| fail(e.without_url().to_string()))?;
    let code = answer.status();
    if code == reqwest::StatusCode::NOT_FOUND && restaurant.is_some() {
        let id = restaurant.map_or("", RestaurantId::as_str);
        return Err(OpsError::NoSuchRestaurant(id.to_string()));
    }
    if !code.is_success() {
        return Err(fail(format!("answered {code}")));
    }
    answer
        .json()
        .await
        .map_err(|e| fail(format!("not a status report: {}", e.without_url())))
}

/// Which restaurants `suspend` and `resume` act on.
#[derive(Debug, Clone)]
pub enum Which {
    /// These (each must be in the inventory or in state).
    Some(Vec<RestaurantId>),
    /// Every restaurant of the inventory and of state (`resume --all`: every suspended one).
    All,
}

/// Suspends (or resumes) restaurants in state, under the state lock: plan, apply and the
/// controller leave a suspended restaurant as it is. Returns the restaurants whose flag
/// changed (one already so is left out); nothing on the server is touched.
pub async fn set_suspended(
    ws: &Workspace,
    which: &Which,
    suspended: bool,
) -> Result<Vec<RestaurantId>, OpsError> {
    let _lock = ws
        .lock(if suspended { "suspend" } else { "resume" })
        .await?;
    let mut state = ws.state().await?;
    let mut known: BTreeSet<RestaurantId> = state.restaurant_ids();
    known.extend(ws.desired().restaurants.iter().map(|r| r.id.clone()));
    known.extend(ws.desired().held.iter().cloned());
    let asked: Vec<RestaurantId> = match which {
        Which::All => known.into_iter().collect(),
        Which::Some(ids) => {
            let unknown: Vec<&str> = ids
                .iter()
                .filter(|id| !known.contains(*id))
                .map(RestaurantId::as_str)
                .collect();
            if !unknown.is_empty() {
                return Err(OpsError::NoSuchRestaurant(format!(
                    "{}` (in neither the inventory nor state; nothing was changed",
                    unknown.join("`, `")
                )));
            }
            ids.clone()
        }
    };
    let changes: Vec<Change> = asked
        .iter()
        .filter(|id| state.restaurants.get(*id).is_some_and(|r| r.suspended) != suspended)
        .map(|id| Change::Suspended {
            restaurant: id.clone(),
            suspended,
        })
        .collect();
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    for c in &changes {
        state.apply(c, false);
    }
    state.serial += 1;
    ws.backend().commit(&state, &changes).await?;
    Ok(changes
        .iter()
        .filter_map(Change::restaurant)
        .cloned()
        .collect())
}
