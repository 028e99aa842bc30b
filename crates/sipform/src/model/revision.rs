//! A configuration's revision as data: the git commit it was read at, whether its
//! configuration files were modified, and a digest of what shapes the server objects.
//!
//! Plain validated values (no git, no I/O: `crate::revision` computes them), here so that
//! state and saved plans, below the front end, can record them.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How many hex digits a short commit shows (git's default).
pub(crate) const SHORT_COMMIT_LEN: usize = 7;

/// Why a commit or digest was refused where it entered (state, a saved plan, git's answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevisionValueError {
    #[error("a git commit is 40 lowercase hex digits, not {0:?}")]
    Commit(String),
    #[error("a configuration digest is `sha256:` and 64 lowercase hex digits, not {0:?}")]
    Digest(String),
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A full git commit id (SHA-1, 40 lowercase hex digits), validated where it enters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GitCommit(String);

impl GitCommit {
    /// Checks `s` (surrounding whitespace ignored: git prints a newline).
    pub fn parse(s: &str) -> Result<GitCommit, RevisionValueError> {
        let t = s.trim();
        if is_lower_hex(t, 40) {
            Ok(GitCommit(t.to_string()))
        } else {
            Err(RevisionValueError::Commit(clip(s)))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first seven digits, as git shows them.
    pub fn short(&self) -> &str {
        &self.0[..SHORT_COMMIT_LEN]
    }
}

impl schemars::JsonSchema for GitCommit {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "GitCommit".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": "^[0-9a-f]{40}$" })
    }
}

impl TryFrom<String> for GitCommit {
    type Error = RevisionValueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        GitCommit::parse(&s)
    }
}

impl From<GitCommit> for String {
    fn from(c: GitCommit) -> String {
        c.0
    }
}

impl fmt::Display for GitCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sha256 over what shapes the server objects (tools, template, the settings that reach
/// the server), written `sha256:<64 hex>`: two checkouts with the same digest make the same
/// objects, whatever their commits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConfigDigest(String);

const DIGEST_PREFIX: &str = "sha256:";

impl ConfigDigest {
    pub fn parse(s: &str) -> Result<ConfigDigest, RevisionValueError> {
        match s.strip_prefix(DIGEST_PREFIX) {
            Some(hex) if is_lower_hex(hex, 64) => Ok(ConfigDigest(s.to_string())),
            _ => Err(RevisionValueError::Digest(clip(s))),
        }
    }

    /// From the 32 bytes of a sha256.
    pub fn from_sha256(bytes: [u8; 32]) -> ConfigDigest {
        ConfigDigest(format!("{DIGEST_PREFIX}{}", hex::encode(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first twelve hex digits, enough to tell two configurations apart by eye.
    pub fn short(&self) -> &str {
        &self.0[DIGEST_PREFIX.len()..DIGEST_PREFIX.len() + 12]
    }
}

impl schemars::JsonSchema for ConfigDigest {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ConfigDigest".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": "^sha256:[0-9a-f]{64}$" })
    }
}

impl TryFrom<String> for ConfigDigest {
    type Error = RevisionValueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ConfigDigest::parse(&s)
    }
}

impl From<ConfigDigest> for String {
    fn from(d: ConfigDigest) -> String {
        d.0
    }
}

impl fmt::Display for ConfigDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value quoted in an error, cut short so a corrupt file cannot flood a terminal.
fn clip(s: &str) -> String {
    s.chars().take(48).collect()
}

/// The configuration a run uses: its commit (`None` outside a git repository), whether the
/// configuration files differ from that commit, and their digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Revision {
    pub commit: Option<GitCommit>,
    #[serde(default)]
    pub dirty: bool,
    pub digest: ConfigDigest,
}

impl Revision {
    /// `abc1234`, `abc1234+dirty`, or `no-git` outside a repository: what logs and headers show.
    pub fn short(&self) -> String {
        match (&self.commit, self.dirty) {
            (Some(c), false) => c.short().to_string(),
            (Some(c), true) => format!("{}+dirty", c.short()),
            (None, _) => "no-git".to_string(),
        }
    }

    /// One line for people: `abc1234 (digest 0123456789ab)`, or `no git commit (…)`.
    pub fn describe(&self) -> String {
        let digest = self.digest.short();
        match &self.commit {
            Some(_) => format!("{} (config digest {digest})", self.short()),
            None => format!("no git commit (not a git repository; config digest {digest})"),
        }
    }

    /// What state records for a restaurant this revision reconciled at `at`.
    pub fn applied(&self, at: DateTime<Utc>, rollback_from: Option<GitCommit>) -> AppliedRevision {
        AppliedRevision {
            commit: self.commit.clone(),
            dirty: self.dirty,
            digest: self.digest.clone(),
            at,
            rollback_from,
        }
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

/// The revision that last reconciled a restaurant, as state records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppliedRevision {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<GitCommit>,
    /// Applied from a working tree with uncommitted configuration changes (`--allow-dirty`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dirty: bool,
    pub digest: ConfigDigest,
    pub at: DateTime<Utc>,
    /// Set when this apply went back from that commit (`--allow-rollback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_from: Option<GitCommit>,
}

impl AppliedRevision {
    /// The revision it recorded, without when.
    pub fn revision(&self) -> Revision {
        Revision {
            commit: self.commit.clone(),
            dirty: self.dirty,
            digest: self.digest.clone(),
        }
    }
}

/// What a plan says about one restaurant's recorded revision: an apply of it would go back
/// (allowed with `--allow-rollback`) or is refused, and why, naming both revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevisionNote {
    pub restaurant_id: crate::model::ids::RestaurantId,
    pub name: String,
    /// `true`: apply leaves the restaurant alone; `false`: it goes back, as asked.
    pub refused: bool,
    /// `rollback from abc1234 to def5678`, or why it is refused.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn commits_are_40_lowercase_hex() {
        assert_eq!(GitCommit::parse(&format!("{C}\n")).unwrap().as_str(), C);
        assert_eq!(GitCommit::parse(C).unwrap().short(), "0123456");
        for bad in [
            "",
            "abc",
            &C.to_uppercase(),
            &format!("{C}0"),
            &C.replace('0', "g"),
        ] {
            assert!(GitCommit::parse(bad).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<GitCommit>("\"HEAD\"").is_err());
    }

    #[test]
    fn digests_are_prefixed_sha256() {
        let d = ConfigDigest::from_sha256([0xab; 32]);
        assert_eq!(ConfigDigest::parse(d.as_str()).unwrap(), d);
        assert_eq!(d.short(), "abababababab");
        assert!(ConfigDigest::parse(&"a".repeat(64)).is_err());
        assert!(ConfigDigest::parse("sha256:xyz").is_err());
    }

    #[test]
    fn short_says_dirty_and_no_git() {
        let digest = ConfigDigest::from_sha256([1; 32]);
        let commit = Some(GitCommit::parse(C).unwrap());
        let r = |commit: Option<GitCommit>, dirty| Revision {
            commit,
            dirty,
            digest: digest.clone(),
        };
        assert_eq!(r(commit.clone(), false).short(), "0123456");
        assert_eq!(r(commit, true).short(), "0123456+dirty");
        assert_eq!(r(None, true).short(), "no-git");
        assert!(r(None, false).describe().contains("not a git repository"));
    }
}
