//! The JSON file backend: `sipform.state.json` by default, and its journal beside it.
//!
//! A commit appends its changes to `<file>.journal` ([`super::journal`]: checksummed entries,
//! fsync'd) instead of rewriting the document, so the bytes a run writes grow with what it
//! changes, not with the state's size times the number of commits. The journal is folded into
//! the document ("compaction") when it outgrows it (three times its size), when the lock is released at the end of a
//! run, and whenever a whole state is written (`state rm`, `state migrate`). Loading reads the
//! document and replays the journal; a crash at any point loses no acknowledged commit.
//!
//! Whole-document writes are atomic (temp file in the same folder, fsync, rename, fsync of the
//! folder) so a crash leaves either the old or the new document, never half of one. Both files
//! are created with mode 0600 because they may hold tokens. A `<file>.lock` beside it, held
//! with an OS file lock, keeps a second apply out; it also records who holds it, for the
//! message the other one sees. Taking the lock also removes temporary files a crashed write
//! left behind.
//!
//! A file holds one project's state. Opened for a project ([`FileState::for_project`]), a
//! document recorded for another project is refused; one that records none (written before
//! projects were recorded) is adopted, and the project is written into it on the next write.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::backend::{LockGuard, LockInfo, StateBackend, StateError};
use super::journal::{self, Entry};
use super::model::{Change, ProjectRef, State, STATE_FORMAT_VERSION};
use crate::fsio::{remove_stale_temps, write_atomic, write_atomic_with};

/// The journal is compacted once it is three times the document's size and at least this
/// large (so a small state is not rewritten every few commits). Not at once: each compaction
/// rewrites the whole document, and a fresh apply writes the document about twice over in
/// journal entries (an entry names its restaurant and serial), so compacting as soon as the
/// journal outgrows the document would pass 4× the final size in bytes written.
const COMPACT_AT_LEAST: u64 = 256 << 10;

/// Bytes this process wrote to state files and journals: what `benches/apply_1000.rs`
/// reports next to the final state's size.
static BYTES_WRITTEN: AtomicU64 = AtomicU64::new(0);

/// Bytes written to state files and their journals by this process so far.
pub fn bytes_written() -> u64 {
    BYTES_WRITTEN.load(Ordering::Relaxed)
}

/// What this process knows of the journal it appends to; shared with the lock guard, which
/// compacts under it when the run ends.
#[derive(Debug, Default)]
struct JournalCtl {
    /// The journal on disk continues the last state this process committed, up to
    /// `journal_len` bytes: the next commit may append.
    ready: bool,
    journal_len: u64,
    snapshot_len: u64,
    /// The project the document or journal records, which a commit need not repeat.
    project: Option<ProjectRef>,
    /// The format version of the document the journal continues: a commit raising it is
    /// written whole, so that an older sipform reads "upgrade" in the document instead of
    /// failing on a journal entry it cannot parse ("corrupt").
    version: u32,
    /// This process wrote the document whole and appended nothing since: releasing the lock
    /// has nothing to fold in (and need not read state back to know it).
    compacted: bool,
}

pub struct FileState {
    path: PathBuf,
    /// The project this run is; `None` takes whatever the file records.
    project: Option<ProjectRef>,
    journal: Arc<Mutex<JournalCtl>>,
}

impl FileState {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileState {
            path: path.into(),
            project: None,
            journal: Arc::default(),
        }
    }

    /// The same file, bound to `project`: another project's state is refused.
    pub fn for_project(self, project: Option<ProjectRef>) -> Self {
        FileState { project, ..self }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock_path(&self) -> PathBuf {
        beside(&self.path, ".lock")
    }

    /// `<file>.journal`.
    pub fn journal_path(&self) -> PathBuf {
        beside(&self.path, ".journal")
    }
}

/// Parses a state document, refusing a newer format before looking at anything else.
pub fn parse_state(text: &str, place: &str) -> Result<State, StateError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| StateError::Corrupt {
        place: place.to_string(),
        message: format!("not valid state JSON: {e}"),
    })?;
    let version = value.get("version").and_then(|v| v.as_u64());
    match version {
        None => {
            return Err(StateError::Corrupt {
                place: place.to_string(),
                message: "not valid state JSON: missing or non-numeric \"version\"".into(),
            })
        }
        Some(v) if v > u64::from(STATE_FORMAT_VERSION) => {
            return Err(StateError::FutureVersion {
                place: place.to_string(),
                found: u32::try_from(v).unwrap_or(u32::MAX),
            })
        }
        Some(_) => {}
    }
    // Name the field: a hand-edited state is fixed by someone who needs to know which one.
    serde_path_to_error::deserialize(value).map_err(|e| StateError::Corrupt {
        place: place.to_string(),
        message: format!("not valid state JSON: {}", with_field(&e)),
    })
}

/// Checks that `state` belongs to `project` and records it there (adopting state that records
/// no project). `None` accepts any state as it is.
pub(crate) fn bind(
    state: &mut State,
    project: Option<&ProjectRef>,
    place: &str,
) -> Result<(), StateError> {
    let Some(project) = project else {
        return Ok(());
    };
    match &state.project {
        Some(found) if found != project => Err(StateError::OtherProject {
            place: place.to_string(),
            found: Box::new(found.clone()),
            expected: Box::new(project.clone()),
        }),
        _ => {
            state.bind(project);
            Ok(())
        }
    }
}

/// `field: message` from a serde path error (`message` alone at the root).
pub(crate) fn with_field(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    if path == "." {
        e.inner().to_string()
    } else {
        format!("{path}: {}", e.inner())
    }
}

fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.to_path_buf().into_os_string();
    p.push(suffix);
    PathBuf::from(p)
}

struct FileLock {
    file: File,
    /// The state file and its journal, compacted when the run lets go of the lock.
    path: PathBuf,
    journal: Arc<Mutex<JournalCtl>>,
}

impl LockGuard for FileLock {}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Still holding the lock: no other process writes either file meanwhile.
        let mut ctl = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = compact(&self.path, &mut ctl) {
            tracing::warn!(
                target: crate::LOG_TARGET,
                "could not fold the state journal into {} ({e}); the next run replays it",
                self.path.display()
            );
        }
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// Reads the state file at `path` as a run would (the document, then its journal replayed),
/// without binding it to a project: for tests and tools that look at state from outside.
pub fn read_file(path: &Path) -> Result<Option<State>, StateError> {
    read_state(path)
}

/// Reads the document and replays its journal. The journal is read first: a compaction
/// between the two reads then leaves a newer document and entries it already holds, which
/// replay skips, rather than an older document and a journal that no longer continues it.
fn read_state(path: &Path) -> Result<Option<State>, StateError> {
    let journal_path = beside(path, ".journal");
    let journal = match fs::read(&journal_path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(StateError::io("read state journal", &journal_path, e)),
    };
    let snapshot = match fs::read_to_string(path) {
        Ok(text) => Some(parse_state(&text, &path.display().to_string())?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(StateError::io("read state file", path, e)),
    };
    let Some(bytes) = journal else {
        return Ok(snapshot);
    };
    let place = journal_path.display().to_string();
    let scan = journal::scan(&bytes).map_err(|c| StateError::Corrupt {
        place: format!("{place} at byte {}", c.offset),
        message: c.message,
    })?;
    if let Some(at) = scan.torn_at {
        tracing::warn!(
            target: crate::LOG_TARGET,
            "dropped an incomplete last entry at byte {at} of {place} (a write cut short by a \
             crash; it was never acknowledged)"
        );
    }
    journal::replay(snapshot, &scan, &place)
}

/// Writes the whole document of `state` to `w`.
fn encode_doc(w: &mut dyn std::io::Write, state: &State) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, state)?;
    w.write_all(b"\n")
}

/// The whole document and a fresh journal continuing it.
fn encode_whole(path: &Path, state: &State) -> Result<(Vec<u8>, Vec<u8>), StateError> {
    let mut doc = Vec::new();
    encode_doc(&mut doc, state).map_err(|e| StateError::Backend {
        place: path.display().to_string(),
        message: format!("cannot encode state: {e}"),
    })?;
    Ok((doc, journal::fresh(state)))
}

/// Writes `state` as the whole document (streamed, never held whole), then a fresh journal
/// continuing it.
fn write_whole(path: &Path, ctl: &mut JournalCtl, state: &State) -> Result<(), StateError> {
    ctl.ready = false;
    let doc_len = write_atomic_with(path, |w| encode_doc(w, state))
        .map_err(|e| StateError::io("write state file", path, e))?;
    write_fresh_journal(
        path,
        ctl,
        doc_len,
        &journal::fresh(state),
        (state.project.clone(), state.version),
    )
}

/// [`write_whole`] of a document already encoded.
fn write_encoded(
    path: &Path,
    ctl: &mut JournalCtl,
    doc: &[u8],
    fresh: &[u8],
    (project, version): (Option<ProjectRef>, u32),
) -> Result<(), StateError> {
    ctl.ready = false;
    write_atomic(path, doc).map_err(|e| StateError::io("write state file", path, e))?;
    write_fresh_journal(path, ctl, doc.len() as u64, fresh, (project, version))
}

/// After the document (`doc_len` bytes), the journal. A crash between the two leaves the old
/// journal, whose entries the new document already holds (replay skips them by serial).
fn write_fresh_journal(
    path: &Path,
    ctl: &mut JournalCtl,
    doc_len: u64,
    fresh: &[u8],
    (project, version): (Option<ProjectRef>, u32),
) -> Result<(), StateError> {
    let journal_path = beside(path, ".journal");
    write_atomic(&journal_path, fresh)
        .map_err(|e| StateError::io("write state journal", &journal_path, e))?;
    BYTES_WRITTEN.fetch_add(doc_len + fresh.len() as u64, Ordering::Relaxed);
    *ctl = JournalCtl {
        ready: true,
        journal_len: fresh.len() as u64,
        snapshot_len: doc_len,
        project,
        version,
        compacted: true,
    };
    Ok(())
}

/// Whether the journal on disk ends at `(lineage, serial)`, the state just before this
/// commit (this process has not appended to it yet): then a torn tail is cut off and
/// appending may go on.
fn resume(path: &Path, ctl: &mut JournalCtl, last: (uuid::Uuid, u64)) -> Result<bool, StateError> {
    let journal_path = beside(path, ".journal");
    let (Ok(bytes), Ok(meta)) = (fs::read(&journal_path), fs::metadata(path)) else {
        return Ok(false);
    };
    let Ok(scan) = journal::scan(&bytes) else {
        return Ok(false);
    };
    if scan.last() != Some(last) {
        return Ok(false);
    }
    if scan.torn_at.is_some() {
        let f = OpenOptions::new()
            .write(true)
            .open(&journal_path)
            .and_then(|f| f.set_len(scan.valid_len).and_then(|_| f.sync_all()));
        f.map_err(|e| StateError::io("truncate state journal", &journal_path, e))?;
    }
    *ctl = JournalCtl {
        ready: true,
        journal_len: scan.valid_len,
        snapshot_len: meta.len(),
        project: scan.project().cloned(),
        version: scan
            .entries
            .first()
            .and_then(|e| e.version)
            .unwrap_or_default(),
        compacted: false,
    };
    Ok(true)
}

/// What the caller must still do after [`append`].
#[derive(Debug, PartialEq)]
enum Appended {
    Done,
    /// The journal could not be continued, or has outgrown the document: write it whole.
    WriteWhole,
}

/// Appends one encoded entry for the commit that moved state from `last` on.
fn append(
    path: &Path,
    ctl: &mut JournalCtl,
    entry: &[u8],
    last: (uuid::Uuid, u64),
    (project, version): (Option<&ProjectRef>, u32),
) -> Result<Appended, StateError> {
    if !ctl.ready && !resume(path, ctl, last)? {
        return Ok(Appended::WriteWhole);
    }
    // A newer format than the document's (its first token digest, say): written whole.
    if version > ctl.version {
        return Ok(Appended::WriteWhole);
    }
    // A project the journal does not hold yet: that commit is written whole (once).
    if project.is_some() && project != ctl.project.as_ref() {
        return Ok(Appended::WriteWhole);
    }
    let journal_path = beside(path, ".journal");
    ctl.ready = false; // until the append is known to be whole
    ctl.compacted = false;
    OpenOptions::new()
        .append(true)
        .open(&journal_path)
        .and_then(|mut f| {
            f.write_all(entry)?;
            f.sync_data()
        })
        .map_err(|e| StateError::io("append to state journal", &journal_path, e))?;
    BYTES_WRITTEN.fetch_add(entry.len() as u64, Ordering::Relaxed);
    ctl.ready = true;
    ctl.journal_len += entry.len() as u64;
    if ctl.journal_len > (3 * ctl.snapshot_len).max(COMPACT_AT_LEAST) {
        return Ok(Appended::WriteWhole);
    }
    Ok(Appended::Done)
}

/// Folds the journal into the document, if it holds anything.
fn compact(path: &Path, ctl: &mut JournalCtl) -> Result<(), StateError> {
    if ctl.compacted {
        return Ok(());
    }
    let journal_path = beside(path, ".journal");
    let journal_len = match fs::metadata(&journal_path) {
        Ok(m) => m.len(),
        Err(_) => return Ok(()),
    };
    // Longer than a fresh journal: it holds entries (or a torn tail) to fold in.
    match read_state(path)? {
        Some(state) if journal_len > journal::fresh(&state).len() as u64 => {
            write_whole(path, ctl, &state)
        }
        _ => Ok(()),
    }
}

#[async_trait]
impl StateBackend for FileState {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    async fn lock(
        &self,
        who: &LockInfo,
        timeout: Duration,
    ) -> Result<Box<dyn LockGuard>, StateError> {
        let lock_path = self.lock_path();
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts
            .open(&lock_path)
            .map_err(|e| StateError::io("open the lock file", &lock_path, e))?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if start.elapsed() >= timeout {
                        let mut holder = String::new();
                        let _ = file.read_to_string(&mut holder);
                        let holder = serde_json::from_str::<LockInfo>(&holder)
                            .map(|h| h.to_string())
                            .unwrap_or_else(|_| format!("lock file {}", lock_path.display()));
                        return Err(StateError::Locked {
                            place: self.describe(),
                            holder,
                            waited: start.elapsed(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(StateError::io("lock", &lock_path, e))
                }
            }
        }
        let info = serde_json::to_vec(who).map_err(|e| StateError::Backend {
            place: lock_path.display().to_string(),
            message: format!("cannot record the lock holder: {e}"),
        })?;
        let record = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&info)?;
            file.sync_all()
        };
        record(&mut file).map_err(|e| StateError::io("write the lock file", &lock_path, e))?;
        // Holding the lock, no other writer is mid-write: what is left is a crash's.
        let removed = remove_stale_temps(&self.path);
        if removed > 0 {
            tracing::info!(
                target: crate::LOG_TARGET,
                "removed {removed} temporary file(s) a crashed write left beside {}",
                self.path.display()
            );
        }
        Ok(Box::new(FileLock {
            file,
            path: self.path.clone(),
            journal: self.journal.clone(),
        }))
    }

    async fn load(&self) -> Result<Option<State>, StateError> {
        let path = self.path.clone();
        let state = tokio::task::spawn_blocking(move || read_state(&path))
            .await
            .map_err(|e| self.interrupted("read", e))??;
        let Some(mut state) = state else {
            return Ok(None);
        };
        bind(&mut state, self.project.as_ref(), &self.describe())?;
        Ok(Some(state))
    }

    async fn settle(&self, state: &State) -> Result<(), StateError> {
        self.settle_journal(state).await
    }

    async fn commit(&self, state: &State, changes: &[Change]) -> Result<(), StateError> {
        // The project recorded in what is written (a fresh or adopted state may not say it
        // yet); a state bound to another project is refused before anything is written.
        if let (Some(p), Some(found)) = (&self.project, &state.project) {
            if p != found {
                return Err(StateError::OtherProject {
                    place: self.describe(),
                    found: Box::new(found.clone()),
                    expected: Box::new(p.clone()),
                });
            }
        }
        // Whole-state writes (no changes: `state rm`, `migrate`) replace the document; a
        // commit appends only its changes, encoded here so that state is not copied (a copy
        // per commit was most of a fresh apply's CPU).
        if !changes.is_empty() {
            let entry = journal::encode(&Entry::commit(state, changes));
            let last = (state.lineage, state.serial.wrapping_sub(1));
            let (path, ctl) = (self.path.clone(), self.journal.clone());
            let project = self.project.clone().or_else(|| state.project.clone());
            let version = state.version;
            let appended = tokio::task::spawn_blocking(move || {
                let mut ctl = ctl.lock().unwrap_or_else(|p| p.into_inner());
                append(&path, &mut ctl, &entry, last, (project.as_ref(), version))
            })
            .await
            .map_err(|e| self.interrupted("write", e))??;
            if appended == Appended::Done {
                return Ok(());
            }
        }
        let bound;
        let state = match &self.project {
            Some(p) if state.project.as_ref() != Some(p) => {
                let mut s = state.clone();
                bind(&mut s, Some(p), &self.describe())?;
                bound = s;
                &bound
            }
            _ => state,
        };
        // On a multi-threaded runtime (every command) the document is streamed to disk from
        // this thread, the runtime told it blocks: at 100,000 restaurants it is ~170 MB that
        // an encoded copy held at the run's peak. A current-thread runtime (tests) cannot
        // block: the document is encoded, then written on the blocking pool.
        if tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread
        {
            return tokio::task::block_in_place(|| {
                let mut ctl = self.journal.lock().unwrap_or_else(|p| p.into_inner());
                write_whole(&self.path, &mut ctl, state)
            });
        }
        let (doc, fresh) = encode_whole(&self.path, state)?;
        let (path, ctl) = (self.path.clone(), self.journal.clone());
        let project = (state.project.clone(), state.version);
        tokio::task::spawn_blocking(move || {
            let mut ctl = ctl.lock().unwrap_or_else(|p| p.into_inner());
            write_encoded(&path, &mut ctl, &doc, &fresh, project)
        })
        .await
        .map_err(|e| self.interrupted("write", e))?
    }
}

impl FileState {
    /// See [`StateBackend::settle`]: the document written whole from `state` when this
    /// process appended to the journal.
    async fn settle_journal(&self, state: &State) -> Result<(), StateError> {
        let compacted = self
            .journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .compacted;
        if compacted {
            return Ok(());
        }
        self.commit(state, &[]).await
    }

    fn interrupted(&self, what: &str, e: tokio::task::JoinError) -> StateError {
        StateError::Backend {
            place: self.path.display().to_string(),
            message: format!("the {what} was interrupted ({e}); run again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ids::{AgentId, RestaurantId};

    #[tokio::test]
    async fn round_trip_is_private_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let fs_state = FileState::new(dir.path().join("s.json"));
        assert!(fs_state.load().await.unwrap().is_none());
        let mut s = State::new();
        let c = Change::Agent {
            restaurant: RestaurantId::new("r"),
            id: Some(AgentId::new("a")),
            tokens: None,
        };
        s.apply(&c, false);
        s.serial += 1;
        fs_state.commit(&s, &[c]).await.unwrap();
        assert_eq!(fs_state.load().await.unwrap(), Some(s));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(fs_state.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty());
    }

    /// Every command runs on a multi-threaded runtime, where a whole write is streamed to
    /// disk: the same bytes as the encoded document, private, counted, and read back equal.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_whole_write_streamed_is_the_encoded_document() {
        let dir = tempfile::tempdir().unwrap();
        let fs_state = FileState::new(dir.path().join("s.json"));
        let mut s = State::new();
        commits(&fs_state, &mut s, 0, 40).await;
        let before = bytes_written();
        fs_state.commit(&s, &[]).await.unwrap();
        let (doc, fresh) = encode_whole(fs_state.path(), &s).unwrap();
        assert_eq!(fs::read(fs_state.path()).unwrap(), doc);
        assert_eq!(fs::read(fs_state.journal_path()).unwrap(), fresh);
        // Other tests write meanwhile: at least this write was counted.
        assert!(bytes_written() - before >= (doc.len() + fresh.len()) as u64);
        assert_eq!(fs_state.load().await.unwrap(), Some(s));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(fs_state.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn future_version_and_garbage_are_refused() {
        let e = parse_state(r#"{"version": 99, "lineage": "x"}"#, "p").unwrap_err();
        assert!(matches!(e, StateError::FutureVersion { found: 99, .. }));
        let e = parse_state(r#"{"version": 1, "lin"#, "p").unwrap_err();
        assert!(matches!(e, StateError::Corrupt { .. }));
    }

    fn tool(r: &str, i: usize) -> Change {
        Change::Tool {
            restaurant: RestaurantId::new(r),
            name: format!("t{i}"),
            id: Some(crate::model::ids::ToolId::new(format!("id-{i}"))),
        }
    }

    /// Commits `n` single-change commits through `fs_state`, as the writer does.
    async fn commits(fs_state: &FileState, s: &mut State, from: usize, n: usize) {
        for i in from..from + n {
            let c = tool("r", i);
            s.apply(&c, false);
            s.serial += 1;
            fs_state.commit(s, &[c]).await.unwrap();
        }
    }

    #[tokio::test]
    async fn commits_append_to_the_journal_and_the_lock_folds_it_in() {
        let dir = tempfile::tempdir().unwrap();
        let fs_state = FileState::new(dir.path().join("s.json"));
        let guard = fs_state
            .lock(&LockInfo::for_this_process("apply"), Duration::from_secs(1))
            .await
            .unwrap();
        let mut s = State::new();
        commits(&fs_state, &mut s, 0, 10).await;
        let doc = fs::read_to_string(fs_state.path()).unwrap();
        // The first commit wrote the document; the nine others only the journal.
        assert_eq!(parse_state(&doc, "s").unwrap().serial, 1);
        assert_eq!(fs_state.load().await.unwrap(), Some(s.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(fs_state.journal_path()).unwrap().permissions();
            assert_eq!(mode.mode() & 0o777, 0o600);
        }
        // Another process (a new instance) continues the same journal.
        let again = FileState::new(fs_state.path());
        commits(&again, &mut s, 10, 2).await;
        drop(guard);
        let doc = fs::read_to_string(fs_state.path()).unwrap();
        assert_eq!(parse_state(&doc, "s").unwrap(), s, "compacted at the end");
        let fresh = journal::fresh(&s);
        assert_eq!(fs::read(fs_state.journal_path()).unwrap(), fresh);
    }

    #[tokio::test]
    async fn a_torn_append_is_dropped_and_cut_off_before_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let fs_state = FileState::new(dir.path().join("s.json"));
        let mut s = State::new();
        commits(&fs_state, &mut s, 0, 3).await;
        let whole = s.clone();
        // A crash half-way through the fourth append.
        let mut next = s.clone();
        let c = tool("r", 3);
        next.apply(&c, false);
        next.serial += 1;
        let entry = journal::encode(&Entry::commit(&next, &[c]));
        let mut f = OpenOptions::new()
            .append(true)
            .open(fs_state.journal_path())
            .unwrap();
        f.write_all(&entry[..entry.len() / 2]).unwrap();
        drop(f);
        let reopened = FileState::new(fs_state.path());
        assert_eq!(reopened.load().await.unwrap(), Some(whole.clone()));
        // The next run appends after the last whole entry, not after the torn bytes.
        let mut s = whole;
        commits(&reopened, &mut s, 3, 2).await;
        assert_eq!(
            FileState::new(fs_state.path()).load().await.unwrap(),
            Some(s)
        );
    }

    #[tokio::test]
    async fn a_corrupt_entry_in_the_middle_names_the_journal_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let fs_state = FileState::new(dir.path().join("s.json"));
        let mut s = State::new();
        commits(&fs_state, &mut s, 0, 4).await;
        let mut bytes = fs::read(fs_state.journal_path()).unwrap();
        let at = journal::fresh(&State::new()).len() + 20;
        bytes[at] ^= 0x01;
        fs::write(fs_state.journal_path(), &bytes).unwrap();
        let msg = fs_state.load().await.unwrap_err().to_string();
        assert!(msg.contains("s.json.journal at byte "), "{msg}");
        assert!(msg.contains("checksum"), "{msg}");
    }

    #[tokio::test]
    async fn bytes_written_for_many_commits_stay_within_four_times_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let fs_state = FileState::new(dir.path().join("s.json"));
        let before = bytes_written();
        let mut s = State::new();
        for r in 0..300 {
            for i in 0..12 {
                let c = Change::Tool {
                    restaurant: RestaurantId::new(format!("restaurant-{r:05}")),
                    name: format!("tool_number_{i}"),
                    id: Some(crate::model::ids::ToolId::new(format!(
                        "{r:08}-{i:04}-4000-8000-000000000000"
                    ))),
                };
                s.apply(&c, false);
                s.serial += 1;
                fs_state.commit(&s, &[c]).await.unwrap();
            }
        }
        let mut ctl = JournalCtl::default();
        compact(fs_state.path(), &mut ctl).unwrap();
        let size = fs::metadata(fs_state.path()).unwrap().len();
        // Other tests of this binary write too: this bound only grows from their bytes.
        let written = bytes_written() - before;
        assert_eq!(fs_state.load().await.unwrap(), Some(s));
        assert!(
            written <= 4 * size,
            "{written} bytes written for a {size}-byte state"
        );
    }

    #[tokio::test]
    async fn second_lock_waits_then_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let st = FileState::new(dir.path().join("s.json"));
        let who = LockInfo::for_this_process("apply");
        let _g = st.lock(&who, Duration::from_secs(1)).await.unwrap();
        let err = match st
            .lock(
                &LockInfo::for_this_process("plan"),
                Duration::from_millis(300),
            )
            .await
        {
            Err(e) => e,
            Ok(_) => panic!("second lock must not be granted"),
        };
        let msg = err.to_string();
        assert!(msg.contains("apply by pid"), "{msg}");
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
    }
}
