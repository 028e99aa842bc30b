//! SQLite: a local file, locked like the file backend, created owner-only.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;

use super::Tables;
use crate::db::{Db, Engine, Purpose};
use crate::fsio::create_private_dir_all;
use crate::state::backend::{LockGuard, LockInfo, StateBackend, StateError};
use crate::state::file::FileState;
use crate::state::model::{Change, ProjectRef, State};

/// State in a SQLite database file (`state: {backend: sqlite, url: sqlite://path}`).
pub struct SqliteState {
    tables: Tables,
}

impl SqliteState {
    /// Opens (lazily: nothing is touched until the first call) the database at `url`; a
    /// relative path is relative to `project_root`. The file is created when missing.
    pub fn open(url: &str, project_root: &Path) -> Result<SqliteState, StateError> {
        if Engine::of_url(url)? != Engine::Sqlite {
            return Err(StateError::Backend {
                place: crate::db::redact(url),
                message: "the sqlite state backend needs a sqlite://PATH url".into(),
            });
        }
        Ok(SqliteState {
            tables: Tables::new(Db::open_lazy(url, project_root, Purpose::State)?),
        })
    }

    /// The same database, for `project`: it reads and writes that project's lineage only (see
    /// the module [`super`]). The lock stays one per database file.
    pub fn for_project(mut self, project: Option<ProjectRef>) -> Self {
        self.tables.project = project;
        self
    }

    fn path(&self) -> Result<&Path, StateError> {
        self.tables
            .db
            .sqlite_path()
            .ok_or_else(|| StateError::Backend {
                place: self.describe(),
                message: "no database file to lock; give a sqlite://PATH url".into(),
            })
    }
}

#[async_trait]
impl StateBackend for SqliteState {
    fn describe(&self) -> String {
        self.tables.place()
    }

    async fn stored_serial(&self) -> Result<Option<(uuid::Uuid, u64)>, StateError> {
        if self.tables.db.sqlite_path().is_some_and(|p| !p.exists()) {
            return Ok(None);
        }
        self.tables.stored_serial().await
    }

    async fn lock(
        &self,
        who: &LockInfo,
        timeout: Duration,
    ) -> Result<Box<dyn LockGuard>, StateError> {
        let path = self.path()?.to_path_buf();
        create_folder_of(&path)?;
        // The same OS lock as the file backend, on `<database>.lock`.
        let guard = FileState::new(path.clone())
            .lock(who, timeout)
            .await
            .map_err(|e| match e {
                // Name the database, not the lock file's backend.
                StateError::Locked { holder, waited, .. } => StateError::Locked {
                    place: self.describe(),
                    holder,
                    waited,
                },
                other => other,
            })?;
        create_private(&path)?;
        self.tables.ensure().await?;
        Ok(guard)
    }

    async fn load(&self) -> Result<Option<State>, StateError> {
        if self.tables.db.sqlite_path().is_some_and(|p| !p.exists()) {
            return Ok(None);
        }
        self.tables.load().await
    }

    async fn commit(&self, state: &State, changes: &[Change]) -> Result<(), StateError> {
        create_private(self.path()?)?;
        self.tables.commit(state, changes).await
    }
}

/// Creates the folder the database goes in, owner-only (0700) like every folder sipform makes.
fn create_folder_of(path: &Path) -> Result<(), StateError> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => create_private_dir_all(dir)
            .map_err(|e| StateError::io("create the state folder", dir, e)),
        None => Ok(()),
    }
}

/// Creates the database file with mode 0600 (it may hold tokens) when it does not exist yet,
/// before SQLite creates it with the default mode; SQLite gives its journal files the mode of
/// the database. An existing file is left as it is: it may be the platform's own database.
fn create_private(path: &Path) -> Result<(), StateError> {
    if path.exists() {
        return Ok(());
    }
    create_folder_of(path)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StateError::io("create the state database", path, e)),
    }
}
