//! Writing remote ids (and the agent's tokens) back to the platform's `restaurants` rows.
//!
//! The platform reads `agent_id`, `final_customer_id`, `agent_api_token` and
//! `agent_public_token` from a restaurant's row at run time, so apply writes them in the same
//! step that records state ([`CommitHook`]): first [`WriteBack::check`] refuses a value that does
//! not fit its column (before anything at all is written, never a truncation), then, once state
//! has committed, one transaction of `UPDATE … WHERE id = …`. A row that no longer exists is
//! simply not updated: sipform never inserts a restaurant. A delete sets the values to NULL.
//! [`WriteBack::drifted`] finds the rows whose values are not state's (a crash between the two
//! writes, the platform's settings page saving a stale whole object, an edit), so every apply
//! and the controller rewrite them.
//!
//! Tokens are bound parameters only: never in SQL text, a log line or an error.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::cells::Cells;
use super::PlatformTable;
use crate::db::{with_pool, DbError, Engine};
use crate::model::ids::{RemoteId, RestaurantId, MAX_ID_LEN};
use crate::model::secret::Secret;
use crate::state::{token_digest_of, Change, CommitHook, RestaurantState, State, StateError};

/// Longest token the platform's `varchar(128)` token columns hold.
pub(crate) const MAX_TOKEN_LEN: usize = 128;

/// Salted digests of the tokens this process wrote to each row (restaurant id → digest): never
/// the tokens themselves, never stored or printed; lost at exit. State also records a salted
/// digest per restaurant ([`RestaurantState::token_digest`]), which any process compares.
#[derive(Clone, Default)]
pub(crate) struct TokenDigests(Arc<Mutex<HashMap<String, u64>>>, RandomState);

impl TokenDigests {
    fn digest(&self, api: &str, public: &str) -> u64 {
        self.1.hash_one((api, public))
    }

    fn set(&self, restaurant: &str, tokens: Option<(&str, &str)>) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match tokens {
            Some((a, p)) => {
                let d = self.digest(a, p);
                map.insert(restaurant.to_string(), d);
            }
            None => {
                map.remove(restaurant);
            }
        }
    }

    /// Whether the row's tokens are not the ones this process last wrote (unknown: false).
    fn differ(&self, restaurant: &str, api: &str, public: &str) -> bool {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(restaurant)
            .is_some_and(|d| *d != self.digest(api, public))
    }
}

/// Writes changes back to the platform's rows; build it with [`PlatformTable::write_back`].
#[derive(Clone)]
pub struct WriteBack {
    table: PlatformTable,
}

impl PlatformTable {
    /// The commit hook that writes ids (and tokens, when configured) back to this table.
    pub fn write_back(&self) -> WriteBack {
        WriteBack {
            table: self.clone(),
        }
    }
}

/// One UPDATE: `SET col = value, …` for the row `restaurant`.
struct Update {
    restaurant: String,
    sets: Vec<(&'static str, Option<String>)>,
}

impl WriteBack {
    pub fn describe(&self) -> String {
        self.table.describe()
    }

    /// Refuses a change whose values do not fit the platform's columns: an id longer than 36
    /// characters, a token longer than 128. Nothing is written by this call.
    pub(crate) fn check_change(&self, change: &Change) -> Result<(), DbError> {
        let too_long =
            |restaurant: &str, what: &str, column: &str, len: usize, max: usize| DbError::TooLong {
                place: self.table.describe(),
                restaurant: restaurant.to_string(),
                what: what.to_string(),
                column: self.table.columns.get(column).to_string(),
                len,
                max,
            };
        match change {
            Change::Agent {
                restaurant,
                id,
                tokens,
            } => {
                if let Some(id) = id {
                    if !id.fits_platform_column() {
                        return Err(too_long(
                            restaurant.as_str(),
                            &format!("agent id {:?}", id.as_str()),
                            "agent_id",
                            id.as_str().chars().count(),
                            MAX_ID_LEN,
                        ));
                    }
                }
                if let (Some(t), true) = (tokens, self.table.write_back_tokens) {
                    for (what, column, value) in [
                        ("the agent's api token", "agent_api_token", &t.api_token),
                        (
                            "the agent's public token",
                            "agent_public_token",
                            &t.public_token,
                        ),
                    ] {
                        let len = value.expose().chars().count();
                        if len > MAX_TOKEN_LEN {
                            return Err(too_long(
                                restaurant.as_str(),
                                what,
                                column,
                                len,
                                MAX_TOKEN_LEN,
                            ));
                        }
                    }
                }
                Ok(())
            }
            Change::FinalCustomer {
                restaurant,
                id: Some(id),
            } if !id.fits_platform_column() => Err(too_long(
                restaurant.as_str(),
                &format!("final customer id {:?}", id.as_str()),
                "final_customer_id",
                id.as_str().chars().count(),
                MAX_ID_LEN,
            )),
            _ => Ok(()),
        }
    }

    fn update_for(&self, change: &Change) -> Option<Update> {
        let tokens_too = self.table.write_back_tokens;
        match change {
            Change::Agent {
                restaurant,
                id,
                tokens,
            } => {
                let mut sets = vec![("agent_id", id.as_ref().map(|i| i.as_str().to_string()))];
                if tokens_too {
                    match (id, tokens) {
                        (None, _) => {
                            sets.push(("agent_api_token", None));
                            sets.push(("agent_public_token", None));
                        }
                        (Some(_), Some(t)) => {
                            sets.push(("agent_api_token", Some(reveal(&t.api_token))));
                            sets.push(("agent_public_token", Some(reveal(&t.public_token))));
                        }
                        (Some(_), None) => {}
                    }
                }
                Some(Update {
                    restaurant: restaurant.as_str().to_string(),
                    sets,
                })
            }
            Change::FinalCustomer { restaurant, id } => Some(Update {
                restaurant: restaurant.as_str().to_string(),
                sets: vec![(
                    "final_customer_id",
                    id.as_ref().map(|i| i.as_str().to_string()),
                )],
            }),
            // The platform's row holds only agent and final-customer ids and tokens.
            Change::Account(_)
            | Change::Tool { .. }
            | Change::Object { .. }
            | Change::Suspended { .. }
            | Change::Revision { .. }
            | Change::Rollout(_) => None,
        }
    }

    fn update_sql(&self, u: &Update) -> String {
        let e = self.table.db.engine();
        let sets: Vec<String> = u
            .sets
            .iter()
            .enumerate()
            .map(|(i, (c, _))| format!("{} = {}", self.table.columns.q(c), e.placeholder(i + 1)))
            .collect();
        let key = e.placeholder(u.sets.len() + 1);
        format!(
            "UPDATE {} SET {} WHERE {}",
            self.table.table.quoted(),
            sets.join(", "),
            self.table
                .id_match
                .condition(&self.table.columns.q("id"), &key)
        )
    }

    /// Runs `updates` in one transaction; returns how many rows changed.
    async fn run(&self, updates: Vec<Update>) -> Result<u64, DbError> {
        let updates: Vec<Update> = updates
            .into_iter()
            .filter(|u| self.table.id_match.can_match(&u.restaurant))
            .collect();
        if updates.is_empty() {
            return Ok(0);
        }
        let db = &self.table.db;
        let what = format!("writing ids back to table {}", self.table.table);
        let begin = match db.engine() {
            Engine::Sqlite => "BEGIN IMMEDIATE",
            Engine::Postgres => "BEGIN",
        };
        with_pool!(db, p => {
            let mut tx = p.begin_with(begin).await.map_err(|e| db.err(&what, e))?;
            let result = async {
                let mut changed = 0;
                for u in &updates {
                    let sql = self.update_sql(u);
                    let mut q = sqlx::query(&sql);
                    for (_, v) in &u.sets {
                        q = q.bind(v.clone());
                    }
                    q = q.bind(u.restaurant.clone());
                    changed += q
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| db.err(&format!("{what} (restaurant {})", u.restaurant), e))?
                        .rows_affected();
                }
                Ok::<u64, DbError>(changed)
            }
            .await;
            match result {
                Ok(changed) => {
                    tx.commit().await.map_err(|e| db.err(&what, e))?;
                    Ok(changed)
                }
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(e)
                }
            }
        })
    }

    /// Writes `changes` to their rows (after state committed them); returns the number of rows
    /// updated (a deleted row counts none).
    pub async fn write(&self, changes: &[Change]) -> Result<u64, DbError> {
        for c in changes {
            self.check_change(c)?;
        }
        let updates = changes.iter().filter_map(|c| self.update_for(c)).collect();
        let n = self.run(updates).await?;
        if self.table.write_back_tokens {
            for c in changes {
                if let Change::Agent {
                    restaurant,
                    id,
                    tokens,
                } = c
                {
                    let digests = &self.table.written_tokens;
                    match (id, tokens) {
                        (None, _) => digests.set(restaurant.as_str(), None),
                        (Some(_), Some(t)) => digests.set(
                            restaurant.as_str(),
                            Some((t.api_token.expose(), t.public_token.expose())),
                        ),
                        (Some(_), None) => {}
                    }
                }
            }
        }
        Ok(n)
    }

    /// The rows whose written-back values are not what `state` knows for their restaurant
    /// (the rows of `ids` only, when given): an id that differs, a token column NULL or empty
    /// while state has an agent (the platform's settings page saved a stale whole object),
    /// tokens whose salted digest is not the one state recorded (edited), a token that is not
    /// the one state keeps (`store_tokens`), or tokens left without an
    /// agent. Rows of restaurants state does not know are adoption's business, not listed.
    pub async fn drifted(
        &self,
        state: &State,
        ids: Option<&BTreeSet<RestaurantId>>,
    ) -> Result<Vec<Drift>, DbError> {
        let rows = self.read_back(ids).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let rid = RestaurantId::new(row.id.as_str());
                let known = state.restaurants.get(&rid)?;
                self.drift_of(&state.lineage, rid, known, row)
            })
            .collect())
    }

    fn drift_of(
        &self,
        lineage: &uuid::Uuid,
        restaurant: RestaurantId,
        rs: &RestaurantState,
        row: RowBack,
    ) -> Option<Drift> {
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|t| t.trim().is_empty());
        let agent = rs.agent_id.as_ref().map(|a| a.as_str());
        let fc = rs.final_customer_id.as_ref().map(|f| f.as_str());
        let row_agent = row.agent.filter(|a| !a.trim().is_empty());
        let row_fc = row.final_customer.filter(|f| !f.trim().is_empty());
        let ids_differ = row_agent.as_deref() != agent || row_fc.as_deref() != fc;
        let (api, public) = (
            row.api_token.as_deref().unwrap_or_default(),
            row.public_token.as_deref().unwrap_or_default(),
        );
        let tokens = self.table.write_back_tokens
            && match agent {
                Some(_) => {
                    blank(&row.api_token)
                        || blank(&row.public_token)
                        || self
                            .table
                            .written_tokens
                            .differ(restaurant.as_str(), api, public)
                        || rs.token_digest.as_ref().is_some_and(|d| {
                            *d != token_digest_of(lineage, restaurant.as_str(), api, public)
                        })
                        || rs
                            .api_token
                            .as_ref()
                            .is_some_and(|t| Some(t.expose().as_str()) != row.api_token.as_deref())
                }
                None => !blank(&row.api_token) || !blank(&row.public_token),
            };
        if !ids_differ && !tokens {
            return None;
        }
        Some(Drift {
            restaurant,
            row_agent: row_agent.filter(|a| Some(a.as_str()) != agent),
            tokens,
        })
    }

    /// The written-back columns of the rows of `ids` (every row when `None`), 500 ids a query.
    async fn read_back(
        &self,
        ids: Option<&BTreeSet<RestaurantId>>,
    ) -> Result<Vec<RowBack>, DbError> {
        let Some(ids) = ids else {
            return self.read_back_where(&[]).await;
        };
        let ids: Vec<&str> = ids
            .iter()
            .map(RestaurantId::as_str)
            .filter(|id| self.table.id_match.can_match(id))
            .collect();
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            out.extend(self.read_back_where(chunk).await?);
        }
        Ok(out)
    }

    /// One SELECT of the written-back columns; `ids` empty reads every row.
    async fn read_back_where(&self, ids: &[&str]) -> Result<Vec<RowBack>, DbError> {
        let (t, c, e) = (&self.table, &self.table.columns, self.table.db.engine());
        let tokens = if t.write_back_tokens {
            format!(
                "CAST({} AS TEXT), CAST({} AS TEXT)",
                c.q("agent_api_token"),
                c.q("agent_public_token")
            )
        } else {
            "NULL, NULL".to_string()
        };
        let filter = if ids.is_empty() {
            String::new()
        } else {
            let conds: Vec<String> = (1..=ids.len())
                .map(|i| t.id_match.condition(&c.q("id"), &e.placeholder(i)))
                .collect();
            format!(" WHERE {}", conds.join(" OR "))
        };
        let sql = format!(
            "SELECT CAST({} AS TEXT), CAST({} AS TEXT), CAST({} AS TEXT), {tokens} FROM {}{filter}",
            c.q("id"),
            c.q("agent_id"),
            c.q("final_customer_id"),
            t.table.quoted()
        );
        let what = format!("reading the written-back columns of table {}", t.table);
        let db = &t.db;
        with_pool!(db, p => {
            let mut q = sqlx::query(&sql);
            for id in ids {
                q = q.bind(*id);
            }
            let rows = q.fetch_all(p).await.map_err(|e| db.err(&what, e))?;
            rows.iter()
                .filter_map(|r| RowBack::read(r).transpose())
                .collect::<Result<Vec<_>, String>>()
                .map_err(|message| DbError::BadValue {
                    place: db.describe(),
                    table: t.table.to_string(),
                    key: "?".into(),
                    column: "agent_id, final_customer_id or a token".into(),
                    message,
                })
        })
    }
}

/// A row whose written-back values are not what state knows ([`WriteBack::drifted`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub restaurant: RestaurantId,
    /// The agent id the row names instead of state's, when it names one: it may be another
    /// project's agent, which is reported and never overwritten (the caller asks the server).
    pub row_agent: Option<String>,
    /// The token columns need the agent's tokens (read from the server) or clearing.
    pub tokens: bool,
}

/// What a row holds in its written-back columns (tokens only when written back).
struct RowBack {
    id: String,
    agent: Option<String>,
    final_customer: Option<String>,
    api_token: Option<String>,
    public_token: Option<String>,
}

impl RowBack {
    /// `None` for a row whose id is NULL (nothing to write back to).
    fn read<R: Cells>(r: &R) -> Result<Option<RowBack>, String> {
        let Some(id) = r.text(0)? else {
            return Ok(None);
        };
        Ok(Some(RowBack {
            id,
            agent: r.text(1)?,
            final_customer: r.text(2)?,
            api_token: r.text(3)?,
            public_token: r.text(4)?,
        }))
    }
}

fn reveal(s: &Secret<String>) -> String {
    s.expose().clone()
}

/// The platform's message as it is (it names the table, row and column), with whether a later
/// run may succeed.
fn hook_error(e: DbError) -> StateError {
    StateError::Hook {
        transient: e.is_transient(),
        message: e.to_string(),
    }
}

#[async_trait]
impl CommitHook for WriteBack {
    fn check(&self, change: &Change) -> Result<(), StateError> {
        self.check_change(change).map_err(hook_error)
    }

    async fn after_commit(&self, changes: &[Change]) -> Result<(), StateError> {
        self.write(changes).await.map(|_| ()).map_err(hook_error)
    }
}
