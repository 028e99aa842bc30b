//! The file backend's journal: `<state>.journal` beside the JSON snapshot, so a commit writes
//! what changed rather than the whole document (bytes written grow with the change, not N²).
//!
//! Layout: an 8-byte magic (`SIPFJNL` + format byte), then framed entries, each
//! `[payload length: u32 LE][checksum: first 8 bytes of SHA-256(payload)][payload: JSON]`.
//! The first entry carries no change: it names the lineage and serial of the snapshot the
//! journal continues. Every later entry is one commit: the serial it produced and its changes.
//!
//! Replay is exactly-once by serial: an entry at or below the snapshot's serial is already in it
//! (a crash between writing the snapshot and resetting the journal), the next one must follow it
//! by exactly one. A torn LAST entry (a crash mid-append: cut short, or zero-filled by the file
//! system) is dropped with a warning; it was never acknowledged. A bad entry with more bytes
//! after it is corruption, reported with the file and offset, never skipped.
//!
//! Pure code over bytes: the file handling is in [`super::file`].

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::backend::StateError;
use super::model::{AgentTokens, Change, ProjectRef, State};
use crate::model::ids::{AccountId, AgentId, FinalCustomerId, ObjectId, RestaurantId, ToolId};
use crate::model::secret::Secret;

/// The first bytes of every journal; the last byte is the framing's format version.
pub(crate) const MAGIC: &[u8; 8] = b"SIPFJNL\x01";

/// Length prefix + checksum.
const FRAME_HEADER: usize = 4 + 8;

/// No commit is this large (10,000 restaurants created at once are ~2 MB); a larger length is
/// garbage, and reading it must not allocate gigabytes.
const MAX_ENTRY: usize = 64 << 20;

/// One journal entry: a commit (or, first in the file, the snapshot it continues). Only the
/// first entry names the lineage, format version and project (a commit that records another
/// project writes the whole document instead), so an entry costs little more than its changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entry {
    /// The state's serial once this entry is applied.
    pub serial: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<ProjectRef>,
    /// The commit's changes, in order, grouped by restaurant so each names it once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Group>,
}

/// Consecutive changes of one restaurant (`r`), or of the project's account (no `r`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r: Option<RestaurantId>,
    pub ops: Vec<Op>,
}

/// A [`Change`] as the journal stores it (its restaurant is its [`Group`]'s): the agent's
/// token only as the state keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", deny_unknown_fields)]
pub enum Op {
    Account {
        id: AccountId,
    },
    FinalCustomer {
        id: Option<FinalCustomerId>,
    },
    #[serde(rename_all = "camelCase")]
    Agent {
        id: Option<AgentId>,
        /// The change carried tokens (so the stored token is replaced by `api_token`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        tokens: bool,
        /// The token state keeps (only when `store_tokens` is on).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_token: Option<Secret<String>>,
        /// The salted digest of the tokens state records (never the tokens).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
    },
    Tool {
        name: String,
        id: Option<ToolId>,
    },
    Object {
        kind: String,
        key: String,
        id: Option<ObjectId>,
    },
    Suspended {
        suspended: bool,
    },
    Revision {
        revision: crate::model::revision::AppliedRevision,
    },
    /// The rollout record, whole (in the project's group: no restaurant).
    Rollout {
        record: Box<crate::model::rollout::RolloutRecord>,
    },
}

impl Entry {
    /// The first entry of a journal that continues `state` as a snapshot holds it.
    pub fn base(state: &State) -> Entry {
        Entry {
            serial: state.serial,
            lineage: Some(state.lineage),
            version: Some(state.version),
            project: state.project.clone(),
            changes: Vec::new(),
        }
    }

    /// The entry for a commit of `changes` that produced `state`. Tokens are taken from
    /// `state`, which kept them only if configured to: the journal never holds more.
    pub fn commit(state: &State, changes: &[Change]) -> Entry {
        Entry {
            serial: state.serial,
            lineage: None,
            version: None,
            project: None,
            changes: group(state, changes),
        }
    }

    /// Applies this entry's changes to `state` (the format version follows from them).
    fn apply_to(&self, state: &mut State) -> Result<(), String> {
        for g in &self.changes {
            for op in &g.ops {
                let (change, store_tokens) = op.change(g.r.as_ref())?;
                state.apply(&change, store_tokens);
                // The replayed change holds no tokens to digest: the entry's digest is kept.
                if let (
                    Op::Agent { digest, .. },
                    Change::Agent {
                        tokens: Some(_), ..
                    },
                ) = (op, &change)
                {
                    if let Some(e) = g.r.as_ref().and_then(|r| state.restaurants.get_mut(r)) {
                        e.token_digest = digest.clone();
                    }
                }
            }
        }
        state.serial = self.serial;
        Ok(())
    }
}

/// `changes` in order, consecutive ones of the same restaurant in one group.
fn group(state: &State, changes: &[Change]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for c in changes {
        let r = c.restaurant();
        let op = Op::of(state, c);
        match groups.last_mut() {
            Some(g) if g.r.as_ref() == r => g.ops.push(op),
            _ => groups.push(Group {
                r: r.cloned(),
                ops: vec![op],
            }),
        }
    }
    groups
}

impl Op {
    fn of(state: &State, c: &Change) -> Op {
        match c {
            Change::Account(id) => Op::Account { id: id.clone() },
            Change::FinalCustomer { id, .. } => Op::FinalCustomer { id: id.clone() },
            Change::Agent {
                restaurant,
                id,
                tokens,
            } => {
                let kept = tokens
                    .as_ref()
                    .and_then(|_| state.restaurants.get(restaurant));
                Op::Agent {
                    id: id.clone(),
                    tokens: tokens.is_some(),
                    api_token: kept.and_then(|e| e.api_token.clone()),
                    digest: kept.and_then(|e| e.token_digest.clone()),
                }
            }
            Change::Tool { name, id, .. } => Op::Tool {
                name: name.clone(),
                id: id.clone(),
            },
            Change::Object { kind, key, id, .. } => Op::Object {
                kind: kind.clone(),
                key: key.clone(),
                id: id.clone(),
            },
            Change::Suspended { suspended, .. } => Op::Suspended {
                suspended: *suspended,
            },
            Change::Revision { revision, .. } => Op::Revision {
                revision: revision.clone(),
            },
            Change::Rollout(record) => Op::Rollout {
                record: record.clone(),
            },
        }
    }

    /// The change to replay for restaurant `r`, and whether its token is kept.
    fn change(&self, r: Option<&RestaurantId>) -> Result<(Change, bool), String> {
        let restaurant = || {
            r.cloned()
                .ok_or_else(|| "a restaurant's change names no restaurant".to_string())
        };
        Ok(match self.clone() {
            Op::Account { id } => (Change::Account(id), false),
            Op::FinalCustomer { id } => (
                Change::FinalCustomer {
                    restaurant: restaurant()?,
                    id,
                },
                false,
            ),
            Op::Agent {
                id,
                tokens,
                api_token,
                ..
            } => {
                let keep = api_token.is_some();
                let tokens = tokens.then(|| AgentTokens {
                    api_token: api_token.unwrap_or_else(|| Secret::new(String::new())),
                    public_token: Secret::new(String::new()),
                });
                let change = Change::Agent {
                    restaurant: restaurant()?,
                    id,
                    tokens,
                };
                (change, keep)
            }
            Op::Tool { name, id } => (
                Change::Tool {
                    restaurant: restaurant()?,
                    name,
                    id,
                },
                false,
            ),
            Op::Object { kind, key, id } => (
                Change::Object {
                    restaurant: restaurant()?,
                    kind,
                    key,
                    id,
                },
                false,
            ),
            Op::Suspended { suspended } => (
                Change::Suspended {
                    restaurant: restaurant()?,
                    suspended,
                },
                false,
            ),
            Op::Revision { revision } => (
                Change::Revision {
                    restaurant: restaurant()?,
                    revision,
                },
                false,
            ),
            Op::Rollout { record } => (Change::Rollout(record), false),
        })
    }
}

/// One framed entry, ready to append.
pub fn encode(entry: &Entry) -> Vec<u8> {
    // An entry is plain data with string keys: encoding it cannot fail.
    let payload = serde_json::to_vec(entry).unwrap_or_default();
    let mut out = Vec::with_capacity(FRAME_HEADER + payload.len());
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&checksum(&payload));
    out.extend_from_slice(&payload);
    out
}

/// A whole new journal continuing `state`: the magic and the base entry.
pub fn fresh(state: &State) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&encode(&Entry::base(state)));
    out
}

fn checksum(payload: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(payload);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// What a journal holds: its whole entries, where they end, and whether a torn last entry was
/// left out (its offset).
#[derive(Debug)]
pub struct Scan {
    pub entries: Vec<Entry>,
    /// Bytes up to the end of the last whole entry: where the next append goes.
    pub valid_len: u64,
    pub torn_at: Option<u64>,
}

impl Scan {
    /// The lineage and serial the journal leaves state at (its last whole entry).
    pub fn last(&self) -> Option<(Uuid, u64)> {
        let lineage = self.entries.first()?.lineage?;
        self.entries.last().map(|e| (lineage, e.serial))
    }

    /// The project the journal's first entry records.
    pub fn project(&self) -> Option<&ProjectRef> {
        self.entries.first()?.project.as_ref()
    }
}

/// Why a journal cannot be read: the byte offset and what is wrong there.
#[derive(Debug, Clone, PartialEq)]
pub struct Corrupt {
    pub offset: u64,
    pub message: String,
}

/// Reads every whole entry of a journal. A torn last entry is left out (see [`Scan::torn_at`]);
/// anything else that does not check out is [`Corrupt`].
pub fn scan(bytes: &[u8]) -> Result<Scan, Corrupt> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(Corrupt {
            offset: 0,
            message: "not a sipform journal (bad magic or format version)".into(),
        });
    }
    let mut entries = Vec::new();
    let mut at = MAGIC.len();
    while at < bytes.len() {
        let torn = || Scan {
            entries: Vec::new(),
            valid_len: at as u64,
            torn_at: Some(at as u64),
        };
        let rest = &bytes[at..];
        if rest.len() < FRAME_HEADER {
            return Ok(Scan { entries, ..torn() });
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let all_zero = rest.iter().all(|b| *b == 0);
        if len > MAX_ENTRY || FRAME_HEADER + len > rest.len() {
            if all_zero || FRAME_HEADER + len > rest.len() {
                return Ok(Scan { entries, ..torn() });
            }
            return Err(Corrupt {
                offset: at as u64,
                message: format!("an entry claims {len} bytes"),
            });
        }
        let payload = &rest[FRAME_HEADER..FRAME_HEADER + len];
        if checksum(payload) != rest[4..FRAME_HEADER] {
            if all_zero || FRAME_HEADER + len == rest.len() {
                return Ok(Scan { entries, ..torn() });
            }
            return Err(Corrupt {
                offset: at as u64,
                message: "checksum mismatch in an entry that is not the last".into(),
            });
        }
        let entry: Entry = serde_json::from_slice(payload).map_err(|e| Corrupt {
            offset: at as u64,
            message: format!("an entry with a good checksum does not parse: {e}"),
        })?;
        entries.push(entry);
        at += FRAME_HEADER + len;
    }
    Ok(Scan {
        entries,
        valid_len: at as u64,
        torn_at: None,
    })
}

/// Replays `scan` over `snapshot`: entries the snapshot already holds are skipped, the others
/// must follow it serial by serial, in its lineage. `place` names the journal in errors.
pub fn replay(
    snapshot: Option<State>,
    scan: &Scan,
    place: &str,
) -> Result<Option<State>, StateError> {
    let corrupt = |message: String| StateError::Corrupt {
        place: place.to_string(),
        message,
    };
    // A journal without changes (fresh after a compaction) holds nothing to check or replay:
    // a state file edited by hand since is read as it is.
    let Some(base) = scan.entries.first().filter(|_| scan.entries.len() > 1) else {
        return Ok(snapshot);
    };
    let mut state = match snapshot {
        Some(s) => s,
        None => {
            return Err(corrupt(format!(
                "it holds {} change(s) but the state file beside it is missing; restore the \
                 state file, or remove the journal to start from empty state",
                scan.entries.len() - 1
            )))
        }
    };
    if base.lineage != Some(state.lineage) || base.serial > state.serial {
        let lineage = base.lineage.map_or("none".into(), |l| l.to_string());
        return Err(corrupt(format!(
            "it continues lineage {lineage} at serial {}, but the state file holds lineage {} \
             at serial {}; if the state file was restored by hand, remove the journal",
            base.serial, state.lineage, state.serial
        )));
    }
    for entry in &scan.entries[1..] {
        if entry.serial <= state.serial {
            continue; // already compacted into the snapshot
        }
        if entry.lineage.is_some() || entry.project.is_some() || entry.serial != state.serial + 1 {
            return Err(corrupt(format!(
                "an entry for serial {} does not follow serial {}",
                entry.serial, state.serial
            )));
        }
        entry
            .apply_to(&mut state)
            .map_err(|m| corrupt(format!("the entry for serial {}: {m}", entry.serial)))?;
    }
    Ok(Some(state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tool(r: &str, name: &str, id: &str) -> Change {
        Change::Tool {
            restaurant: RestaurantId::new(r),
            name: name.into(),
            id: Some(ToolId::new(id)),
        }
    }

    /// A snapshot at serial 0 and a journal of `n` commits; the states after each commit.
    fn journal_of(n: usize) -> (State, Vec<u8>, Vec<State>) {
        let snapshot = State::new();
        let mut bytes = fresh(&snapshot);
        let mut s = snapshot.clone();
        let mut states = vec![s.clone()];
        for i in 0..n {
            let changes = vec![
                tool(&format!("r{}", i % 3), &format!("t{i}"), &format!("id-{i}")),
                Change::Agent {
                    restaurant: RestaurantId::new(format!("r{}", i % 3)),
                    id: Some(AgentId::new(format!("a-{i}"))),
                    tokens: Some(AgentTokens {
                        api_token: Secret::new(format!("tok-{i}")),
                        public_token: Secret::new("pk".into()),
                    }),
                },
            ];
            for c in &changes {
                s.apply(c, i % 2 == 0);
            }
            s.serial += 1;
            bytes.extend_from_slice(&encode(&Entry::commit(&s, &changes)));
            states.push(s.clone());
        }
        (snapshot, bytes, states)
    }

    #[test]
    fn replay_rebuilds_every_commit_including_kept_and_dropped_tokens() {
        let (snapshot, bytes, states) = journal_of(5);
        let scan = scan(&bytes).unwrap();
        assert_eq!(scan.torn_at, None);
        let back = replay(Some(snapshot), &scan, "j").unwrap();
        assert_eq!(back.as_ref(), states.last());
    }

    #[test]
    fn replay_is_idempotent_over_a_snapshot_that_already_holds_the_entries() {
        // A crash after writing the snapshot and before resetting the journal.
        let (_, bytes, states) = journal_of(4);
        let scan = scan(&bytes).unwrap();
        let last = states.last().cloned();
        assert_eq!(replay(last.clone(), &scan, "j").unwrap(), last);
        // Half-compacted: the snapshot holds two commits, the journal all four.
        assert_eq!(replay(Some(states[2].clone()), &scan, "j").unwrap(), last);
    }

    #[test]
    fn a_torn_last_entry_is_dropped_a_bad_middle_one_is_fatal() {
        let (snapshot, bytes, states) = journal_of(3);
        let cut = &bytes[..bytes.len() - 5];
        let s = scan(cut).unwrap();
        assert!(s.torn_at.is_some());
        assert_eq!(
            replay(Some(snapshot.clone()), &s, "j").unwrap(),
            Some(states[2].clone())
        );
        // Zero-filled tail (size updated, data lost).
        let mut zeroed = bytes.clone();
        zeroed.extend_from_slice(&[0u8; 40]);
        assert_eq!(scan(&zeroed).unwrap().entries.len(), 4);
        // A flipped byte in the second entry, with more after it.
        let first_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let mut bad = bytes.clone();
        let second = 8 + FRAME_HEADER + first_len;
        bad[second + FRAME_HEADER + 3] ^= 0x20;
        let e = scan(&bad).unwrap_err();
        assert_eq!(e.offset, second as u64);
        assert!(scan(b"not a journal").is_err());
    }

    #[test]
    fn a_gap_another_lineage_or_a_missing_snapshot_is_refused() {
        let (snapshot, bytes, states) = journal_of(3);
        let s = scan(&bytes).unwrap();
        let msg = replay(None, &s, "j.journal").unwrap_err().to_string();
        assert!(
            msg.contains("j.journal") && msg.contains("missing"),
            "{msg}"
        );
        let mut other = snapshot.clone();
        other.lineage = Uuid::new_v4();
        assert!(replay(Some(other), &s, "j").is_err());
        // A fresh journal alone is nothing.
        assert_eq!(
            replay(None, &scan(&fresh(&states[0])).unwrap(), "j").unwrap(),
            None
        );
    }

    proptest! {
        /// Cut anywhere, a journal replays to exactly one of the committed states: never a
        /// half-applied entry.
        #[test]
        fn any_truncation_yields_a_committed_state(n in 1usize..6, cut in 0.0f64..1.0) {
            let (snapshot, bytes, states) = journal_of(n);
            let magic_and_base = fresh(&snapshot).len();
            let at = magic_and_base + ((bytes.len() - magic_and_base) as f64 * cut) as usize;
            let s = scan(&bytes[..at]).unwrap();
            let back = replay(Some(snapshot), &s, "j").unwrap().unwrap();
            prop_assert_eq!(&back, &states[back.serial as usize]);
            prop_assert_eq!(s.valid_len as usize <= at, true);
            prop_assert_eq!(s.torn_at.is_some(), (s.valid_len as usize) < at);
        }
    }
}
