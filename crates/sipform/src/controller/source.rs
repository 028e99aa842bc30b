//! `controller.source`: the controller follows a git repository, as Flux's source controller
//! does. Every interval (and on `POST /v1/reload`) the branch is fetched into the controller's
//! own bare mirror under its work folder; a new commit is extracted into a fresh read-only
//! snapshot folder (never the operator's working tree), which the loop validates and, when
//! valid, switches to. The last two snapshots are kept, older ones deleted.
//!
//! It runs the `git` binary rather than linking a git library: no C build (libgit2) in the
//! binary, and `git fetch` uses the credential helpers, SSH keys and `~/.ssh/config` exactly
//! as the operator's own `git` does. `GIT_TERMINAL_PROMPT=0`: a missing credential fails the
//! fetch instead of waiting on a prompt nobody sees.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::reload::Config;
use super::{Handle, Options};
use crate::config::SourceSettings;
use crate::model::secret::redact_url;
use crate::ops::OpsError;
use crate::LOG_TARGET;

/// How many snapshots stay on disk (the one in use and the one before it, or a refused one).
const KEEP: usize = 2;

/// Why following the repository failed. A fetch that fails is transient (the network, the
/// remote); a commit that cannot be extracted is the commit's fault.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("git {what} ({repo}): {message}")]
    Git {
        what: &'static str,
        repo: String,
        message: String,
        transient: bool,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl SourceError {
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Git { transient, .. } => *transient,
            SourceError::Io { .. } => true,
        }
    }
}

/// A commit checked out into its own folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The commit's full sha.
    pub commit: String,
    /// Where its files are: the project's folder inside the snapshot.
    pub project: PathBuf,
}

/// The mirror and the snapshots of one followed repository.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub settings: SourceSettings,
    /// `<work>/source`: `mirror.git`, `snapshots/<sha>`.
    dir: PathBuf,
}

impl Source {
    pub fn new(settings: SourceSettings, work_dir: &Path) -> Source {
        Source {
            settings,
            dir: work_dir.join("source"),
        }
    }

    /// The repository as logs may show it (no password).
    pub fn repo(&self) -> String {
        redact_url(&self.settings.git)
    }

    fn mirror(&self) -> PathBuf {
        self.dir.join("mirror.git")
    }

    fn snapshots(&self) -> PathBuf {
        self.dir.join("snapshots")
    }

    /// Fetches the branch and returns its newest commit, extracted into its snapshot (made
    /// now, or kept from before). Blocking: the loop runs it on a blocking thread.
    pub fn sync(&self) -> Result<Snapshot, SourceError> {
        self.init_mirror()?;
        let branch = &self.settings.branch;
        let refspec = format!("+refs/heads/{branch}:refs/heads/{branch}");
        self.git(
            "fetch",
            true,
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--",
                &self.settings.git,
                &refspec,
            ],
        )?;
        let commit = self.git(
            "rev-parse",
            false,
            &[
                "rev-parse",
                "--verify",
                &format!("refs/heads/{branch}^{{commit}}"),
            ],
        )?;
        let commit = commit.trim().to_string();
        let folder = self.snapshots().join(&commit);
        if !folder.is_dir() {
            self.extract(&commit, &folder)?;
            // The commit in use and this new one stay, whether or not it turns out valid.
            self.prune(self.recorded().as_deref().unwrap_or(&commit));
        }
        Ok(Snapshot {
            project: match &self.settings.path {
                Some(p) => folder.join(p),
                None => folder,
            },
            commit,
        })
    }

    /// The snapshot left by an earlier run for `commit`, if it is still on disk (a start while
    /// the remote cannot be reached).
    pub fn existing(&self, commit: &str) -> Option<Snapshot> {
        let folder = self.snapshots().join(commit);
        folder.is_dir().then(|| Snapshot {
            project: match &self.settings.path {
                Some(p) => folder.join(p),
                None => folder,
            },
            commit: commit.to_string(),
        })
    }

    /// The commit the last run switched to, as recorded by [`Source::record`].
    pub fn recorded(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.dir.join("current")).ok()?;
        let sha = text.trim();
        (sha.len() >= 40 && sha.bytes().all(|b| b.is_ascii_hexdigit())).then(|| sha.to_string())
    }

    /// Records `commit` as the one in use, and deletes every snapshot but it and the newest
    /// other one.
    pub fn record(&self, commit: &str) -> Result<(), SourceError> {
        let path = self.dir.join("current");
        crate::fsio::write_atomic(&path, format!("{commit}\n").as_bytes())
            .map_err(|e| io("write", &path, e))?;
        self.prune(commit);
        Ok(())
    }

    /// Keeps `in_use` and the newest other snapshots, [`KEEP`] in all.
    fn prune(&self, in_use: &str) {
        let Ok(entries) = std::fs::read_dir(self.snapshots()) else {
            return;
        };
        let mut others: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_str() != Some(in_use))
            .filter_map(|e| {
                let modified = e.metadata().and_then(|m| m.modified()).ok()?;
                Some((modified, e.path()))
            })
            .collect();
        others.sort_by_key(|o| std::cmp::Reverse(o.0));
        for (_, old) in others.into_iter().skip(KEEP - 1) {
            remove_read_only(&old);
        }
    }

    fn init_mirror(&self) -> Result<(), SourceError> {
        let mirror = self.mirror();
        if mirror.join("HEAD").is_file() {
            return Ok(());
        }
        crate::fsio::create_private_dir_all(&self.dir)
            .map_err(|e| io("create the source folder", &self.dir, e))?;
        let out = git_command(&self.dir)
            .args(["init", "--quiet", "--bare", "mirror.git"])
            .output()
            .map_err(|e| io("run git (is it installed?) in", &self.dir, e))?;
        self.check("init", false, out).map(|_| ())
    }

    /// `git archive <commit>` unpacked (`tar -x`) into a temporary folder, made read-only and
    /// renamed into place: a snapshot folder is always whole.
    fn extract(&self, commit: &str, folder: &Path) -> Result<(), SourceError> {
        let snapshots = self.snapshots();
        crate::fsio::create_private_dir_all(&snapshots)
            .map_err(|e| io("create the snapshot folder", &snapshots, e))?;
        let tmp = snapshots.join(format!(".{commit}.partial"));
        remove_read_only(&tmp);
        std::fs::create_dir(&tmp).map_err(|e| io("create", &tmp, e))?;
        let mut archive = git_command(&self.mirror())
            .args(["archive", "--format=tar", commit])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| io("run git archive in", &self.mirror(), e))?;
        let Some(stdout) = archive.stdout.take() else {
            return Err(io(
                "read git archive's output in",
                &tmp,
                std::io::ErrorKind::BrokenPipe.into(),
            ));
        };
        let untar = Command::new("tar")
            .args(["-x", "-f", "-", "-C"])
            .arg(&tmp)
            .stdin(stdout)
            .output()
            .map_err(|e| io("run tar (is it installed?) into", &tmp, e))?;
        let archived = archive
            .wait_with_output()
            .map_err(|e| io("run git archive in", &self.mirror(), e))?;
        self.check("archive", false, archived)?;
        if !untar.status.success() {
            return Err(io(
                "unpack the commit into",
                &tmp,
                std::io::Error::other(String::from_utf8_lossy(&untar.stderr).trim().to_string()),
            ));
        }
        set_read_only(&tmp);
        std::fs::rename(&tmp, folder).map_err(|e| io("rename into", folder, e))
    }

    /// Runs `git` in the mirror; its standard output on success.
    fn git(
        &self,
        what: &'static str,
        transient: bool,
        args: &[&str],
    ) -> Result<String, SourceError> {
        let out = git_command(&self.mirror())
            .args(args)
            .output()
            .map_err(|e| io("run git (is it installed?) in", &self.mirror(), e))?;
        self.check(what, transient, out)
    }

    fn check(
        &self,
        what: &'static str,
        transient: bool,
        out: std::process::Output,
    ) -> Result<String, SourceError> {
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        // git may quote the URL it was given: never with its password.
        let said = String::from_utf8_lossy(&out.stderr).replace(&self.settings.git, &self.repo());
        let first = said
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed");
        Err(SourceError::Git {
            what,
            repo: self.repo(),
            message: first.trim().to_string(),
            transient,
        })
    }
}

/// `git` in `dir`, with nothing of the caller's repository in its environment and no prompt.
fn git_command(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null());
    c
}

/// Takes the write bits off every file and folder under `dir` (itself included).
fn set_read_only(dir: &Path) {
    walk(dir, &|p, is_dir| {
        use std::os::unix::fs::PermissionsExt;
        let mode = if is_dir { 0o500 } else { 0o400 };
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
    });
}

/// Deletes a snapshot folder [`set_read_only`] protected (its folders made writable first).
fn remove_read_only(dir: &Path) {
    if !dir.exists() {
        return;
    }
    walk(dir, &|p, is_dir| {
        if is_dir {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
        }
    });
    if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::warn!(target: crate::LOG_TARGET, "controller: cannot delete the old snapshot {}: {e}", dir.display());
    }
}

/// Calls `f` on every folder (before its entries) and file under `dir`; symbolic links are
/// left alone.
fn walk(dir: &Path, f: &dyn Fn(&Path, bool)) {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if meta.file_type().is_symlink() {
        // Never through a link: its target may be anything on the host.
        return;
    }
    if !meta.is_dir() {
        f(dir, false);
        return;
    }
    f(dir, true);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            walk(&e.path(), f);
        }
    }
}

fn io(what: &'static str, path: &Path, source: std::io::Error) -> SourceError {
    SourceError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// The followed repository as the loop holds it: the source, and the newest commit refused (not
/// tried again until the branch moves on).
pub(crate) struct Follow {
    pub source: Source,
    refused: Option<String>,
}

/// What [`Follow::reload`] did.
pub(crate) enum Followed {
    /// The branch has not moved (or moved back to a commit in use).
    Same,
    /// Switched to a new, valid commit.
    Switched,
}

impl Follow {
    /// With `settings`, keeping the mirror and snapshots under `work`.
    pub fn new(settings: SourceSettings, work: &Path) -> Follow {
        Follow {
            source: Source::new(settings, work),
            refused: None,
        }
    }

    /// The configuration at start: the branch's newest commit; when it cannot be fetched or
    /// is invalid, the commit the last run used, if its snapshot is still on disk.
    pub(crate) async fn initial(
        &mut self,
        opts: &Options,
        work: &Path,
    ) -> Result<Config, OpsError> {
        let previous = self
            .source
            .recorded()
            .and_then(|c| self.source.existing(&c));
        let newest = match fetch(&self.source).await {
            Ok(s) => s,
            Err(e) => match previous {
                Some(p) => {
                    tracing::warn!(target: LOG_TARGET, "controller: cannot fetch {}: {e}; starting on commit {}, the last one used", self.source.repo(), p.commit);
                    return self.load(&p, opts, work);
                }
                None => return Err(OpsError::Conflict(format!("controller.source: {e}"))),
            },
        };
        match self.load(&newest, opts, work) {
            Ok(c) => Ok(c),
            Err(e) => match previous.filter(|p| p.commit != newest.commit) {
                Some(p) => {
                    self.refuse(&newest.commit, &e.to_string());
                    self.load(&p, opts, work)
                }
                None => Err(e),
            },
        }
    }

    /// Fetches now; a new valid commit replaces `config`, an invalid one is refused (logged
    /// with its commit and first error) and `config` keeps running.
    pub async fn reload(
        &mut self,
        config: &mut Config,
        handle: &Handle,
        opts: &Options,
    ) -> Result<Followed, String> {
        let snap = match fetch(&self.source).await {
            Ok(s) => s,
            Err(e) => {
                handle.metrics.source_last_error.set(1);
                let said = format!("cannot fetch {}: {e}", self.source.repo());
                tracing::warn!(target: LOG_TARGET, "controller: {said}; commit {} keeps running", config.commit.as_deref().unwrap_or("?"));
                return Err(said);
            }
        };
        if config.commit.as_deref() == Some(snap.commit.as_str()) {
            handle.metrics.source_last_error.set(0);
            return Ok(Followed::Same);
        }
        if self.refused.as_deref() == Some(snap.commit.as_str()) {
            return Err(format!(
                "commit {} was refused; commit {} keeps running",
                snap.commit,
                config.commit.as_deref().unwrap_or("?")
            ));
        }
        let next = config.admit(self.load(&snap, opts, &config.work_dir));
        match next {
            Ok(next) => {
                tracing::info!(target: LOG_TARGET, "controller: {} {}: switched to commit {}; every restaurant is queued", self.source.repo(), self.source.settings.branch, snap.commit);
                *config = next;
                self.refused = None;
                handle.metrics.source_last_error.set(0);
                Ok(Followed::Switched)
            }
            Err(e) => {
                handle.metrics.source_last_error.set(1);
                Err(self.refuse(&snap.commit, &e.to_string()))
            }
        }
    }

    /// Whether the branch's newest commit was refused (it is not the one running).
    pub fn refused(&self) -> bool {
        self.refused.is_some()
    }

    /// Loads `snap` and records it as the commit in use.
    fn load(&self, snap: &Snapshot, opts: &Options, work: &Path) -> Result<Config, OpsError> {
        let mut config = Config::load_from(&snap.project, &opts.root, &opts.overrides, Some(work))?;
        let path = self.source.settings.path.as_deref();
        config.at_commit(&snap.commit, (&self.source.mirror(), path))?;
        if let Err(e) = self.source.record(&snap.commit) {
            tracing::warn!(target: LOG_TARGET, "controller: {e}");
        }
        Ok(config)
    }

    /// Logs the refusal (commit, first error) once; the message for the caller.
    fn refuse(&mut self, commit: &str, error: &str) -> String {
        let first = error
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(error);
        let said = format!("commit {commit} of {} refused: {first}", self.source.repo());
        tracing::error!(target: LOG_TARGET, "controller: {said}; the last good revision keeps running");
        self.refused = Some(commit.to_string());
        said
    }
}

/// [`Source::sync`] on a blocking thread (git and tar are processes the loop must not wait on).
async fn fetch(source: &Source) -> Result<Snapshot, SourceError> {
    let s = source.clone();
    tokio::task::spawn_blocking(move || s.sync())
        .await
        .unwrap_or_else(|e| {
            Err(SourceError::Git {
                what: "fetch",
                repo: source.repo(),
                message: format!("the fetch did not finish: {e}"),
                transient: true,
            })
        })
}
