//! refresh: read what exists on the server, in as few requests as the API allows.
//!
//! The account list; then, in parallel, one list per one-per-restaurant kind (final customers
//! and agents of the account); then one list per parent object that matters for each
//! many-per-parent kind (the tools of every agent a restaurant in scope records or claims; the
//! subscriptions of every final customer it records or may adopt by name), bounded by the
//! client's slots. The account's plans are read once. Every object is typed where it enters (see `remote`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::model::ids::{ObjectId, RestaurantId};
use crate::model::spec::Desired;
use crate::remote::ServerObject;
use crate::remote::{Client, ClientError};
use crate::resources::actual::Children;
use crate::resources::index::ObjectIndex;
use crate::resources::owners::Owners;
use crate::resources::{account, Actual, Kinds, Resource, Shape};
use crate::state::State;

/// What the server has, as a plan reads it: from the server itself ([`Refresh`]), or from the
/// controller's cache (`controller::cache`). One plan (`ops::plan`) runs over either.
pub(crate) trait ServerView: Send {
    /// The account and the one-per-restaurant objects a plan of `scope` (every restaurant when
    /// `None`) looks at, without children.
    fn singles(
        &mut self,
        kinds: &Kinds,
        desired: &Desired,
        state: &State,
        scope: Option<&BTreeSet<RestaurantId>>,
    ) -> impl Future<Output = Result<Actual, RefreshError>> + Send;

    /// Starts reading the lists under `parents` (child kind, parent id): it may run while an
    /// earlier batch is planned. A list that does not matter may be left out.
    fn start_children(
        &mut self,
        kinds: &Kinds,
        parents: &BTreeSet<(Resource, ObjectId)>,
    ) -> ChildrenRead;

    /// The lists a started read brought.
    fn finish_children(
        &mut self,
        read: ChildrenRead,
    ) -> impl Future<Output = Result<Children, ClientError>> + Send;

    /// The index kept over every one-per-restaurant object the view holds (the controller's
    /// cache), for a plan to look up instead of indexing what it is given; `None`: the plan
    /// builds its own, once.
    fn index(&self) -> Option<std::sync::Arc<ObjectIndex>> {
        None
    }

    /// Who state records each object for, kept for `state` (the controller's cache keeps it
    /// with the state it keeps); `None`: the plan builds it, once.
    fn owners(&mut self, _kinds: &Kinds, _state: &State) -> Option<std::sync::Arc<Owners>> {
        None
    }
}

/// A read of children lists: what was at hand at once, and what is still coming from the
/// server (cancelled when dropped: a plan that fails stops what it started ahead).
pub(crate) struct ChildrenRead {
    ready: Children,
    reading: Option<tokio::task::JoinHandle<Result<Children, ClientError>>>,
}

impl ChildrenRead {
    /// Lists at hand; `parents` read from the server, in the background, when any.
    pub fn start(
        ready: Children,
        kinds: &Kinds,
        client: &Client,
        parents: Vec<(Resource, ObjectId)>,
    ) -> ChildrenRead {
        let reading = (!parents.is_empty()).then(|| {
            let (kinds, client) = (kinds.clone(), client.clone());
            tokio::spawn(async move { read_children(&kinds, &client, parents).await })
        });
        ChildrenRead { ready, reading }
    }

    /// What was at hand, and what the server answered (a read that panicked panics here, as
    /// if it had run inline).
    pub async fn join(mut self) -> Result<(Children, Children), ClientError> {
        let read = match self.reading.as_mut() {
            None => Children::new(),
            Some(handle) => match handle.await {
                Ok(v) => v?,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => return Err(ClientError::Build("a read ahead was cancelled".into())),
            },
        };
        self.reading = None;
        Ok((std::mem::take(&mut self.ready), read))
    }
}

impl Drop for ChildrenRead {
    fn drop(&mut self) {
        if let Some(h) = &self.reading {
            h.abort();
        }
    }
}

/// The server itself, read for one plan: the account-level lists once, then the children
/// lists that matter, batch by batch.
pub(crate) struct Refresh<'c> {
    client: &'c Client,
    account_name: &'c str,
    /// Whether the one-per-restaurant objects are packed as read (see `ServerObject::pack`).
    pack: bool,
    /// The parents whose children matter, learnt by [`ServerView::singles`].
    reads: HashSet<(Resource, ObjectId)>,
}

impl<'c> Refresh<'c> {
    pub fn new(client: &'c Client, account_name: &'c str) -> Refresh<'c> {
        Refresh {
            client,
            account_name,
            pack: true,
            reads: HashSet::new(),
        }
    }
}

impl ServerView for Refresh<'_> {
    async fn singles(
        &mut self,
        kinds: &Kinds,
        desired: &Desired,
        state: &State,
        scope: Option<&BTreeSet<RestaurantId>>,
    ) -> Result<Actual, RefreshError> {
        let (actual, reads) = read_singles(
            kinds,
            self.client,
            self.account_name,
            desired,
            state,
            scope,
            self.pack,
        )
        .await?;
        self.reads = reads.into_iter().collect();
        Ok(actual)
    }

    fn start_children(
        &mut self,
        kinds: &Kinds,
        parents: &BTreeSet<(Resource, ObjectId)>,
    ) -> ChildrenRead {
        let wanted = parents
            .iter()
            .filter(|p| self.reads.contains(*p))
            .cloned()
            .collect();
        ChildrenRead::start(Children::new(), kinds, self.client, wanted)
    }

    async fn finish_children(&mut self, read: ChildrenRead) -> Result<Children, ClientError> {
        let (mut ready, read) = read.join().await?;
        ready.extend(read);
        Ok(ready)
    }
}

/// Why refresh could not say what exists.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Server(#[from] ClientError),
    /// Two accounts carry the project's account name and state records neither: another copy
    /// of this project (another state backend, a lost state) made one. Guessing would split
    /// the restaurants between them.
    #[error("{count} accounts on the server are named {name:?} ({ids}): sipform cannot tell which one this project manages. Keep one (delete or rename the others), or give this project another account name")]
    DuplicateAccount {
        name: String,
        count: usize,
        ids: String,
    },
}

/// The account state records, whatever else carries its name (the platform's own provisioning
/// may make a second one during a switch-over); else the one of that name, more than one being
/// an error.
fn the_account(
    accounts: Vec<ServerObject>,
    recorded: Option<&ObjectId>,
    name: &str,
) -> Result<Option<ServerObject>, RefreshError> {
    let named: Vec<&ServerObject> = accounts.iter().filter(|a| a.name() == Some(name)).collect();
    if named.len() > 1 && !account::recorded_among(&accounts, recorded) {
        return Err(RefreshError::DuplicateAccount {
            name: name.to_string(),
            count: named.len(),
            ids: named
                .iter()
                .map(|a| a.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(account::pick(accounts, recorded, name))
}

/// Reads the account and every object of the restaurants in scope (desired or in state), over
/// `kinds`. `scope` limits restaurants (`--target`).
pub async fn refresh_with(
    kinds: &Kinds,
    client: &Client,
    account_name: &str,
    desired: &Desired,
    state: &State,
    scope: Option<&BTreeSet<RestaurantId>>,
) -> Result<Actual, RefreshError> {
    let (mut actual, reads) =
        read_singles(kinds, client, account_name, desired, state, scope, false).await?;
    actual.children = read_children(kinds, client, reads).await?;
    Ok(actual)
}

/// The objects under the parents `reads` names (child kind, parent id), in parallel.
pub(crate) async fn read_children(
    kinds: &Kinds,
    client: &Client,
    reads: impl IntoIterator<Item = (Resource, ObjectId)>,
) -> Result<Children, ClientError> {
    stream::iter(reads)
        .map(|(kind, parent)| async move {
            let k = kinds
                .get(kind)
                .ok_or_else(|| ClientError::Build(format!("unknown kind {kind}")))?;
            let list = k.list(client, &parent).await?;
            Ok::<_, ClientError>(((kind, parent), list))
        })
        .buffer_unordered(64)
        .try_collect()
        .await
}

/// The account and every object of the one-per-restaurant kinds (one list each, in parallel),
/// and what kinds read once per account (the billing plans) when `plans`: what the controller's cache holds at each full
/// resync. No children. An [`Actual`] without account when it does not exist yet.
pub(crate) async fn read_account_level(
    kinds: &Kinds,
    client: &Client,
    account_name: &str,
    state: &State,
    plans: bool,
    pack: bool,
) -> Result<Actual, RefreshError> {
    let recorded = state
        .account_id
        .as_ref()
        .and_then(|id| id.to_object_id().ok());
    let accounts = account::list(client).await?;
    let Some(account) = the_account(accounts, recorded.as_ref(), account_name)? else {
        return Ok(Actual::default());
    };
    // Every list at once, the billing plans with them.
    let lists = futures::future::try_join_all(kinds.singletons().map(|k| async {
        let list = if pack {
            k.list_packed(client, &account.id).await?
        } else {
            k.list(client, &account.id).await?
        };
        Ok::<_, ClientError>((k.resource(), list))
    }));
    let extra = async {
        if !plans {
            return Ok(Vec::new());
        }
        let reads = kinds.iter().map(|k| k.account_data(client, &account.id));
        futures::future::try_join_all(reads).await
    };
    let (lists, extra) = futures::future::try_join(lists, extra).await?;
    let mut singles: BTreeMap<_, _> = lists.into_iter().collect();
    singles.extend(extra.into_iter().flatten());
    Ok(Actual {
        account: Some(account),
        singles,
        children: Children::new(),
    })
}

/// The first part of [`refresh_with`]: the account and the one-per-restaurant objects, without
/// children (an [`Actual`] whose `children` is empty), and which parents' children matter
/// (child kind, parent id). A plan reads those a batch of restaurants at a time
/// ([`read_children`], [`crate::diff::Planner`]).
pub(crate) async fn read_singles(
    kinds: &Kinds,
    client: &Client,
    account_name: &str,
    desired: &Desired,
    state: &State,
    scope: Option<&BTreeSet<RestaurantId>>,
    pack: bool,
) -> Result<(Actual, Vec<(Resource, ObjectId)>), RefreshError> {
    // The account's billing plans, once per run: every subscription's plan is chosen among
    // them. Not read when no restaurant wants a subscription.
    let billed = desired
        .restaurants
        .iter()
        .any(|r| kinds.iter().any(|k| k.needs_account_data(r)));
    let actual = read_account_level(kinds, client, account_name, state, billed, pack).await?;
    let Some(account) = actual.account.clone() else {
        return Ok((Actual::default(), Vec::new()));
    };
    let singles = actual.singles;
    let reads = parents_to_read(kinds, &singles, desired, state, scope);
    let actual = Actual {
        account: Some(account),
        singles,
        children: Children::new(),
    };
    Ok((actual, reads))
}

/// The parent objects whose children matter (child kind, parent id): recorded in state for a
/// restaurant in scope, or claiming one; for a kind that replaces, also those a restaurant may
/// adopt by key or through a link.
fn parents_to_read(
    kinds: &Kinds,
    singles: &BTreeMap<Resource, Vec<ServerObject>>,
    desired: &Desired,
    state: &State,
    scope: Option<&BTreeSet<RestaurantId>>,
) -> Vec<(Resource, ObjectId)> {
    let in_scope = |r: &RestaurantId| scope.is_none_or(|s| s.contains(r));
    let wanted: BTreeSet<&str> = desired
        .restaurants
        .iter()
        .map(|r| &r.id)
        .chain(state.restaurants.keys())
        .filter(|r| in_scope(r))
        .map(RestaurantId::as_str)
        .collect();
    let of = |r: Resource| singles.get(&r).map_or(&[][..], Vec::as_slice);
    // Objects that claimed objects point at (the final customer of an agent a restaurant
    // claims): adopted through that link, so a replacing kind's children are read under them.
    let linked: BTreeSet<(Resource, ObjectId)> = kinds
        .singletons()
        .flat_map(|k| {
            of(k.resource())
                .iter()
                .filter(|o| k.claims(o).is_some_and(|r| wanted.contains(r)))
                .filter_map(move |o| k.links(o))
        })
        .collect();
    let mut reads = Vec::new();
    for parent in kinds.singletons() {
        let children: Vec<_> = kinds.children_of(parent.resource()).collect();
        if children.is_empty() {
            continue;
        }
        let recorded: BTreeSet<ObjectId> = state
            .restaurants
            .iter()
            .filter(|(r, _)| in_scope(r))
            .filter_map(|(_, st)| parent.recorded(st, ""))
            .collect();
        // A kind that replaces must see what exists before it creates beside it: its parents
        // that a restaurant may adopt by key (a final customer by name) or through a link
        // are read too.
        let keys: BTreeSet<String> = desired
            .restaurants
            .iter()
            .filter(|r| in_scope(&r.id))
            .flat_map(|r| parent.desired(r))
            .map(|d| d.key)
            .collect();
        for o in of(parent.resource()) {
            let claimed = parent.claims(o).is_some_and(|r| wanted.contains(r));
            let known = recorded.contains(&o.id) || claimed;
            let by_key = parent.key_of(o).is_some_and(|k| keys.contains(k))
                || linked.contains(&(parent.resource(), o.id.clone()));
            for child in &children {
                if known || (by_key && child.replaces()) {
                    reads.push((child.resource(), o.id.clone()));
                }
            }
        }
    }
    debug_assert!(kinds
        .iter()
        .all(|k| k.shape() == Shape::One || k.parent().is_some()));
    reads
}
