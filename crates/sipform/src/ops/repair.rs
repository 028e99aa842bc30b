//! Keeping the platform's written-back columns true: every `apply` and every controller
//! reconcile compares the rows' `agent_id`, `final_customer_id` and tokens with state and
//! rewrites those that differ, even when the plan changes nothing on the server. The platform's
//! settings page saves the whole restaurant it loaded (often with those columns NULL), and its
//! chat widget, FAQ, calls and stats pages read them.
//!
//! Tokens come from the server (one read of the agent), never from a file; state records their
//! salted digest (`RestaurantState::token_digest`) when it did not hold theirs yet (state from
//! before digests were recorded, tokens changed on the server), so that the next run, in any
//! process, sees an edit of the row's tokens. A row naming an
//! agent that exists and is not this project's (another account's, or claiming another
//! restaurant) is reported and left alone: two projects reading one table never flip its rows.

use std::collections::BTreeSet;

use futures::{stream, StreamExt};

use crate::inventory::writeback::Drift;
use crate::model::ids::{ObjectId, RestaurantId};
use crate::model::spec::Desired;
use crate::plan::RestaurantPlan;
use crate::remote::Client;
use crate::resources::agent::restaurant_of;
use crate::resources::{Kind, Resource};
use crate::state::{token_digest, AgentTokens, Change, State};
use crate::LOG_TARGET;

use super::{OpsError, Workspace};

/// Agents read at once for their tokens or their owner.
const READS_AT_ONCE: usize = 16;

/// What a repair did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Repaired {
    /// Rows rewritten to state's values (a row since deleted counts too).
    pub rewritten: u64,
    /// Rows left alone because they name another project's agent.
    pub foreign: Vec<ForeignRow>,
}

/// A row naming an agent that exists on the server and is not this project's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignRow {
    pub restaurant: RestaurantId,
    pub agent: String,
    /// Why it is not this project's (its account, or the restaurant it claims).
    pub why: String,
}

impl ForeignRow {
    /// The line plan and the controller show.
    pub fn message(&self) -> String {
        format!(
            "restaurant {}: its row names agent {}, which is not this project's ({}); the row is left alone",
            crate::escape::escape(self.restaurant.as_str()),
            crate::escape::escape(&self.agent),
            self.why
        )
    }
}

/// One drifted row, once the server was asked: what to write, or why not.
enum Fix {
    Write(Vec<Change>),
    Foreign(ForeignRow),
    /// Nothing to do now (the agent is gone: the plan recreates it and writes it back).
    Skip,
}

/// Rewrites the rows (of `ids`, or all) whose written-back values are not `state`'s; reports
/// those naming another project's agent; records in `state` (committed) the digest of tokens
/// it wrote that state did not know. Called under the state lock.
pub(crate) async fn repair_rows(
    ws: &Workspace,
    client: &Client,
    state: &mut State,
    ids: Option<&BTreeSet<RestaurantId>>,
) -> Result<Repaired, OpsError> {
    let (out, changes) = repair_rows_of(ws, client, state, ids).await?;
    record_digests(ws, state, &changes).await?;
    Ok(out)
}

/// [`repair_rows`] up to the rows written: what it did and the changes it wrote.
async fn repair_rows_of(
    ws: &Workspace,
    client: &Client,
    state: &State,
    ids: Option<&BTreeSet<RestaurantId>>,
) -> Result<(Repaired, Vec<Change>), OpsError> {
    let Some(wb) = ws.write_back() else {
        return Ok((Repaired::default(), Vec::new()));
    };
    let drifts = wb.drifted(state, ids).await?;
    if drifts.is_empty() {
        return Ok((Repaired::default(), Vec::new()));
    }
    let Some(agents) = ws.kinds().get(Resource::AGENT) else {
        return Ok((Repaired::default(), Vec::new()));
    };
    let fixes: Vec<Result<Fix, OpsError>> = stream::iter(drifts)
        .map(|d| fix(ws, agents, client, state, d))
        .buffer_unordered(READS_AT_ONCE)
        .collect()
        .await;
    let mut out = Repaired::default();
    let mut changes = Vec::new();
    for f in fixes {
        match f? {
            Fix::Write(c) => {
                changes.extend(c);
                out.rewritten += 1;
            }
            Fix::Foreign(f) => {
                tracing::warn!(target: LOG_TARGET, restaurant = %f.restaurant, "{}", f.message());
                out.foreign.push(f);
            }
            Fix::Skip => {}
        }
    }
    wb.write(&changes).await?;
    if out.rewritten > 0 {
        tracing::info!(target: LOG_TARGET, "rewrote the ids and tokens of {} platform row(s) that differed from state", out.rewritten);
    }
    Ok((out, changes))
}

/// Records, in one commit, the digest of the tokens `changes` wrote where state recorded
/// another (or none): so the next run, in any process, tells an edited token from these.
async fn record_digests(
    ws: &Workspace,
    state: &mut State,
    changes: &[Change],
) -> Result<(), OpsError> {
    let learned: Vec<Change> = changes
        .iter()
        .filter(|c| match c {
            Change::Agent {
                restaurant,
                id: Some(_),
                tokens: Some(t),
            } => {
                let known = state
                    .restaurants
                    .get(restaurant)
                    .and_then(|r| r.token_digest.as_deref());
                known != Some(token_digest(&state.lineage, restaurant, t).as_str())
            }
            _ => false,
        })
        .cloned()
        .collect();
    if learned.is_empty() {
        return Ok(());
    }
    let mut next = state.clone();
    let store_tokens = ws.settings().state.store_tokens();
    for c in &learned {
        next.apply(c, store_tokens);
    }
    next.serial += 1;
    ws.backend().commit(&next, &learned).await?;
    *state = next;
    Ok(())
}

/// The restaurants of `desired` (in `scope`) whose row names an agent that exists on the
/// server and is not this project's: not state's for it, not among this account's agents
/// `actual` holds, and another account's or another restaurant's. Plan holds them (a note, no
/// action), so nothing is created for them and their row is never overwritten. One read per
/// such row; none when every row names this project's agents.
pub(crate) async fn foreign_rows(
    ws: &Workspace,
    state: &State,
    actual: &crate::resources::actual::Actual,
    scope: Option<&BTreeSet<RestaurantId>>,
) -> Result<Vec<ForeignRow>, OpsError> {
    // An agent the view holds is this account's unless it says otherwise (the controller's
    // cache also holds agents it read by id).
    let account = actual.account.as_ref().map(|a| a.id.as_str());
    let in_account = |id: &ObjectId| {
        actual.singles(Resource::AGENT).iter().any(|a| {
            &a.id == id
                && a.str_field("accountId")
                    .is_none_or(|acc| Some(acc) == account)
        })
    };
    let candidates: Vec<(RestaurantId, ObjectId)> = ws
        .desired()
        .restaurants
        .iter()
        .filter(|r| scope.is_none_or(|s| s.contains(&r.id)))
        .filter_map(|r| Some((r.id.clone(), r.platform_agent.clone()?)))
        .filter(|(rid, id)| {
            let recorded = state.restaurants.get(rid).and_then(|s| s.agent_id.as_ref());
            recorded.is_none_or(|a| a.as_str() != id.as_str()) && !in_account(id)
        })
        .collect();
    let (Some(agents), false) = (ws.kinds().get(Resource::AGENT), candidates.is_empty()) else {
        return Ok(Vec::new());
    };
    let client = ws.client()?;
    let found: Vec<Result<Option<ForeignRow>, OpsError>> = stream::iter(candidates)
        .map(|(restaurant, id)| {
            let client = &client;
            async move {
                let why = foreign(ws, agents, client, state, &restaurant, id.as_str()).await?;
                Ok(why.map(|why| ForeignRow {
                    restaurant,
                    agent: id.as_str().to_string(),
                    why,
                }))
            }
        })
        .buffer_unordered(READS_AT_ONCE)
        .collect()
        .await;
    let mut out = Vec::new();
    for f in found {
        out.extend(f?);
    }
    out.sort_by(|a, b| a.restaurant.cmp(&b.restaurant));
    Ok(out)
}

/// What to do with one drifted row.
async fn fix(
    ws: &Workspace,
    agents: &dyn Kind,
    client: &Client,
    state: &State,
    d: Drift,
) -> Result<Fix, OpsError> {
    let Some(rs) = state.restaurants.get(&d.restaurant) else {
        return Ok(Fix::Skip);
    };
    if let Some(other) = &d.row_agent {
        if let Some(why) = foreign(ws, agents, client, state, &d.restaurant, other).await? {
            return Ok(Fix::Foreign(ForeignRow {
                restaurant: d.restaurant,
                agent: other.clone(),
                why,
            }));
        }
    }
    let mut tokens = None;
    if let (true, Some(agent)) = (d.tokens, &rs.agent_id) {
        match tokens_of(ws, agents, client, &d.restaurant, agent.as_str()).await? {
            Some(t) => tokens = Some(t),
            None => return Ok(Fix::Skip),
        }
    }
    Ok(Fix::Write(vec![
        Change::FinalCustomer {
            restaurant: d.restaurant.clone(),
            id: rs.final_customer_id.clone(),
        },
        Change::Agent {
            restaurant: d.restaurant,
            id: rs.agent_id.clone(),
            tokens,
        },
    ]))
}

/// The agent's tokens, read from the server; `None` when the agent is gone.
async fn tokens_of(
    ws: &Workspace,
    agents: &dyn Kind,
    client: &Client,
    restaurant: &RestaurantId,
    agent: &str,
) -> Result<Option<AgentTokens>, OpsError> {
    let Ok(id) = ObjectId::parse(agent) else {
        return Ok(None);
    };
    match agents.adopted(client, restaurant, "", &id).await {
        Ok(Change::Agent { tokens, .. }) => Ok(tokens),
        Ok(_) => Ok(None),
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(e) => Err(ws.server_error(e)),
    }
}

/// Why agent `other`, which the row of `restaurant` names, is another project's: it exists and
/// belongs to another account or claims another restaurant. `None`: it is ours (state records
/// it), gone, not a server id, or a copy in this account claiming this restaurant (the
/// platform's own provisioning: `dedupe` removes it, the row is rewritten).
async fn foreign(
    ws: &Workspace,
    agents: &dyn Kind,
    client: &Client,
    state: &State,
    restaurant: &RestaurantId,
    other: &str,
) -> Result<Option<String>, OpsError> {
    let ours = |id: &str| {
        state
            .restaurants
            .values()
            .any(|r| r.agent_id.as_ref().is_some_and(|a| a.as_str() == id))
    };
    let Ok(id) = ObjectId::parse(other) else {
        return Ok(None);
    };
    if ours(other) {
        return Ok(None);
    }
    let found = agents
        .read_one(client, &id)
        .await
        .map_err(|e| ws.server_error(e))?;
    let Some(agent) = found else {
        return Ok(None);
    };
    let account = state.account_id.as_ref().map(|a| a.as_str());
    let its_account = agent.str_field("accountId");
    if its_account.is_some() && its_account != account && !twin(ws, client, its_account).await? {
        return Ok(Some(format!(
            "it belongs to account {}",
            crate::escape::escape(its_account.unwrap_or_default())
        )));
    }
    match restaurant_of(&agent) {
        Some(r) if r != restaurant.as_str() => Ok(Some(format!(
            "it serves restaurant {}",
            crate::escape::escape(r)
        ))),
        _ => Ok(None),
    }
}

/// `desired` without the restaurants of `foreign`, held (left as they are, never planned as
/// gone).
pub(super) fn hold(desired: &Desired, foreign: &[ForeignRow]) -> Desired {
    let ids: BTreeSet<&RestaurantId> = foreign.iter().map(|f| &f.restaurant).collect();
    let mut d = desired.clone();
    d.restaurants.retain(|r| !ids.contains(&r.id));
    d.held.extend(ids.into_iter().cloned());
    d
}

/// The plan's entry for a held restaurant: no action, the reason as a note.
pub(super) fn held_plan(desired: &Desired, f: &ForeignRow) -> RestaurantPlan {
    let name = desired
        .restaurants
        .iter()
        .find(|r| r.id == f.restaurant)
        .map(|r| r.agent.name.clone())
        .unwrap_or_default();
    RestaurantPlan {
        restaurant_id: f.restaurant.clone(),
        name,
        actions: Vec::new(),
        notes: vec![f.message()],
    }
}

/// Whether `account` carries this project's account name: a second account the platform's
/// own provisioning made during a switch-over, whose agents are duplicates, not another
/// project's.
async fn twin(ws: &Workspace, client: &Client, account: Option<&str>) -> Result<bool, OpsError> {
    let Some(account) = account else {
        return Ok(false);
    };
    let accounts = crate::resources::account::list(client)
        .await
        .map_err(|e| ws.server_error(e))?;
    let name = ws.settings().account.name.as_str();
    Ok(accounts
        .iter()
        .any(|a| a.id.as_str() == account && a.name() == Some(name)))
}
