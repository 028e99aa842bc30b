//! The configuration's revision: which git commit a run's tools, template and settings come
//! from, whether they were modified since, and a digest of what they make on the server.
//!
//! Git is asked through the `git` binary (`std::process::Command`), not `git2` or `gix`: no C
//! build and no large dependency, the very git (version, config, credentials, safe.directory)
//! the operator uses, and any repository layout git itself understands (worktrees, submodules,
//! a project in a subfolder). Every call runs with `-C <project root>` and without the
//! caller's `GIT_DIR`/`GIT_WORK_TREE`, so it is about the project and nothing else.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::front::load::{self, PROJECT_FILE};
pub use crate::model::revision::{
    AppliedRevision, ConfigDigest, GitCommit, Revision, RevisionNote, RevisionValueError,
};

/// Why a revision could not be computed or compared.
#[derive(Debug, thiserror::Error)]
pub enum RevisionError {
    #[error("cannot read {path} for the configuration digest: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot list the tool files: {0}")]
    Tools(#[from] crate::front::diagnostics::Diagnostics),
    #[error("cannot run git: {0}")]
    Spawn(std::io::Error),
    #[error("`git {args}` failed: {message}")]
    Git { args: String, message: String },
    #[error("git answered something that is not a commit: {0}")]
    Answer(#[from] RevisionValueError),
}

impl RevisionError {
    /// Worth trying again later: another git holds the repository's index lock.
    pub fn is_transient(&self) -> bool {
        matches!(self, RevisionError::Git { message, .. } if message.contains(".lock"))
    }
}

impl Revision {
    /// The revision of the project at `root` with these settings: `git rev-parse HEAD`,
    /// `git status --porcelain` over the configuration files, and the digest. Outside a git
    /// repository (or without git installed) the commit is `None`, never an error.
    pub fn of(root: &Path, settings: &Settings) -> Result<Revision, RevisionError> {
        let digest = digest(root, settings)?;
        let (commit, dirty) = match head(root)? {
            Head::NotARepository => (None, false),
            Head::Unborn => (None, true),
            Head::At(commit) => (Some(commit), is_dirty(root, settings)?),
        };
        Ok(Revision {
            commit,
            dirty,
            digest,
        })
    }
}

/// How a recorded commit stands to the one a run uses, in the run's repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Relation {
    /// The same commit.
    Same,
    /// The recorded commit is an ancestor of ours: we are newer.
    Ahead,
    /// Ours is an ancestor of the recorded one: applying would go back.
    Behind,
    /// Neither is an ancestor of the other.
    Diverged,
    /// The recorded commit is not in our repository.
    Unknown,
}

/// Where `recorded` stands to `own` (`git merge-base --is-ancestor`, both ways).
pub(crate) fn relation(
    root: &Path,
    recorded: &GitCommit,
    own: &GitCommit,
) -> Result<Relation, RevisionError> {
    if recorded == own {
        return Ok(Relation::Same);
    }
    let exists = git(root, &["cat-file", "-e", &format!("{recorded}^{{commit}}")])?;
    if !exists.status.success() {
        return Ok(Relation::Unknown);
    }
    if is_ancestor(root, recorded, own)? {
        Ok(Relation::Ahead)
    } else if is_ancestor(root, own, recorded)? {
        Ok(Relation::Behind)
    } else {
        Ok(Relation::Diverged)
    }
}

/// What a run may do to a restaurant whose state records a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward, the same commit, or nothing recorded to compare with.
    Go,
    /// Back from `from`, as `--allow-rollback` asked.
    Rollback { from: GitCommit },
    /// Left alone: why, naming both revisions (`it is recorded at …`).
    Refuse(String),
}

/// The flags that make going back or applying uncommitted changes explicit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allow {
    pub rollback: bool,
    pub dirty: bool,
}

/// Judges restaurants' recorded revisions against the one a run uses: no writer goes
/// backwards. Relations are asked of git once per recorded commit, however many restaurants
/// share it.
pub(crate) struct Guard<'a> {
    root: &'a Path,
    own: &'a Revision,
    allow: Allow,
    relations: std::collections::HashMap<GitCommit, Relation>,
}

impl<'a> Guard<'a> {
    /// `root` is the repository the run's configuration comes from.
    pub fn new(root: &'a Path, own: &'a Revision, allow: Allow) -> Guard<'a> {
        Guard {
            root,
            own,
            allow,
            relations: Default::default(),
        }
    }

    /// The verdict for a restaurant state records at `recorded`.
    pub(crate) fn judge(
        &mut self,
        recorded: Option<&AppliedRevision>,
    ) -> Result<Verdict, RevisionError> {
        let Some(recorded) = recorded else {
            return Ok(Verdict::Go);
        };
        let Some(theirs) = &recorded.commit else {
            // Recorded from outside git: there is no history to go back in.
            return Ok(Verdict::Go);
        };
        let relation = match &self.own.commit {
            None => None,
            Some(own) => Some(match self.relations.get(theirs) {
                Some(r) => *r,
                None => {
                    let r = relation(self.root, theirs, own)?;
                    self.relations.insert(theirs.clone(), r);
                    r
                }
            }),
        };
        let mut verdict = self.verdict(recorded, theirs, relation);
        if let (Some(Relation::Unknown), Verdict::Refuse(why)) = (relation, &mut verdict) {
            if is_shallow(self.root)? {
                why.push_str(" (this clone is shallow: fetch its whole history, e.g. actions/checkout with `fetch-depth: 0`)");
            }
        }
        Ok(verdict)
    }

    fn verdict(
        &self,
        recorded: &AppliedRevision,
        theirs: &GitCommit,
        relation: Option<Relation>,
    ) -> Verdict {
        let (was, now) = (recorded.revision().short(), self.own.short());
        let why = match relation {
            Some(Relation::Same) | Some(Relation::Ahead) => None,
            Some(Relation::Behind) => Some(format!(
                "it is recorded at {was}, newer than this configuration's {now} (an ancestor of it): applying would go back"
            )),
            Some(Relation::Diverged) => Some(format!(
                "it is recorded at {was}, which has diverged from this configuration's {now} (neither contains the other)"
            )),
            Some(Relation::Unknown) => Some(format!(
                "it is recorded at {was}, a commit this repository does not have (this configuration is at {now}; fetch, or check out the newer commit)"
            )),
            None => Some(format!(
                "it is recorded at {was} and this configuration is not in a git repository ({now}): its history is unknown"
            )),
        };
        if let Some(why) = why {
            return if self.allow.rollback {
                Verdict::Rollback {
                    from: theirs.clone(),
                }
            } else {
                Verdict::Refuse(format!(
                    "{why}; pass --allow-rollback to roll back from {was} to {now}"
                ))
            };
        }
        if self.own.dirty && !recorded.dirty && !self.allow.dirty {
            return Verdict::Refuse(format!(
                "this configuration has uncommitted changes ({now}) and the restaurant is recorded at the committed {was}; commit them, or pass --allow-dirty"
            ));
        }
        Verdict::Go
    }
}

/// `rollback from abc1234 to def5678`: how a plan and the records name a rollback.
pub(crate) fn rollback_message(from: &GitCommit, to: &Revision) -> String {
    format!("rollback from {} to {}", from.short(), to.short())
}

/// Whether the repository at `root` is a shallow clone (CI's default checkout): its older
/// commits are missing, so a recorded one looks unknown.
fn is_shallow(root: &Path) -> Result<bool, RevisionError> {
    let args = ["rev-parse", "--is-shallow-repository"];
    let out = git(root, &args)?;
    if !out.status.success() {
        return Err(failed(&args, &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "true")
}

fn is_ancestor(root: &Path, a: &GitCommit, b: &GitCommit) -> Result<bool, RevisionError> {
    let args = ["merge-base", "--is-ancestor", a.as_str(), b.as_str()];
    let out = git(root, &args)?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(failed(&args, &out)),
    }
}

enum Head {
    NotARepository,
    /// A repository with no commit yet: everything in it is uncommitted.
    Unborn,
    At(GitCommit),
}

fn head(root: &Path) -> Result<Head, RevisionError> {
    let inside = match git(root, &["rev-parse", "--is-inside-work-tree"]) {
        Err(RevisionError::Spawn(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(target: crate::LOG_TARGET, "git is not installed: the configuration has no commit");
            return Ok(Head::NotARepository);
        }
        other => other?,
    };
    if !inside.status.success() {
        let message = String::from_utf8_lossy(&inside.stderr);
        if message.contains("not a git repository") {
            return Ok(Head::NotARepository);
        }
        return Err(failed(&["rev-parse", "--is-inside-work-tree"], &inside));
    }
    if String::from_utf8_lossy(&inside.stdout).trim() != "true" {
        // Inside a `.git` folder or a bare repository: no working tree to read a commit of.
        return Ok(Head::NotARepository);
    }
    let out = git(root, &["rev-parse", "--verify", "-q", "HEAD"])?;
    if !out.status.success() {
        return Ok(Head::Unborn);
    }
    Ok(Head::At(GitCommit::parse(&String::from_utf8_lossy(
        &out.stdout,
    ))?))
}

/// Whether a configuration file differs from HEAD (modified, staged, deleted or untracked).
fn is_dirty(root: &Path, settings: &Settings) -> Result<bool, RevisionError> {
    let paths = config_paths(settings);
    let mut args = vec!["status", "--porcelain", "--"];
    args.extend(paths.iter().map(String::as_str));
    let out = git(root, &args)?;
    if !out.status.success() {
        return Err(failed(&args, &out));
    }
    Ok(!out.stdout.is_empty())
}

/// The files whose changes make the configuration dirty: `sipform.yaml`, the tools folder,
/// the template. Not the inventory: restaurants come and go without a new revision.
fn config_paths(settings: &Settings) -> Vec<String> {
    vec![
        PROJECT_FILE.to_string(),
        settings.tools_dir.to_string_lossy().into_owned(),
        settings.template.to_string_lossy().into_owned(),
    ]
}

/// sha256 over the tool files (name and bytes, in name order), the template, and the
/// settings that reach the server (account, app URL, billing, phone-line source, project id).
/// Each part is length-prefixed, so no two different inputs hash the same stream.
fn digest(root: &Path, settings: &Settings) -> Result<ConfigDigest, RevisionError> {
    let mut hash = Sha256::new();
    let mut part = |label: &str, bytes: &[u8]| {
        hash.update((label.len() as u64).to_le_bytes());
        hash.update(label.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    let tools_dir = root.join(&settings.tools_dir);
    for path in load::yaml_files(&tools_dir)? {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        part(&format!("tool:{}", name.unwrap_or_default()), &read(&path)?);
    }
    part("template", &read(&root.join(&settings.template))?);
    let shaping = serde_json::json!({
        "project": settings.project,
        "account": settings.account,
        "appUrl": settings.app_url,
        "billing": settings.billing,
        "phoneLines": settings.phone_lines,
    });
    part("settings", shaping.to_string().as_bytes());
    Ok(ConfigDigest::from_sha256(hash.finalize().into()))
}

fn read(path: &Path) -> Result<Vec<u8>, RevisionError> {
    std::fs::read(path).map_err(|source| RevisionError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Runs `git -C root args…` without the caller's repository variables.
fn git(root: &Path, args: &[&str]) -> Result<Output, RevisionError> {
    Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .map_err(RevisionError::Spawn)
}

fn failed(args: &[&str], out: &Output) -> RevisionError {
    RevisionError::Git {
        args: args.join(" "),
        message: String::from_utf8_lossy(&out.stderr)
            .trim()
            .chars()
            .take(400)
            .collect(),
    }
}

#[cfg(test)]
mod tests;
