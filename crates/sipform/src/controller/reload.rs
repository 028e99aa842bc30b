//! The configuration a running controller uses: settings, tools and template, loaded at start
//! and on reload (SIGHUP, `POST /v1/reload`), never behind its back.
//!
//! The tool files and the template's folder are copied to a private folder when loaded, and
//! the settings point there: editing a file under the project changes nothing until a reload,
//! and a reload that does not validate is refused while the copy in use keeps running.
//!
//! The copy lives in the controller's work folder ([`work_dir`]), never the system's temporary
//! folder: a hardened service (systemd's `ProtectSystem=strict`) may not write `/tmp`, but it
//! must write where its state or database is.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::{Overrides, Settings};
use crate::front::diagnostics::{Diagnostic, Diagnostics, Origin};
use crate::front::{load, validate};
use crate::inventory::InventoryRead;
use crate::model::spec::StateConfig;
use crate::ops::OpsError;

/// One loaded, validated configuration.
pub(crate) struct Config {
    pub settings: Settings,
    /// Digest of the tool files, the template folder and the settings that shape a restaurant:
    /// a reload that changes it queues every restaurant.
    pub digest: String,
    /// The revision of the project the files were copied from (the copy is no repository):
    /// with a followed repository, its commit ([`Config::at_commit`]).
    pub revision: crate::revision::Revision,
    /// The work folder the copy is in (the source's mirror and snapshots are there too).
    pub work_dir: PathBuf,
    /// The followed repository's commit it was loaded from (`None`: the project folder).
    pub commit: Option<String>,
    _copy: tempfile::TempDir,
}

/// How the names of the configuration copies in the work folder start.
const COPY_PREFIX: &str = "config-";

/// The controller's work folder when `--work-dir` is not given: `.sipform-controller` beside
/// what it already writes (the state file or SQLite database, else the project folder), so a
/// unit that lets it write its state lets it write this too.
pub fn work_dir(settings: &Settings) -> PathBuf {
    let root = &settings.root;
    let beside = match &settings.state {
        StateConfig::File { path, .. } => root.join(path).parent().map(Path::to_path_buf),
        StateConfig::Sqlite { url, .. } => crate::db::sqlite_path(url, root)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf)),
        StateConfig::Postgres { .. } => None,
    };
    beside
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| root.clone())
        .join(".sipform-controller")
}

impl Config {
    /// Loads `root`'s settings with `overrides`, copies the tools and the template's folder
    /// into `work` (default [`work_dir`]), and validates them (tools, template, settings) with
    /// no restaurant.
    pub fn load(
        root: &Path,
        overrides: &Overrides,
        work: Option<&Path>,
    ) -> Result<Config, OpsError> {
        Config::load_from(root, root, overrides, work)
    }

    /// [`Config::load`] of the project at `files` (a followed repository's snapshot), whose
    /// inventory, state and work folder stay those of the controller's project at `local`.
    pub(crate) fn load_from(
        files: &Path,
        local: &Path,
        overrides: &Overrides,
        work: Option<&Path>,
    ) -> Result<Config, OpsError> {
        let mut settings = Settings::load(files, overrides)?;
        // First against the project's own files, so every message names them.
        validate::check_inventory(
            files,
            settings.project(),
            &settings.render_env(),
            Some(InventoryRead::default()),
        )?;
        let revision = crate::revision::Revision::of(files, &settings)?;
        settings.root = local.to_path_buf();
        let work_dir = work.map_or_else(|| work_dir(&settings), Path::to_path_buf);
        let copy = private_copy_dir(&work_dir)?;
        let mut hasher = Sha256::new();
        copy_files(files, &mut settings, copy.path(), &mut hasher)?;
        hasher.update(format!("{:?}", settings.project_shape()).as_bytes());
        let env = settings.render_env();
        validate::check_inventory(
            &settings.root,
            settings.project(),
            &env,
            Some(InventoryRead::default()),
        )?;
        Ok(Config {
            settings,
            digest: format!("{:x}", hasher.finalize()),
            revision,
            work_dir,
            commit: None,
            _copy: copy,
        })
    }

    /// Records that the files were `commit` of the followed repository whose history is in
    /// `mirror` (a snapshot is no repository, so [`crate::revision::Revision::of`] saw no
    /// commit there), the project being its folder `path`.
    pub(crate) fn at_commit(
        &mut self,
        commit: &str,
        (mirror, path): (&Path, Option<&Path>),
    ) -> Result<(), OpsError> {
        let parsed = crate::model::revision::GitCommit::parse(commit)
            .map_err(|e| invalid(&self.settings.root, "controller.source", &e.to_string()))?;
        self.revision.commit = Some(parsed);
        self.revision.dirty = false;
        self.commit = Some(commit.to_string());
        self.settings.history = Some(mirror.to_path_buf());
        self.settings.history_path = path.map(Path::to_path_buf);
        Ok(())
    }

    /// `next`, when it loaded and may replace this one ([`Config::check_replaceable`]).
    pub fn admit(&self, next: Result<Config, OpsError>) -> Result<Config, OpsError> {
        next.and_then(|n| {
            self.check_replaceable(&n)
                .map(|_| n)
                .map_err(OpsError::Conflict)
        })
    }

    /// Whether `next` may replace this one in a running controller: the inventory and state
    /// backend are opened once, so changing them needs a restart.
    pub(crate) fn check_replaceable(&self, next: &Config) -> Result<(), String> {
        if self.settings.inventory != next.settings.inventory {
            return Err("`inventory` changed: restart the controller to read another table".into());
        }
        if self.settings.state != next.settings.state {
            return Err("`state` changed: restart the controller to use another backend".into());
        }
        Ok(())
    }
}

/// Copies the tools, the template's folder and the platform's OpenAPI document of the project
/// at `files` into `copy`, and points `settings` at the copies.
fn copy_files(
    files: &Path,
    settings: &mut Settings,
    copy: &Path,
    hasher: &mut Sha256,
) -> Result<(), OpsError> {
    let tools_to = copy.join("tools");
    copy_dir(
        files,
        &files.join(&settings.tools_dir),
        &tools_to,
        hasher,
        0,
    )?;
    let template_from = files.join(&settings.template);
    let template_dir = template_from.parent().unwrap_or(files).to_path_buf();
    let template_name = template_from
        .file_name()
        .map(PathBuf::from)
        .ok_or_else(|| invalid(files, "template", "the template path names no file"))?;
    let templates_to = copy.join("templates");
    copy_dir(files, &template_dir, &templates_to, hasher, 0)?;
    settings.tools_dir = tools_to;
    settings.template = templates_to.join(template_name);
    if let Some(doc) = &settings.platform.openapi {
        let from = files.join(doc);
        if !from.exists() {
            // Reported by validate as it always is, at the path the project names.
            settings.platform.openapi = Some(from);
            return Ok(());
        }
        // The same name: the reader tells YAML from JSON by it.
        let to = copy.join(
            doc.file_name()
                .unwrap_or(std::ffi::OsStr::new("openapi.yaml")),
        );
        let bytes = std::fs::read(&from).map_err(|e| io_error("read", &from, e))?;
        hasher.update(&bytes);
        std::fs::write(&to, &bytes).map_err(|e| io_error("write", &to, e))?;
        settings.platform.openapi = Some(to);
    }
    Ok(())
}

/// A fresh private folder under `work` for one configuration copy (removed when dropped).
fn private_copy_dir(work: &Path) -> Result<tempfile::TempDir, OpsError> {
    crate::fsio::create_private_dir_all(work)
        .map_err(|e| io_error("create the controller's work folder (--work-dir)", work, e))?;
    tempfile::Builder::new()
        .prefix(COPY_PREFIX)
        .tempdir_in(work)
        .map_err(|e| io_error("create a folder for the configuration copy in", work, e))
}

trait ProjectShape {
    fn project_shape(&self) -> String;
}

impl ProjectShape for Settings {
    /// What in the settings shapes the desired objects (not the URL, key or timeouts).
    fn project_shape(&self) -> String {
        format!(
            "{:?}|{:?}|{}|{:?}|{:?}",
            self.account, self.billing, self.app_url, self.phone_lines, self.project
        )
    }
}

/// Copies `from` (a folder of the project at `root`) to `to`, listed as every other reader
/// lists the project's folders ([`load::folder_entries`]): a symbolic link is copied as what
/// it names when that stays inside the project, and refused otherwise. Never skipped: a
/// copy missing a tool the files have would delete it from every agent.
fn copy_dir(
    root: &Path,
    from: &Path,
    to: &Path,
    hasher: &mut Sha256,
    depth: usize,
) -> Result<(), OpsError> {
    // A link to a folder above itself would be copied forever.
    if depth > 8 {
        return Err(invalid(
            from,
            "",
            "folders nested more than 8 deep (a symbolic link to a folder above itself?)",
        ));
    }
    std::fs::create_dir_all(to).map_err(|e| io_error("create", to, e))?;
    let (entries, refused) =
        load::folder_entries(root, from).map_err(|d| OpsError::Invalid(Diagnostics::from(d)))?;
    if !refused.is_empty() {
        return Err(OpsError::Invalid(Diagnostics(
            refused.into_iter().map(|(_, d)| d).collect(),
        )));
    }
    for entry in entries {
        let Some(name) = entry.path.file_name() else {
            continue;
        };
        let target = to.join(name);
        if entry.is_dir {
            copy_dir(root, &entry.path, &target, hasher, depth + 1)?;
        } else {
            let bytes = crate::front::load::read_input(&entry.path).map_err(|e| match e {
                crate::front::load::InputReadError::Io(e) => io_error("read", &entry.path, e),
                too_large => io_error("read", &entry.path, std::io::Error::other(too_large)),
            })?;
            hasher.update(name.as_encoded_bytes());
            hasher.update(&bytes);
            std::fs::write(&target, &bytes).map_err(|e| io_error("write", &target, e))?;
        }
    }
    Ok(())
}

fn io_error(what: &'static str, path: &Path, source: std::io::Error) -> OpsError {
    OpsError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

fn invalid(root: &Path, field: &str, message: &str) -> OpsError {
    let at = if root.is_dir() && root.join("sipform.yaml").is_file() {
        root.join("sipform.yaml")
    } else {
        root.to_path_buf()
    };
    OpsError::Invalid(Diagnostics::from(Diagnostic::new(
        Origin::file_start(at),
        field,
        message,
    )))
}
