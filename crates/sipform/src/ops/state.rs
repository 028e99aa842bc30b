//! `state list|show|rm|migrate`: look at state, forget restaurants, move state between
//! backends. Nothing here talks to sip-agent-server.

use std::sync::Arc;
use std::time::Duration;

use crate::config::StateSettings;
use crate::model::ids::RestaurantId;
use crate::model::spec::StateConfig;
use crate::state::{self, LockInfo, ProjectRef, RestaurantState, State, StateBackend};

use super::OpsError;

/// State and where it lives; `state` is `None` when the backend holds none yet.
#[derive(Debug, Clone)]
pub struct Listing {
    pub place: String,
    pub state: Option<State>,
}

/// Everything state holds (`state list`).
pub async fn list(settings: &StateSettings) -> Result<Listing, OpsError> {
    let backend = open(&settings.state, settings)?;
    Ok(Listing {
        place: backend.describe(),
        state: backend.load().await?,
    })
}

/// One restaurant's remote ids (`state show`). A stored token stays a `Secret`.
pub async fn show(settings: &StateSettings, restaurant: &str) -> Result<RestaurantState, OpsError> {
    let backend = open(&settings.state, settings)?;
    let mut state = load_some(backend.as_ref()).await?;
    state
        .restaurants
        .remove(&RestaurantId::new(restaurant))
        .ok_or_else(|| OpsError::NotInState {
            restaurant: restaurant.to_string(),
            place: backend.describe(),
        })
}

/// Which restaurants `state rm` forgets.
#[derive(Debug, Clone)]
pub struct RmOptions {
    pub restaurants: Vec<String>,
    pub lock_timeout: Duration,
}

/// Forgets restaurants, all or none, under the state lock; nothing on the server is touched.
/// Returns the ids removed, in the order given.
pub async fn rm(settings: &StateSettings, opts: &RmOptions) -> Result<Vec<String>, OpsError> {
    let backend = open(&settings.state, settings)?;
    let _lock = backend
        .lock(&LockInfo::for_this_process("state rm"), opts.lock_timeout)
        .await?;
    let mut state = load_some(backend.as_ref()).await?;
    let mut missing = Vec::new();
    let mut removed = Vec::new();
    for r in &opts.restaurants {
        match state.restaurants.remove(&RestaurantId::new(r.as_str())) {
            Some(_) => removed.push(r.clone()),
            None => missing.push(r.as_str()),
        }
    }
    if !missing.is_empty() {
        return Err(OpsError::NotRemoved {
            place: backend.describe(),
            missing: missing.join(", "),
        });
    }
    state.serial += 1;
    backend.commit(&state, &[]).await?;
    Ok(removed)
}

/// A kind of state backend, as `state migrate --from/--to` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    File,
    Sqlite,
    Postgres,
}

/// Where `state migrate` reads and writes.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub from: BackendKind,
    /// Its path (file) or URL; default: sipform.yaml's when it names the same backend, else
    /// `sipform.state.json` / `DATABASE_URL`.
    pub from_url: Option<String>,
    pub to: BackendKind,
    pub to_url: Option<String>,
    /// How long to wait for each backend's lock.
    pub lock_timeout: Duration,
}

/// What `state migrate` copied.
#[derive(Debug, Clone)]
pub struct Migrated {
    pub state: State,
    pub from: String,
    pub to: String,
}

/// Copies state to another backend, keeping its lineage and serial, under both locks. The
/// target must be empty or hold the same lineage at an older serial; the copy is read back
/// before success is claimed, and the source is never changed.
pub async fn migrate(
    settings: &StateSettings,
    opts: &MigrateOptions,
) -> Result<Migrated, OpsError> {
    let from = config_for(opts.from, opts.from_url.clone(), settings)?;
    let to = config_for(opts.to, opts.to_url.clone(), settings)?;
    let source = open(&from, settings)?;
    let target = open(&to, settings)?;
    let (source, target) = (source.as_ref(), target.as_ref());
    let refuse = |m: String| Err(OpsError::Migrate(m));
    if source.describe() == target.describe() {
        return refuse(format!(
            "--from and --to are the same backend ({})",
            source.describe()
        ));
    }
    let who = LockInfo::for_this_process("state migrate");
    let _source_lock = source.lock(&who, opts.lock_timeout).await?;
    let _target_lock = target.lock(&who, opts.lock_timeout).await?;
    let state = load_some(source).await?;
    if let Some(existing) = target.load().await? {
        if existing.lineage != state.lineage {
            return refuse(format!(
                "{} already holds another project's state (lineage {}, this one is {}); \
                 refusing to overwrite it",
                target.describe(),
                existing.lineage,
                state.lineage
            ));
        }
        if existing.serial > state.serial {
            return refuse(format!(
                "{} holds a newer serial ({}) of this state than {} ({}); refusing to go back",
                target.describe(),
                existing.serial,
                source.describe(),
                state.serial
            ));
        }
    }
    target.commit(&state, &[]).await?;
    match target.load().await? {
        Some(copied) if copied == state => {}
        _ => {
            return refuse(format!(
                "{} does not read back what was written; the source {} is unchanged",
                target.describe(),
                source.describe()
            ))
        }
    }
    Ok(Migrated {
        state,
        from: source.describe(),
        to: target.describe(),
    })
}

/// Bound to the project of `sipform.yaml` when there is one, like every other command.
fn open(config: &StateConfig, settings: &StateSettings) -> Result<Arc<dyn StateBackend>, OpsError> {
    let project = settings
        .project
        .as_ref()
        .map(|(id, account)| ProjectRef::of(id.as_deref(), account));
    Ok(state::open(config, &settings.root, project.as_ref())?)
}

async fn load_some(backend: &dyn StateBackend) -> Result<State, OpsError> {
    backend
        .load()
        .await?
        .ok_or_else(|| OpsError::NoState(backend.describe()))
}

/// The state config for `kind`: the flag's URL, else sipform.yaml's when it names the same
/// backend, else the default (sipform.state.json, `DATABASE_URL`).
fn config_for(
    kind: BackendKind,
    url: Option<String>,
    settings: &StateSettings,
) -> Result<StateConfig, OpsError> {
    let configured = &settings.state;
    Ok(match (kind, url) {
        (BackendKind::File, Some(path)) => StateConfig::File {
            path: path.into(),
            store_tokens: false,
        },
        (BackendKind::Sqlite, Some(url)) => StateConfig::Sqlite {
            url,
            store_tokens: false,
        },
        (BackendKind::Postgres, Some(url)) => StateConfig::Postgres {
            url: Some(url),
            store_tokens: false,
        },
        (BackendKind::File, None) => match configured {
            c @ StateConfig::File { .. } => c.clone(),
            _ => StateConfig::default(),
        },
        (BackendKind::Sqlite, None) => match (configured, &settings.database_url) {
            (c @ StateConfig::Sqlite { .. }, _) => c.clone(),
            (_, Some(u)) if u.starts_with("sqlite:") => StateConfig::Sqlite {
                url: u.clone(),
                store_tokens: false,
            },
            _ => {
                return Err(OpsError::Migrate(
                    "give the SQLite database with --from-url/--to-url sqlite://PATH".into(),
                ))
            }
        },
        (BackendKind::Postgres, None) => match configured {
            c @ StateConfig::Postgres { .. } => c.clone(),
            _ => StateConfig::Postgres {
                url: None,
                store_tokens: false,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn settings(state: StateConfig, database_url: Option<&str>) -> StateSettings {
        StateSettings {
            root: PathBuf::from("/p"),
            state,
            database_url: database_url.map(str::to_string),
            project: None,
        }
    }

    #[test]
    fn a_flag_url_wins_then_the_project_then_the_default() {
        let sqlite = StateConfig::Sqlite {
            url: "sqlite://mine.db".into(),
            store_tokens: true,
        };
        let s = settings(sqlite.clone(), Some("sqlite://env.db"));
        assert_eq!(
            config_for(BackendKind::Sqlite, Some("sqlite://flag.db".into()), &s).unwrap(),
            StateConfig::Sqlite {
                url: "sqlite://flag.db".into(),
                store_tokens: false
            }
        );
        assert_eq!(config_for(BackendKind::Sqlite, None, &s).unwrap(), sqlite);
        assert_eq!(
            config_for(BackendKind::File, None, &s).unwrap(),
            StateConfig::default()
        );
        let s = settings(StateConfig::default(), Some("sqlite://env.db"));
        assert_eq!(
            config_for(BackendKind::Sqlite, None, &s).unwrap(),
            StateConfig::Sqlite {
                url: "sqlite://env.db".into(),
                store_tokens: false
            }
        );
        assert_eq!(
            config_for(BackendKind::Postgres, None, &s).unwrap(),
            StateConfig::Postgres {
                url: None,
                store_tokens: false
            }
        );
    }

    #[test]
    fn sqlite_without_any_url_is_refused() {
        let s = settings(StateConfig::default(), Some("postgres://db"));
        let e = config_for(BackendKind::Sqlite, None, &s).unwrap_err();
        assert!(e.to_string().contains("--from-url/--to-url"), "{e}");
    }

    #[tokio::test]
    async fn rm_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateSettings {
            root: dir.path().to_path_buf(),
            state: StateConfig::default(),
            database_url: None,
            project: None,
        };
        let backend = open(&s.state, &s).unwrap();
        let mut st = State::default();
        st.restaurants
            .insert(RestaurantId::new("r1"), RestaurantState::default());
        st.restaurants
            .insert(RestaurantId::new("r2"), RestaurantState::default());
        backend.commit(&st, &[]).await.unwrap();
        let opts = |ids: &[&str]| RmOptions {
            restaurants: ids.iter().map(|s| s.to_string()).collect(),
            lock_timeout: Duration::from_secs(1),
        };
        let e = rm(&s, &opts(&["r1", "nope"])).await.unwrap_err();
        assert!(e.to_string().contains("nope; nothing was removed"), "{e}");
        assert_eq!(list(&s).await.unwrap().state.unwrap().restaurants.len(), 2);
        assert_eq!(rm(&s, &opts(&["r2"])).await.unwrap(), vec!["r2"]);
        let after = list(&s).await.unwrap().state.unwrap();
        assert_eq!(after.serial, st.serial + 1);
        assert!(show(&s, "r1").await.is_ok());
        assert!(matches!(
            show(&s, "r2").await,
            Err(OpsError::NotInState { .. })
        ));
    }
}
