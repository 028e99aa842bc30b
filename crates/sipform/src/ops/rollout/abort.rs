//! `sipform rollout abort`: the restaurants of the started waves go back to the stable
//! revision. The stable revision's files are taken from git (`git archive` of its commit
//! into a private folder), planned against the server like any change (the plan is shown)
//! with going back allowed, and applied; then the rollout is recorded aborted.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use chrono::Utc;

use crate::config::{Overrides, Settings};
use crate::model::ids::RestaurantId;
use crate::model::revision::Revision;
use crate::model::spec::{InventoryConfig, StateConfig};

use super::super::{OpsError, Workspace};
use super::{current, done, Events, Keeper, RolloutEvent, RolloutRecord};

/// What an abort puts back: the stable revision, and the restaurants state records at the
/// rollout's revision.
#[derive(Debug, Clone)]
pub struct AbortTarget {
    pub record: RolloutRecord,
    pub stable: Revision,
    pub restaurants: BTreeSet<RestaurantId>,
}

/// The rollout in progress and what its abort puts back. Refused when the stable revision is
/// not a clean git commit (there are no files to go back to).
pub async fn abort_target(ws: &Workspace) -> Result<AbortTarget, OpsError> {
    let state = ws.state().await?;
    let record = current(ws.settings(), &state)?
        .filter(RolloutRecord::in_progress)
        .ok_or_else(|| OpsError::Rollout("no rollout in progress to abort".into()))?;
    let stable = match &record.from {
        Some(r) if r.commit.is_some() && !r.dirty => r.clone(),
        _ => {
            return Err(OpsError::Rollout(
                "the stable revision is not a committed git revision: check its files out and run `sipform apply --allow-rollback --target …`".into(),
            ))
        }
    };
    let restaurants = state
        .restaurants
        .keys()
        .filter(|id| done(&state, id, &record.to))
        .cloned()
        .collect();
    Ok(AbortTarget {
        record,
        stable,
        restaurants,
    })
}

/// The project's files at the stable commit, in `into` (a private folder the caller keeps
/// for the run), as settings whose state is the project's own and whose history is its
/// repository.
pub fn stable_settings(
    project: &Settings,
    stable: &Revision,
    into: &Path,
) -> Result<Settings, OpsError> {
    let commit = stable
        .commit
        .as_ref()
        .ok_or_else(|| OpsError::Rollout("the stable revision has no commit".into()))?;
    // Absolute: the stable files' settings resolve relative paths against their own folder,
    // and the state written must be the project's.
    let root = &std::path::absolute(&project.root).map_err(|source| OpsError::Io {
        what: "cannot resolve the project folder",
        path: project.root.display().to_string(),
        source,
    })?;
    // A followed branch's files come from its mirror (a bare repository: the project's
    // folder in it is `controller.source.path`); else from the project's own repository.
    let (repo, prefix) = match &project.history {
        Some(mirror) => (
            std::path::absolute(mirror).map_err(|source| OpsError::Io {
                what: "cannot resolve the repository",
                path: mirror.display().to_string(),
                source,
            })?,
            project
                .history_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        None => (root.clone(), git(root, &["rev-parse", "--show-prefix"])?),
    };
    let tar = into.join("stable.tar");
    let spec = format!("{}:{}", commit.as_str(), prefix.trim());
    git(
        &repo,
        &["archive", "--format=tar", "-o", &path_arg(&tar)?, &spec],
    )?;
    let files = into.join("files");
    crate::fsio::create_private_dir_all(&files).map_err(|source| OpsError::Io {
        what: "cannot create",
        path: files.display().to_string(),
        source,
    })?;
    run(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&files))?;
    let state = match &project.state {
        StateConfig::File { path, store_tokens } => StateConfig::File {
            path: root.join(path),
            store_tokens: *store_tokens,
        },
        StateConfig::Sqlite { url, store_tokens } => StateConfig::Sqlite {
            url: absolute_sqlite(url, root),
            store_tokens: *store_tokens,
        },
        other => other.clone(),
    };
    let overrides = Overrides {
        state: Some(state),
        ..Overrides::default()
    };
    let mut settings = Settings::load(&files, &overrides)
        .map_err(|e| OpsError::Rollout(format!("the stable revision's sipform.yaml: {e}")))?;
    if let InventoryConfig::Database { url: Some(u), .. } = &mut settings.inventory {
        *u = absolute_sqlite(u, root);
    }
    settings.history = Some(repo);
    settings.history_path = project.history_path.clone();
    settings.server_url = project.server_url.clone();
    settings.api_key = project.api_key.clone();
    Ok(settings)
}

/// `stable` (from [`stable_settings`]) reading the project's own restaurants instead of the
/// stable commit's: a restaurant added since that commit is then provisioned from the stable
/// revision's tools and template (`rollout::newcomers`).
pub fn with_project_inventory(
    mut stable: Settings,
    project: &Settings,
) -> Result<Settings, OpsError> {
    let root = std::path::absolute(&project.root).map_err(|source| OpsError::Io {
        what: "cannot resolve the project folder",
        path: project.root.display().to_string(),
        source,
    })?;
    stable.inventory = match &project.inventory {
        InventoryConfig::Files { path } => InventoryConfig::Files {
            path: root.join(path),
        },
        InventoryConfig::Database {
            url,
            table,
            columns,
            write_back_tokens,
        } => InventoryConfig::Database {
            url: url.as_deref().map(|u| absolute_sqlite(u, &root)),
            table: table.clone(),
            columns: columns.clone(),
            write_back_tokens: *write_back_tokens,
        },
    };
    Ok(stable)
}

/// The workspace of the stable revision's files, planning as that revision.
pub async fn stable_workspace(
    settings: Settings,
    stable: &Revision,
) -> Result<Workspace, OpsError> {
    Ok(Workspace::load(settings)
        .await?
        .with_revision(stable.clone()))
}

/// Records the rollout aborted (after its restaurants went back), in state under its lock:
/// the record as state holds it now (a `resume` may have changed it meanwhile), if it is
/// still `record`'s rollout.
pub async fn record_aborted(ws: &Workspace, record: RolloutRecord) -> Result<Events, OpsError> {
    let _lock = ws.lock("rollout abort").await?;
    let mut state = ws.state().await?;
    let mut record = current(ws.settings(), &state)?
        .filter(|r| r.in_progress() && r.to == record.to && r.started_at == record.started_at)
        .unwrap_or(record);
    let wave = record.current();
    record.aborted_at = Some(Utc::now());
    record.paused = None;
    Keeper::of(ws).save(&mut state, &record).await?;
    let mut events = Events::default();
    events.emit(RolloutEvent::Aborted { wave });
    Ok(events)
}

/// A relative `sqlite://` URL made absolute against `root` (it would otherwise name a file in
/// the stable files' folder).
fn absolute_sqlite(url: &str, root: &Path) -> String {
    match url.strip_prefix("sqlite://") {
        Some(rel) if !rel.starts_with('/') => format!("sqlite://{}", root.join(rel).display()),
        _ => url.to_string(),
    }
}

fn path_arg(p: &Path) -> Result<String, OpsError> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| OpsError::Rollout(format!("{} is not UTF-8", p.display())))
}

fn git(root: &Path, args: &[&str]) -> Result<String, OpsError> {
    run(Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE"))
}

fn run(cmd: &mut Command) -> Result<String, OpsError> {
    let what = format!("{:?}", cmd.get_program());
    let out = cmd.output().map_err(|source| OpsError::Io {
        what: "cannot run",
        path: what.clone(),
        source,
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(OpsError::Rollout(format!(
            "{what} failed: {}",
            err.chars().take(300).collect::<String>()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Where the stable files go while an abort runs.
pub fn scratch() -> Result<tempfile::TempDir, OpsError> {
    tempfile::Builder::new()
        .prefix("sipform-abort-")
        .tempdir()
        .map_err(|source| OpsError::Io {
            what: "cannot create a temporary folder",
            path: std::env::temp_dir().display().to_string(),
            source,
        })
}
