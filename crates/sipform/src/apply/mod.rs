//! apply: carry out a plan, in dependency order, in parallel, recording every id as it comes.
//!
//! The account goes first; then restaurants run concurrently (each one: its one-per-restaurant
//! objects in dependency order, then its many-per-parent objects in parallel), every request
//! bounded by the client's slots. Every action is dispatched through its resource kind. A restaurant that
//! fails stops where it is and the others go on. A create (POST) that fails ambiguously
//! (timeout, reset, 5xx) is followed by a re-read before any retry, so a retry never makes a
//! duplicate even when the server stored the first attempt. Every successful create, adopt or
//! delete is recorded durably before the next step depends on it.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use crate::model::ids::{AccountId, ObjectId, RestaurantId};
use crate::plan::{Action, Op, Plan, RestaurantPlan};
use crate::remote::{Client, ClientError};
use crate::resources::{account, Kind, Kinds, Parents, Shape};
use crate::state::{Change, StateWriter};
use crate::LOG_TARGET;

mod error;
pub(crate) use error::ApplyError;

/// How one restaurant ended.
#[derive(Debug)]
pub struct Outcome {
    pub restaurant: RestaurantId,
    pub name: String,
    /// Actions carried out (adopts included, no-ops not).
    pub done: usize,
    /// Actions the plan held for it.
    pub planned: usize,
    pub error: Option<ApplyError>,
    /// From its first action to its last (waiting for request slots included).
    pub elapsed: Duration,
}

#[derive(Debug)]
pub struct Report {
    pub account_error: Option<ApplyError>,
    pub outcomes: Vec<Outcome>,
    pub requests: u64,
    pub retries: u64,
    pub elapsed: Duration,
    /// The parallelism the run's requests settled on (`None` when no request was sent).
    pub parallelism: Option<crate::remote::Settled>,
    /// The configuration's revision the run applied (set by `ops`, which knows it).
    pub revision: Option<crate::model::revision::Revision>,
    /// Restaurants left untouched because their changes wait (a change window, live calls):
    /// not failures (set by `ops`).
    pub held: Vec<crate::plan::Hold>,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.account_error.is_some() || self.outcomes.iter().any(|o| o.error.is_some())
    }
}

/// Where progress goes: a bar on a terminal, plain lines otherwise.
pub trait Progress: Send + Sync {
    fn action_done(&self);
    fn restaurant_done(&self, outcome: &Outcome);
    /// One write the server confirmed (the controller's cache follows the server with it).
    fn written(&self, _w: &Written<'_>) {}
}

/// A write the server confirmed, as [`Progress::written`] sees it.
#[derive(Debug)]
pub struct Written<'a> {
    pub restaurant: &'a RestaurantId,
    pub resource: crate::plan::Resource,
    /// The object it sits under (the account for a one-per-restaurant kind).
    pub parent: Option<&'a ObjectId>,
    pub op: Op,
    pub id: &'a ObjectId,
    /// A create's answer (adopted after a re-read included), its fields parsed only if read
    /// ([`crate::remote::Created::object`]).
    pub object: Option<&'a crate::remote::Created>,
    /// What an update sent.
    pub body: Option<&'a serde_json::Value>,
}

/// No progress output (tests, `--quiet`).
pub struct Silent;

impl Progress for Silent {
    fn action_done(&self) {}
    fn restaurant_done(&self, _: &Outcome) {}
}

/// Carries out `plan` over sipform's own kinds. Never panics on server behaviour; every
/// failure ends in the report.
pub async fn apply(
    plan: &Plan,
    client: &Client,
    writer: &StateWriter,
    progress: &dyn Progress,
) -> Report {
    apply_with(&Kinds::builtin(), plan, client, writer, progress).await
}

/// [`apply`] over `kinds`.
pub async fn apply_with(
    kinds: &Kinds,
    plan: &Plan,
    client: &Client,
    writer: &StateWriter,
    progress: &dyn Progress,
) -> Report {
    let started = Instant::now();
    let requests_before = client.requests();
    let retries_before = client.retries();
    let mut report = Report {
        account_error: None,
        outcomes: Vec::new(),
        requests: 0,
        retries: 0,
        elapsed: Duration::ZERO,
        parallelism: None,
        revision: None,
        held: Vec::new(),
    };

    match run_account(&plan.account, client, writer).await {
        Ok(account) => {
            let ctx = Ctx {
                kinds,
                client,
                writer,
                account,
                progress,
            };
            // Requests are bounded by the client's slots; this only keeps enough restaurants
            // open to fill them (a restaurant's first steps are sequential).
            let width = plan.restaurants.len().clamp(1, 256);
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
    report.requests = client.requests() - requests_before;
    report.retries = client.retries() - retries_before;
    report.elapsed = started.elapsed();
    report.parallelism = Some(client.settled());
    report
}

/// The account first: every restaurant needs its id.
async fn run_account(
    a: &Action,
    client: &Client,
    writer: &StateWriter,
) -> Result<ObjectId, ApplyError> {
    let server = |source| ApplyError::Server {
        what: "account".into(),
        source,
    };
    let id = match a {
        Action::Create { name, body, .. } => {
            let body = body.value();
            create_with_reread(
                client,
                || account::create(client, &body),
                || account::find_created(client, name),
            )
            .await
            .map_err(server)?
            .id
        }
        Action::Adopt { id, .. } => id.clone(),
        Action::NoOp { id, .. } | Action::Update { id, .. } => return Ok(id.clone()),
        Action::Delete { .. } => {
            return Err(ApplyError::Plan("the account is never deleted".into()))
        }
    };
    writer
        .record(vec![Change::Account(AccountId::from(&id))])
        .await?;
    Ok(id)
}

struct Ctx<'a> {
    kinds: &'a Kinds,
    client: &'a Client,
    writer: &'a StateWriter,
    account: ObjectId,
    progress: &'a dyn Progress,
}

impl Ctx<'_> {
    async fn restaurant(&self, rp: &RestaurantPlan) -> Outcome {
        let started = Instant::now();
        let done = AtomicUsize::new(0);
        let planned = rp.actions.iter().filter(|a| a.op() != Op::NoOp).count();
        let error = self.restaurant_actions(rp, &done).await.err();
        // A write held back because the run is stopping is not a failure worth a warning.
        if let Some(e) = error.as_ref().filter(|e| !e.is_halt()) {
            tracing::warn!(target: LOG_TARGET, restaurant = %rp.restaurant_id, transient = e.is_transient(), "failed: {e}");
        }
        Outcome {
            restaurant: rp.restaurant_id.clone(),
            name: rp.name.clone(),
            done: done.load(Ordering::Relaxed),
            planned,
            error,
            elapsed: started.elapsed(),
        }
    }

    fn kind(&self, a: &Action) -> Result<&dyn Kind, ApplyError> {
        self.kinds.get(a.resource()).ok_or_else(|| {
            ApplyError::Plan(format!(
                "this sipform knows no resource kind {}",
                a.resource()
            ))
        })
    }

    /// One-per-restaurant objects in plan order (parents first, deletes children first),
    /// each needing the one before; then the many-per-parent objects, all at once.
    async fn restaurant_actions(
        &self,
        rp: &RestaurantPlan,
        done: &AtomicUsize,
    ) -> Result<(), ApplyError> {
        let mut parents = Parents::new(self.account.clone());
        let mut children = Vec::new();
        for a in &rp.actions {
            let kind = self.kind(a)?;
            if kind.shape() == Shape::Many {
                children.push((kind, a));
                continue;
            }
            let id = self.act(kind, &rp.restaurant_id, a, &parents).await?;
            parents.set(kind.resource(), id);
            if a.op() != Op::NoOp {
                self.step(done);
            }
        }
        // Deletes first, then the rest: a replacement (delete + create of one slot, as a
        // subscription's) must never have its new id forgotten by the old one's delete.
        let (deletes, rest): (Vec<_>, Vec<_>) = children
            .into_iter()
            .partition(|(_, a)| a.op() == Op::Delete);
        let mut errors = self.children(rp, &parents, deletes, done).await;
        if errors.is_empty() {
            errors = self.children(rp, &parents, rest, done).await;
        }
        ApplyError::of_batch(errors)
    }

    /// Carries out one parent's children at once; the errors of those that failed.
    async fn children(
        &self,
        rp: &RestaurantPlan,
        parents: &Parents,
        actions: Vec<(&dyn Kind, &Action)>,
        done: &AtomicUsize,
    ) -> Vec<ApplyError> {
        let results = futures::future::join_all(actions.into_iter().map(|(kind, a)| async move {
            self.act(kind, &rp.restaurant_id, a, parents).await?;
            if a.op() != Op::NoOp {
                self.step(done);
            }
            Ok::<(), ApplyError>(())
        }))
        .await;
        results.into_iter().filter_map(Result::err).collect()
    }

    fn step(&self, done: &AtomicUsize) {
        done.fetch_add(1, Ordering::Relaxed);
        self.progress.action_done();
    }

    /// Carries out one action; returns the object's id from now on (`None`: deleted).
    async fn act(
        &self,
        kind: &dyn Kind,
        rid: &RestaurantId,
        a: &Action,
        parents: &Parents,
    ) -> Result<Option<ObjectId>, ApplyError> {
        // Once state cannot be written, nothing more may be created or deleted: an object
        // made now could never be recorded. What is in flight finishes; the run ends.
        if a.op() != Op::NoOp {
            if let Some(failure) = self.writer.failure() {
                return Err(ApplyError::Stopped(failure));
            }
        }
        let written = self.confirmer(kind, rid, parents);
        let server = |source| ApplyError::Server {
            what: match kind.shape() {
                Shape::One => kind.resource().label().to_string(),
                Shape::Many => format!("{} {}", kind.resource().label(), a.name()),
            },
            source,
        };
        match a {
            Action::Create { name, body, .. } => {
                let taken = |id: &ObjectId| self.writer.assigns(id.as_str());
                let body = body.value();
                let created = create_with_reread(
                    self.client,
                    || kind.create(self.client, parents, &body),
                    || kind.find_created(self.client, parents, rid, &body, &taken),
                )
                .await
                .map_err(server)?;
                written(Op::Create, &created.id, Some(&created), None);
                self.record(kind.change(rid, name, Some(&created.id), Some(&created.secrets)))
                    .await?;
                self.after_write(kind, rid, name, &body).await?;
                Ok(Some(created.id))
            }
            Action::Adopt { name, id, .. } => {
                let change = kind
                    .adopted(self.client, rid, name, id)
                    .await
                    .map_err(server)?;
                written(Op::Adopt, id, None, None);
                self.record(change).await?;
                Ok(Some(id.clone()))
            }
            Action::Update { name, id, body, .. } => {
                let body = body.value();
                kind.update(self.client, parents, id, &body)
                    .await
                    .map_err(server)?;
                written(Op::Update, id, None, Some(&body));
                self.after_write(kind, rid, name, &body).await?;
                Ok(Some(id.clone()))
            }
            Action::NoOp { id, .. } => Ok(Some(id.clone())),
            Action::Delete { name, id, .. } => {
                kind.delete(self.client, parents, id)
                    .await
                    .map_err(server)?;
                self.confirm_deleted(kind, id).await?;
                written(Op::Delete, id, None, None);
                // Forget it only if state maps it to this very id (a duplicate's delete must
                // not drop the kept object's entry).
                let mapped = self.writer.read(|s| {
                    s.restaurants
                        .get(rid)
                        .and_then(|st| kind.recorded(st, name))
                });
                if mapped.as_ref() == Some(id) {
                    self.record(kind.change(rid, name, None, None)).await?;
                }
                Ok(None)
            }
        }
    }

    /// A delete is done when a read of the object answers 404: a server that answered the
    /// DELETE and kept the object (issue 25, item 5) leaves it in state, recorded, with a
    /// transient error naming the route, so the next run deletes it again. A kind that
    /// cannot be read by id ([`Kind::read_one`] gives `None`) is taken at its word.
    async fn confirm_deleted(&self, kind: &dyn Kind, id: &ObjectId) -> Result<(), ApplyError> {
        let what = format!("{} {id}", kind.resource().label());
        match kind.read_one(self.client, id).await {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err(ApplyError::NotDeleted {
                what,
                route: kind
                    .assumed_routes()
                    .iter()
                    .find(|(m, _)| *m == "DELETE")
                    .map_or("DELETE", |(_, r)| *r)
                    .to_string(),
            }),
            Err(source) => Err(ApplyError::Server { what, source }),
        }
    }

    /// Tells progress (the controller's cache) of each write the server confirmed.
    fn confirmer<'b>(
        &'b self,
        kind: &'b dyn Kind,
        rid: &'b RestaurantId,
        parents: &'b Parents,
    ) -> impl Fn(Op, &ObjectId, Option<&crate::remote::Created>, Option<&serde_json::Value>) + 'b
    {
        let parent = kind.parent().and_then(|p| parents.get(p));
        move |op, id, object, body| {
            self.progress.written(&Written {
                restaurant: rid,
                resource: kind.resource(),
                parent,
                op,
                id,
                object,
                body,
            })
        }
    }

    /// What the kind records after a successful create or update besides the id
    /// ([`Kind::after_write`]: a phone line's password hash), recorded durably.
    async fn after_write(
        &self,
        kind: &dyn Kind,
        rid: &RestaurantId,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<(), ApplyError> {
        let changes = kind
            .after_write(rid, name, body)
            .map_err(|source| ApplyError::Server {
                what: format!("{} {name}", kind.resource().label()),
                source,
            })?;
        for change in changes {
            self.record(change).await?;
        }
        Ok(())
    }

    /// Records durably; on failure, stops every write of the run (an object made after this
    /// could never be recorded).
    async fn record(&self, change: Change) -> Result<(), ApplyError> {
        self.check_owner(&change)?;
        let result = self.writer.record(vec![change]).await;
        if let Err(e) = &result {
            self.client
                .halt_writes(format!("state can no longer be written ({e})"));
        }
        Ok(result?)
    }
}

impl Ctx<'_> {
    /// Refuses to record an agent or final customer id state already gives another restaurant
    /// (a create answered with another restaurant's id: a server bug, a replayed answer):
    /// recorded, the two restaurants would rewrite one object in turn.
    fn check_owner(&self, change: &Change) -> Result<(), ApplyError> {
        let (what, restaurant, id) = match change {
            Change::Agent {
                restaurant,
                id: Some(id),
                ..
            } => ("agent", restaurant, id.as_str()),
            Change::FinalCustomer {
                restaurant,
                id: Some(id),
            } => ("final customer", restaurant, id.as_str()),
            _ => return Ok(()),
        };
        let owner = self.writer.read(|s| {
            s.restaurants
                .iter()
                .find(|(r, e)| {
                    *r != restaurant
                        && match what {
                            "agent" => e.agent_id.as_ref().is_some_and(|a| a.as_str() == id),
                            _ => e
                                .final_customer_id
                                .as_ref()
                                .is_some_and(|f| f.as_str() == id),
                        }
                })
                .map(|(r, _)| r.clone())
        });
        match owner {
            None => Ok(()),
            Some(owner) => Err(ApplyError::Plan(format!(
                "the server gave restaurant {restaurant} the {what} {id}, which belongs to restaurant {owner}: not recorded (one object belongs to one restaurant)"
            ))),
        }
    }
}

/// POST, and after an ambiguous failure look for what the failed attempt may have stored
/// before trying again. `find` returns the object if it exists.
pub(crate) async fn create_with_reread<T, P, PF, F, FF>(
    client: &Client,
    post: P,
    find: F,
) -> Result<T, ClientError>
where
    P: Fn() -> PF,
    PF: Future<Output = Result<T, ClientError>>,
    F: Fn() -> FF,
    FF: Future<Output = Result<Option<T>, ClientError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let err = match post().await {
            Ok(o) => return Ok(o),
            Err(e) if e.is_ambiguous() && attempt < client.max_attempts() => e,
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
