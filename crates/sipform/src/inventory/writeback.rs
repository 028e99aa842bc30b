//! Writing remote ids (and the agent's tokens) back to the platform's `restaurants` rows.
//!
//! The platform reads `agent_id`, `final_customer_id`, `agent_api_token` and
//! `agent_public_token` from a restaurant's row at run time, so apply writes them in the same
//! step that records state ([`CommitHook`]): first [`WriteBack::check`] refuses a value that does
//! not fit its column (before anything at all is written, never a truncation), then, once state
//! has committed, one transaction of `UPDATE … WHERE id = …`. A row that no longer exists is
//! simply not updated: sipform never inserts a restaurant. A delete sets the values to NULL.
//! [`WriteBack::reconcile`] heals rows left behind by a crash between the two writes.
//!
//! Tokens are bound parameters only: never in SQL text, a log line or an error.

use async_trait::async_trait;

use super::PlatformTable;
use crate::db::{with_pool, DbError, Engine};
use crate::model::ids::{RemoteId, MAX_ID_LEN};
use crate::model::secret::Secret;
use crate::state::{Change, CommitHook, State, StateError};

/// Longest token the platform's `varchar(128)` token columns hold.
pub const MAX_TOKEN_LEN: usize = 128;

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
    pub fn check_change(&self, change: &Change) -> Result<(), DbError> {
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
            | Change::Revision { .. } => None,
        }
    }

    fn update_sql(&self, u: &Update, only_if_different: bool) -> String {
        let e = self.table.db.engine();
        let sets: Vec<String> = u
            .sets
            .iter()
            .enumerate()
            .map(|(i, (c, _))| format!("{} = {}", self.table.columns.q(c), e.placeholder(i + 1)))
            .collect();
        let key = e.placeholder(u.sets.len() + 1);
        let mut sql = format!(
            "UPDATE {} SET {} WHERE {}",
            self.table.table.quoted(),
            sets.join(", "),
            self.table
                .id_match
                .condition(&self.table.columns.q("id"), &key)
        );
        if only_if_different {
            let distinct = match e {
                Engine::Sqlite => "IS NOT",
                Engine::Postgres => "IS DISTINCT FROM",
            };
            let diffs: Vec<String> = u
                .sets
                .iter()
                .enumerate()
                .map(|(i, (c, _))| {
                    format!(
                        "{} {distinct} {}",
                        self.table.columns.q(c),
                        e.placeholder(i + 1)
                    )
                })
                .collect();
            sql.push_str(&format!(" AND ({})", diffs.join(" OR ")));
        }
        sql
    }

    /// Runs `updates` in one transaction; returns how many rows changed.
    async fn run(&self, updates: Vec<Update>, only_if_different: bool) -> Result<u64, DbError> {
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
                    let sql = self.update_sql(u, only_if_different);
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
        self.run(updates, false).await
    }

    /// Sets `agent_id` and `final_customer_id` of every row that `state` knows to the state's
    /// values, where they differ: heals a crash between a state commit and its write-back.
    /// Tokens are not touched (state may not hold them). Returns the number of rows changed.
    pub async fn reconcile(&self, state: &State) -> Result<u64, DbError> {
        let mut updates = Vec::new();
        for (rid, rs) in &state.restaurants {
            for c in [
                Change::FinalCustomer {
                    restaurant: rid.clone(),
                    id: rs.final_customer_id.clone(),
                },
                Change::Agent {
                    restaurant: rid.clone(),
                    id: rs.agent_id.clone(),
                    tokens: None,
                },
            ] {
                self.check_change(&c)?;
            }
            updates.push(Update {
                restaurant: rid.as_str().to_string(),
                sets: vec![
                    (
                        "agent_id",
                        rs.agent_id.as_ref().map(|i| i.as_str().to_string()),
                    ),
                    (
                        "final_customer_id",
                        rs.final_customer_id
                            .as_ref()
                            .map(|i| i.as_str().to_string()),
                    ),
                ],
            });
        }
        self.run(updates, true).await
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
