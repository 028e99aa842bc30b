//! apply: carry out a plan, in dependency order, in parallel, recording every id as it comes.
//!
//! The account goes first; then restaurants run concurrently (each one: final customer, agent,
//! then its tools in parallel), every request bounded by the client's slots. A restaurant that
//! fails stops where it is and the others go on. A create (POST) that fails ambiguously
//! (timeout, reset, 5xx) is followed by a re-read before any retry, so a retry never makes a
//! duplicate even when the server stored the first attempt. Every successful create, adopt or
//! delete is recorded durably before the next step depends on it.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde_json::Value;

use crate::client::{Client, ClientError, Object};
use crate::model::ids::{AccountId, AgentId, FinalCustomerId, RestaurantId, ToolId};
use crate::model::secret::Secret;
use crate::plan::{Action, Op, Plan, Resource, RestaurantPlan};
use crate::refresh::{id_of, restaurant_of};
use crate::state::{AgentTokens, Change, StateWriter};
use crate::LOG_TARGET;

/// How one restaurant ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub restaurant: RestaurantId,
    pub name: String,
    /// Actions carried out (adopts included, no-ops not).
    pub done: usize,
    /// Actions the plan held for it.
    pub planned: usize,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub account_error: Option<String>,
    pub outcomes: Vec<Outcome>,
    pub requests: u64,
    pub retries: u64,
    pub elapsed: Duration,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.account_error.is_some() || self.outcomes.iter().any(|o| o.error.is_some())
    }

    /// Closing lines: one per restaurant that failed, and a summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(e) = &self.account_error {
            out.push_str(&format!("account: FAILED: {e}\n"));
        }
        let mut ok = 0;
        let mut failed = 0;
        let mut actions = 0;
        for o in &self.outcomes {
            actions += o.done;
            match &o.error {
                None => ok += 1,
                Some(e) => {
                    failed += 1;
                    out.push_str(&format!(
                        "restaurant {} ({}): FAILED after {}/{} actions: {}\n",
                        o.name, o.restaurant, o.done, o.planned, e
                    ));
                }
            }
        }
        out.push_str(&format!(
            "Apply {}: {} restaurants done, {} failed, {} actions, {} requests, {} retries, {:.1}s.\n",
            if self.failed() { "incomplete" } else { "complete" },
            ok,
            failed,
            actions,
            self.requests,
            self.retries,
            self.elapsed.as_secs_f64()
        ));
        out
    }
}

/// Where progress goes: a bar on a terminal, plain lines otherwise.
pub trait Progress: Send + Sync {
    fn action_done(&self);
    fn restaurant_done(&self, outcome: &Outcome);
}

/// No progress output (tests, `--quiet`).
pub struct Silent;

impl Progress for Silent {
    fn action_done(&self) {}
    fn restaurant_done(&self, _: &Outcome) {}
}

/// Carries out `plan`. Never panics on server behaviour; every failure ends in the report.
pub async fn apply(
    plan: &Plan,
    client: &Client,
    writer: &StateWriter,
    progress: &dyn Progress,
) -> Report {
    let started = Instant::now();
    let requests_before = client.stats.requests.load(Ordering::Relaxed);
    let retries_before = client.stats.retries.load(Ordering::Relaxed);
    let mut report = Report {
        account_error: None,
        outcomes: Vec::new(),
        requests: 0,
        retries: 0,
        elapsed: Duration::ZERO,
    };

    match account(plan, client, writer).await {
        Ok(account_id) => {
            let ctx = Ctx {
                client,
                writer,
                account_id,
                progress,
            };
            let width = client_parallelism(plan);
            report.outcomes = stream::iter(plan.restaurants.iter())
                .map(|rp| {
                    let ctx = &ctx;
                    async move {
                        let outcome = ctx.restaurant(rp).await;
                        ctx.progress.restaurant_done(&outcome);
                        outcome
                    }
                })
                .buffer_unordered(width)
                .collect()
                .await;
        }
        Err(e) => report.account_error = Some(e),
    }
    report
        .outcomes
        .sort_by(|a, b| a.restaurant.cmp(&b.restaurant));
    report.requests = client.stats.requests.load(Ordering::Relaxed) - requests_before;
    report.retries = client.stats.retries.load(Ordering::Relaxed) - retries_before;
    report.elapsed = started.elapsed();
    report
}

/// Restaurants in flight at once. Requests are bounded by the client's slots; this only keeps
/// enough restaurants open to fill them (a restaurant's first steps are sequential).
fn client_parallelism(plan: &Plan) -> usize {
    plan.restaurants.len().clamp(1, 256)
}

async fn account(plan: &Plan, client: &Client, writer: &StateWriter) -> Result<AccountId, String> {
    let a = &plan.account;
    let id = match a.op {
        Op::Create => {
            let body = a.body.clone().unwrap_or(Value::Null);
            let name = a.name.clone();
            let obj = create_with_reread(
                client,
                || client.create_account(&body),
                || async {
                    let list = client.list_accounts().await?;
                    Ok(list
                        .into_iter()
                        .find(|o| o.get("name").and_then(Value::as_str) == Some(name.as_str())))
                },
            )
            .await
            .map_err(|e| e.to_string())?;
            let id = AccountId::new(id_of(&obj).ok_or("the server answered without an id")?);
            writer
                .record(vec![Change::Account(id.clone())])
                .await
                .map_err(|e| e.to_string())?;
            id
        }
        Op::Adopt => {
            let id = AccountId::new(a.remote_id.clone().ok_or("adopt without an id")?);
            writer
                .record(vec![Change::Account(id.clone())])
                .await
                .map_err(|e| e.to_string())?;
            id
        }
        _ => AccountId::new(a.remote_id.clone().ok_or("the plan names no account id")?),
    };
    Ok(id)
}

struct Ctx<'a> {
    client: &'a Client,
    writer: &'a StateWriter,
    account_id: AccountId,
    progress: &'a dyn Progress,
}

impl Ctx<'_> {
    async fn restaurant(&self, rp: &RestaurantPlan) -> Outcome {
        let done = AtomicUsize::new(0);
        let planned = rp.actions.iter().filter(|a| a.op != Op::NoOp).count();
        let error = self.restaurant_actions(rp, &done).await.err();
        if let Some(e) = &error {
            tracing::warn!(target: LOG_TARGET, restaurant = %rp.restaurant_id, "failed: {e}");
        }
        Outcome {
            restaurant: rp.restaurant_id.clone(),
            name: rp.name.clone(),
            done: done.load(Ordering::Relaxed),
            planned,
            error,
        }
    }

    fn step(&self, done: &AtomicUsize) {
        done.fetch_add(1, Ordering::Relaxed);
        self.progress.action_done();
    }

    async fn restaurant_actions(
        &self,
        rp: &RestaurantPlan,
        done: &AtomicUsize,
    ) -> Result<(), String> {
        let rid = &rp.restaurant_id;
        let mut fc_id: Option<String> = None;
        let mut agent_id: Option<String> = None;
        let (tools, objects): (Vec<&Action>, Vec<&Action>) = rp
            .actions
            .iter()
            .partition(|a| a.resource == Resource::Tool);

        for a in objects {
            match (a.resource, a.op) {
                (Resource::FinalCustomer, Op::Create) => {
                    let id = self.create_final_customer(rid, a).await?;
                    self.record(Change::FinalCustomer {
                        restaurant: rid.clone(),
                        id: Some(FinalCustomerId::new(&id)),
                    })
                    .await?;
                    fc_id = Some(id);
                }
                (Resource::Agent, Op::Create) => {
                    let fc = fc_id
                        .clone()
                        .ok_or("no final customer to attach the agent to")?;
                    let obj = self.create_agent(rid, a, &fc).await?;
                    let id = id_of(&obj)
                        .ok_or("the server answered without an id")?
                        .to_string();
                    self.record(Change::Agent {
                        restaurant: rid.clone(),
                        id: Some(AgentId::new(&id)),
                        tokens: tokens_of(&obj),
                    })
                    .await?;
                    agent_id = Some(id);
                }
                (resource, Op::Adopt) => {
                    let id = a.remote_id.clone().ok_or("adopt without an id")?;
                    let change = match resource {
                        Resource::FinalCustomer => {
                            fc_id = Some(id.clone());
                            Change::FinalCustomer {
                                restaurant: rid.clone(),
                                id: Some(FinalCustomerId::new(&id)),
                            }
                        }
                        _ => {
                            // Tokens for state/write-back: one read, no write.
                            let obj = self
                                .client
                                .get_agent(&id)
                                .await
                                .map_err(|e| e.to_string())?;
                            agent_id = Some(id.clone());
                            Change::Agent {
                                restaurant: rid.clone(),
                                id: Some(AgentId::new(&id)),
                                tokens: tokens_of(&obj),
                            }
                        }
                    };
                    self.record(change).await?;
                }
                (resource, Op::Update) => {
                    let id = a.remote_id.clone().ok_or("update without an id")?;
                    let body = a.body.clone().unwrap_or(Value::Null);
                    let r = if resource == Resource::FinalCustomer {
                        fc_id = Some(id.clone());
                        self.client.update_final_customer(&id, &body).await
                    } else {
                        agent_id = Some(id.clone());
                        self.client.update_agent(&id, &body).await
                    };
                    r.map_err(|e| e.to_string())?;
                }
                (resource, Op::NoOp) => {
                    let id = a.remote_id.clone();
                    if resource == Resource::FinalCustomer {
                        fc_id = id;
                    } else {
                        agent_id = id;
                    }
                    continue;
                }
                (resource, Op::Delete) => {
                    let id = a.remote_id.clone().ok_or("delete without an id")?;
                    let change = if resource == Resource::FinalCustomer {
                        self.client
                            .delete_final_customer(&id)
                            .await
                            .map_err(|e| e.to_string())?;
                        Change::FinalCustomer {
                            restaurant: rid.clone(),
                            id: None,
                        }
                    } else {
                        self.client
                            .delete_agent(&id)
                            .await
                            .map_err(|e| e.to_string())?;
                        Change::Agent {
                            restaurant: rid.clone(),
                            id: None,
                            tokens: None,
                        }
                    };
                    self.record(change).await?;
                }
                (Resource::Account, _) | (Resource::Tool, _) => {
                    return Err("unexpected action in a restaurant plan".into())
                }
            }
            self.step(done);
        }

        if tools.is_empty() {
            return Ok(());
        }
        let agent = agent_id.ok_or("no agent to attach the tools to")?;
        let results =
            futures::future::join_all(tools.iter().map(|a| self.tool(rid, &agent, a, done))).await;
        let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.into_iter().next().unwrap_or_default()),
            n => Err(format!("{n} tool actions failed; first: {}", errors[0])),
        }
    }

    async fn tool(
        &self,
        rid: &RestaurantId,
        agent: &str,
        a: &Action,
        done: &AtomicUsize,
    ) -> Result<(), String> {
        let body = a.body.clone().unwrap_or(Value::Null);
        let change = match a.op {
            Op::Create => {
                let name = a.name.clone();
                let obj = create_with_reread(
                    self.client,
                    || self.client.create_tool(agent, &body),
                    || async {
                        let list = self.client.list_tools(agent).await?;
                        Ok(list.into_iter().find(|o| {
                            o.get("name").and_then(Value::as_str) == Some(name.as_str())
                                && !self.writer.assigns(id_of(o).unwrap_or(""))
                        }))
                    },
                )
                .await
                .map_err(|e| format!("tool {}: {e}", a.name))?;
                let id = id_of(&obj).ok_or("the server answered without an id")?;
                Some(Change::Tool {
                    restaurant: rid.clone(),
                    name: a.name.clone(),
                    id: Some(ToolId::new(id)),
                })
            }
            Op::Adopt => Some(Change::Tool {
                restaurant: rid.clone(),
                name: a.name.clone(),
                id: a.remote_id.clone().map(ToolId::new),
            }),
            Op::Update => {
                let id = a.remote_id.as_deref().ok_or("update without an id")?;
                self.client
                    .update_tool(agent, id, &body)
                    .await
                    .map_err(|e| format!("tool {}: {e}", a.name))?;
                None
            }
            Op::Delete => {
                let id = a.remote_id.as_deref().ok_or("delete without an id")?;
                self.client
                    .delete_tool(agent, id)
                    .await
                    .map_err(|e| format!("tool {}: {e}", a.name))?;
                // Forget it only if state maps this name to this very id (a duplicate's delete
                // must not drop the kept tool's entry).
                let mapped = self.writer.read(|s| {
                    s.restaurants
                        .get(rid)
                        .and_then(|r| r.tools.get(&a.name).cloned())
                });
                (mapped.as_ref().map(|t| t.as_str()) == Some(id)).then(|| Change::Tool {
                    restaurant: rid.clone(),
                    name: a.name.clone(),
                    id: None,
                })
            }
            Op::NoOp => return Ok(()),
        };
        if let Some(c) = change {
            self.record(c).await?;
        }
        self.step(done);
        Ok(())
    }

    async fn create_final_customer(
        &self,
        rid: &RestaurantId,
        a: &Action,
    ) -> Result<String, String> {
        let mut body = a.body.clone().unwrap_or(Value::Null);
        if let Value::Object(m) = &mut body {
            m.insert(
                "accountId".into(),
                Value::String(self.account_id.to_string()),
            );
        }
        let (name, email) = (body.get("name").cloned(), body.get("email").cloned());
        let obj = create_with_reread(
            self.client,
            || self.client.create_final_customer(&body),
            || async {
                let list = self
                    .client
                    .list_final_customers(self.account_id.as_str())
                    .await?;
                Ok(list.into_iter().find(|o| {
                    o.get("name") == name.as_ref()
                        && o.get("email").unwrap_or(&Value::Null)
                            == email.as_ref().unwrap_or(&Value::Null)
                        && !self.writer.assigns(id_of(o).unwrap_or(""))
                }))
            },
        )
        .await
        .map_err(|e| format!("final customer of {rid}: {e}"))?;
        Ok(id_of(&obj)
            .ok_or("the server answered without an id")?
            .to_string())
    }

    async fn create_agent(
        &self,
        rid: &RestaurantId,
        a: &Action,
        fc: &str,
    ) -> Result<Object, String> {
        let mut body = a.body.clone().unwrap_or(Value::Null);
        if let Value::Object(m) = &mut body {
            m.insert(
                "accountId".into(),
                Value::String(self.account_id.to_string()),
            );
            m.insert("finalCustomerId".into(), Value::String(fc.to_string()));
        }
        let found = create_with_reread(
            self.client,
            || self.client.create_agent(&body),
            || async {
                let list = self.client.list_agents(self.account_id.as_str()).await?;
                Ok(list.into_iter().find(|o| {
                    restaurant_of(o) == Some(rid.as_str())
                        && !self.writer.assigns(id_of(o).unwrap_or(""))
                }))
            },
        )
        .await
        .map_err(|e| format!("agent of {rid}: {e}"))?;
        // An agent found by re-reading may come from a list without tokens: read it whole.
        if found.get("apiToken").is_none() {
            if let Some(id) = id_of(&found) {
                return self.client.get_agent(id).await.map_err(|e| e.to_string());
            }
        }
        Ok(found)
    }

    async fn record(&self, change: Change) -> Result<(), String> {
        self.writer
            .record(vec![change])
            .await
            .map_err(|e| format!("recording state: {e}"))
    }
}

fn tokens_of(agent: &Object) -> Option<AgentTokens> {
    let api = agent.get("apiToken").and_then(Value::as_str)?;
    let public = agent
        .get("publicToken")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some(AgentTokens {
        api_token: Secret::new(api.to_string()),
        public_token: Secret::new(public.to_string()),
    })
}

/// POST, and after an ambiguous failure look for what the failed attempt may have stored
/// before trying again. `find` returns the object if it exists.
pub async fn create_with_reread<P, PF, F, FF>(
    client: &Client,
    post: P,
    find: F,
) -> Result<Object, ClientError>
where
    P: Fn() -> PF,
    PF: Future<Output = Result<Object, ClientError>>,
    F: Fn() -> FF,
    FF: Future<Output = Result<Option<Object>, ClientError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let err = match post().await {
            Ok(o) => return Ok(o),
            Err(e) if e.is_ambiguous() && attempt < client.retry.max_attempts => e,
            Err(e) => return Err(e),
        };
        tracing::info!(target: LOG_TARGET, "create failed ambiguously ({err}); re-reading before retrying");
        client.backoff_pause(attempt).await;
        match find().await {
            Ok(Some(o)) => {
                tracing::info!(target: LOG_TARGET, "the failed create had been stored; adopting it");
                return Ok(o);
            }
            Ok(None) => continue,
            Err(e) => return Err(e),
        }
    }
}
