//! Updates that wait: an existing agent inside a change window of its restaurant's own time
//! zone (`windows:`), or with calls in progress (`windows.live_call_wait`). Held is not
//! failed: plan shows it and until when, apply leaves it alone and reports it, the controller
//! comes back when it ends. A new restaurant's agent is never held; `--ignore-windows`
//! (carried by the plan) holds nothing.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::Workspace;
use crate::apply::{self, Progress, Report};
use crate::model::ids::{ObjectId, RestaurantId};
use crate::model::spec::WindowVerdict;
use crate::plan::{Action, Hold, HoldReason, Op, Plan, Resource, RestaurantPlan, Summary};
use crate::remote::bridges::{active_calls, ActiveCalls};
use crate::remote::Client;
use crate::state::StateWriter;

/// The agent an update of `rp` would touch while it may be live: its plan changes something,
/// and its agent exists (updated, adopted or left as is; never one being created now).
pub(crate) fn live_agent(rp: &RestaurantPlan) -> Option<&ObjectId> {
    if !rp.has_changes() {
        return None;
    }
    let mut agents = rp
        .actions
        .iter()
        .filter(|a| a.resource() == Resource::AGENT);
    let agent = agents.next()?;
    match agent {
        Action::Create { .. } | Action::Delete { .. } => None,
        a => a.id(),
    }
}

/// The restaurants of `plan` held by their change window at `now`, in their own zones.
pub(crate) fn window_holds(ws: &Workspace, plan: &Plan, now: DateTime<Utc>) -> Vec<Hold> {
    let spans = ws.settings().windows().spans;
    if plan.ignore_windows || spans.is_open_always() {
        return Vec::new();
    }
    let zones: HashMap<&RestaurantId, Tz> = ws
        .desired()
        .restaurants
        .iter()
        .map(|r| (&r.id, r.timezone))
        .collect();
    // The verdict depends on the zone only: judged once per zone, not per restaurant.
    let mut by_zone: HashMap<Tz, WindowVerdict> = HashMap::new();
    plan.restaurants
        .iter()
        .filter(|rp| live_agent(rp).is_some())
        .filter_map(|rp| {
            // A restaurant gone from the inventory has no zone: its deletes are not updates.
            let tz = *zones.get(&rp.restaurant_id)?;
            let verdict = *by_zone.entry(tz).or_insert_with(|| spans.verdict(now, tz));
            match verdict {
                WindowVerdict::Go => None,
                WindowVerdict::Closed { until } => Some(Hold {
                    restaurant_id: rp.restaurant_id.clone(),
                    name: rp.name.clone(),
                    reason: HoldReason::Window,
                    until,
                    message: window_message(now, until, tz),
                }),
            }
        })
        .collect()
}

/// `in a change window at 12:00 Europe/Paris: held until 14:30 (2026-12-07T13:30:00Z)`.
fn window_message(now: DateTime<Utc>, until: Option<DateTime<Utc>>, tz: Tz) -> String {
    let local = now.with_timezone(&tz).format("%H:%M");
    let at = format!("in a change window at {local} {tz}");
    match until {
        Some(u) => {
            let same_day = u.with_timezone(&tz).date_naive() == now.with_timezone(&tz).date_naive();
            let end =
                u.with_timezone(&tz)
                    .format(if same_day { "%H:%M" } else { "%Y-%m-%d %H:%M" });
            format!(
                "{at}: held until {end} ({})",
                u.format("%Y-%m-%dT%H:%M:%SZ")
            )
        }
        None => format!("{at}: held; no window opens in the next three days"),
    }
}

/// `plan` without the restaurants of `out` (`None` when none of them is in it).
pub(crate) fn without(plan: &Plan, out: &BTreeSet<&RestaurantId>) -> Option<Plan> {
    if !plan
        .restaurants
        .iter()
        .any(|r| out.contains(&r.restaurant_id))
    {
        return None;
    }
    let mut p = plan.clone();
    p.restaurants.retain(|r| !out.contains(&r.restaurant_id));
    p.summary = Summary::of(p.actions());
    Some(p)
}

/// Applies `plan` (windows already judged) so that no agent is updated during a call: the
/// restaurants whose agent has calls in progress wait, read again every
/// `windows.live_call_check`, up to `windows.live_call_wait`; the others go at once. Those still
/// busy at the end are held. Without `live_call_wait` (or with `--ignore-windows`), a plain
/// apply.
pub(crate) async fn apply_between_calls(
    ws: &Workspace,
    client: &Client,
    plan: &Plan,
    writer: &StateWriter,
    progress: &dyn Progress,
) -> (Report, Vec<Hold>) {
    let settings = ws.settings().windows();
    let kinds = ws.kinds();
    let Some(wait) = settings.live_call_wait.filter(|_| !plan.ignore_windows) else {
        return (
            apply::apply_with(kinds, plan, client, writer, progress).await,
            Vec::new(),
        );
    };
    let candidates: Vec<(&RestaurantId, &ObjectId)> = plan
        .restaurants
        .iter()
        .filter_map(|rp| live_agent(rp).map(|a| (&rp.restaurant_id, a)))
        .collect();
    if candidates.is_empty() {
        return (
            apply::apply_with(kinds, plan, client, writer, progress).await,
            Vec::new(),
        );
    }
    let mut busy = busy_of(client, &candidates).await;
    let initial: BTreeSet<&RestaurantId> = busy.iter().map(|(id, _)| *id).collect();
    // The others go now, unless the account is to be made or adopted: a second apply would
    // make it again, so then everything waits together (a first apply after state was lost).
    let first = if plan.account.op() == Op::NoOp && !initial.is_empty() {
        let now = without(plan, &initial);
        let now = now.as_ref().unwrap_or(plan);
        Some(apply::apply_with(kinds, now, client, writer, progress).await)
    } else {
        None
    };
    let deadline = tokio::time::Instant::now() + wait;
    while !busy.is_empty() && tokio::time::Instant::now() < deadline {
        let left = deadline - tokio::time::Instant::now();
        tokio::time::sleep(settings.live_call_check.min(left)).await;
        let waiting: Vec<(&RestaurantId, &ObjectId)> =
            busy.iter().map(|(id, (a, _))| (*id, *a)).collect();
        busy = busy_of(client, &waiting).await;
    }
    let still: BTreeSet<&RestaurantId> = busy.iter().map(|(id, _)| *id).collect();
    let report = match first {
        Some(first) if initial.len() == still.len() => first,
        Some(first) => {
            // Only the restaurants whose calls ended.
            let out: BTreeSet<&RestaurantId> = plan
                .restaurants
                .iter()
                .map(|r| &r.restaurant_id)
                .filter(|id| !initial.contains(id) || still.contains(id))
                .collect();
            let freed = without(plan, &out);
            let freed = freed.as_ref().unwrap_or(plan);
            merge(
                first,
                apply::apply_with(kinds, freed, client, writer, progress).await,
            )
        }
        None => {
            let go = without(plan, &still);
            let go = go.as_ref().unwrap_or(plan);
            apply::apply_with(kinds, go, client, writer, progress).await
        }
    };
    let holds = busy
        .into_iter()
        .map(|(id, (_, why))| live_call_hold(plan, id, why, wait))
        .collect();
    (report, holds)
}

/// The candidates whose agent has calls in progress (or whose calls cannot be read: unknown is
/// never idle), with why.
async fn busy_of<'p>(
    client: &Client,
    candidates: &[(&'p RestaurantId, &'p ObjectId)],
) -> Vec<(&'p RestaurantId, (&'p ObjectId, String))> {
    let calls: Result<ActiveCalls, String> = active_calls(client).await.map_err(|e| e.to_string());
    candidates
        .iter()
        .filter_map(|(id, agent)| {
            let why = match &calls {
                Ok(c) if c.of(agent) == 0 => return None,
                Ok(c) => format!("{} call(s) in progress on agent {agent}", c.of(agent)),
                Err(e) => format!("the calls in progress could not be read ({e})"),
            };
            Some((*id, (*agent, why)))
        })
        .collect()
}

fn live_call_hold(plan: &Plan, id: &RestaurantId, why: String, wait: Duration) -> Hold {
    Hold {
        restaurant_id: id.clone(),
        name: plan.name_of(id),
        reason: HoldReason::LiveCalls,
        until: None,
        message: format!(
            "{why} after waiting {}s (windows.live_call_wait): held until its calls end",
            wait.as_secs()
        ),
    }
}

/// Two applies of one run as one report.
fn merge(mut a: Report, b: Report) -> Report {
    a.account_error = a.account_error.or(b.account_error);
    a.outcomes.extend(b.outcomes);
    a.outcomes.sort_by(|x, y| x.restaurant.cmp(&y.restaurant));
    a.requests += b.requests;
    a.retries += b.retries;
    a.elapsed += b.elapsed;
    a.parallelism = b.parallelism.or(a.parallelism);
    a.held.extend(b.held);
    a
}
