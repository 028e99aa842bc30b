//! `sipform state list|show|rm|migrate`: look at state, forget a restaurant, move state between
//! backends. Nothing here talks to sip-agent-server.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use sipform::model::ids::RestaurantId;
use sipform::model::spec::{Project, StateConfig};
use sipform::state::{LockInfo, State, StateBackend};

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// List the restaurants in state: final customer id, agent id, number of tools.
    List,
    /// Show one restaurant's remote ids (a stored token prints as "(sensitive)").
    Show {
        /// The restaurant's id.
        restaurant: String,
    },
    /// Forget restaurants: state no longer manages their objects. Nothing on the server is
    /// touched. Takes the state lock.
    Rm {
        /// The restaurants' ids.
        #[arg(required = true)]
        restaurants: Vec<String>,
        /// How long to wait for another sipform holding the state lock (e.g. 30s, 2m).
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        lock_timeout: Duration,
    },
    /// Copy state to another backend, keeping its lineage and serial. The target must be empty
    /// (or hold the same lineage at an older serial).
    Migrate {
        /// The backend to read.
        #[arg(long, value_enum)]
        from: Kind,
        /// Its path (file) or URL (sqlite://…, postgres://…); default: sipform.yaml's when it
        /// names the same backend, else sipform.state.json / DATABASE_URL.
        #[arg(long)]
        from_url: Option<String>,
        /// The backend to write.
        #[arg(long, value_enum)]
        to: Kind,
        /// Its path or URL (defaults as for --from-url).
        #[arg(long)]
        to_url: Option<String>,
        /// How long to wait for each backend's lock.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        lock_timeout: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    File,
    Sqlite,
    Postgres,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let project = read_project(&global.project)?;
    let configured = project.map(|p| p.state).unwrap_or_default();
    match args.command {
        Sub::List => list(&open(&configured, &global.project)?, global.verbose > 0).await,
        Sub::Show { restaurant } => show(&open(&configured, &global.project)?, &restaurant).await,
        Sub::Rm {
            restaurants,
            lock_timeout,
        } => {
            rm(
                &open(&configured, &global.project)?,
                &restaurants,
                lock_timeout,
            )
            .await
        }
        Sub::Migrate {
            from,
            from_url,
            to,
            to_url,
            lock_timeout,
        } => {
            let from = config_for(from, from_url, &configured)?;
            let to = config_for(to, to_url, &configured)?;
            let source = open(&from, &global.project)?;
            let target = open(&to, &global.project)?;
            migrate(source.as_ref(), target.as_ref(), lock_timeout).await
        }
    }
}

/// `sipform.yaml`, when the project has one.
fn read_project(root: &Path) -> anyhow::Result<Option<Project>> {
    let path = root.join("sipform.yaml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_saphyr::from_str::<Project>(&text)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn open(config: &StateConfig, root: &Path) -> anyhow::Result<Arc<dyn StateBackend>> {
    Ok(sipform::state::open(config, root)?)
}

/// The state config for `kind`: the flag's URL, else sipform.yaml's when it names the same
/// backend, else the default (sipform.state.json, `DATABASE_URL`).
fn config_for(
    kind: Kind,
    url: Option<String>,
    configured: &StateConfig,
) -> anyhow::Result<StateConfig> {
    Ok(match (kind, configured) {
        (Kind::File, _) if url.is_some() => StateConfig::File {
            path: url.unwrap_or_default().into(),
            store_tokens: false,
        },
        (Kind::File, c @ StateConfig::File { .. }) => c.clone(),
        (Kind::File, _) => StateConfig::default(),
        (Kind::Sqlite, _) if url.is_some() => StateConfig::Sqlite {
            url: url.unwrap_or_default(),
            store_tokens: false,
        },
        (Kind::Sqlite, c @ StateConfig::Sqlite { .. }) => c.clone(),
        (Kind::Sqlite, _) => match std::env::var("DATABASE_URL") {
            Ok(u) if u.starts_with("sqlite:") => StateConfig::Sqlite {
                url: u,
                store_tokens: false,
            },
            _ => bail!("give the SQLite database with --from-url/--to-url sqlite://PATH"),
        },
        (Kind::Postgres, _) if url.is_some() => StateConfig::Postgres {
            url,
            store_tokens: false,
        },
        (Kind::Postgres, c @ StateConfig::Postgres { .. }) => c.clone(),
        (Kind::Postgres, _) => StateConfig::Postgres {
            url: None,
            store_tokens: false,
        },
    })
}

async fn load_some(backend: &dyn StateBackend) -> anyhow::Result<State> {
    match backend.load().await? {
        Some(s) => Ok(s),
        None => bail!("no state in {}", backend.describe()),
    }
}

async fn list(backend: &Arc<dyn StateBackend>, verbose: bool) -> anyhow::Result<ExitCode> {
    let Some(state) = backend.load().await? else {
        eprintln!("no state in {}", backend.describe());
        return Ok(ExitCode::SUCCESS);
    };
    let mut rows = vec![[
        "RESTAURANT".to_string(),
        "FINAL CUSTOMER".to_string(),
        "AGENT".to_string(),
        "TOOLS".to_string(),
    ]];
    for (id, r) in &state.restaurants {
        rows.push([
            id.to_string(),
            r.final_customer_id
                .as_ref()
                .map_or("-".into(), |i| i.to_string()),
            r.agent_id.as_ref().map_or("-".into(), |i| i.to_string()),
            r.tools.len().to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        println!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    if verbose {
        eprintln!(
            "{} restaurant(s); lineage {}, serial {} ({})",
            state.restaurants.len(),
            state.lineage,
            state.serial,
            backend.describe()
        );
    } else {
        eprintln!("{} restaurant(s)", state.restaurants.len());
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(backend: &Arc<dyn StateBackend>, restaurant: &str) -> anyhow::Result<ExitCode> {
    let state = load_some(backend.as_ref()).await?;
    let Some(r) = state.restaurants.get(&RestaurantId::new(restaurant)) else {
        bail!(
            "restaurant {restaurant} is not in state ({})",
            backend.describe()
        );
    };
    println!("restaurant: {restaurant}");
    println!(
        "finalCustomerId: {}",
        r.final_customer_id
            .as_ref()
            .map_or("-".into(), |i| i.to_string())
    );
    println!(
        "agentId: {}",
        r.agent_id.as_ref().map_or("-".into(), |i| i.to_string())
    );
    if let Some(t) = &r.api_token {
        // Display of a Secret prints the marker, never the value.
        println!("apiToken: {t}");
    }
    if r.tools.is_empty() {
        println!("tools: {{}}");
    } else {
        println!("tools:");
        for (name, id) in &r.tools {
            println!("  {name}: {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn rm(
    backend: &Arc<dyn StateBackend>,
    restaurants: &[String],
    lock_timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let _lock = backend
        .lock(&LockInfo::for_this_process("state rm"), lock_timeout)
        .await?;
    let mut state = load_some(backend.as_ref()).await?;
    let mut missing = Vec::new();
    let mut removed = Vec::new();
    for r in restaurants {
        match state.restaurants.remove(&RestaurantId::new(r.as_str())) {
            Some(_) => removed.push(r.as_str()),
            None => missing.push(r.as_str()),
        }
    }
    if !missing.is_empty() {
        bail!(
            "not in state ({}): {}; nothing was removed",
            backend.describe(),
            missing.join(", ")
        );
    }
    state.serial += 1;
    backend.commit(&state, &[]).await?;
    for r in removed {
        println!("removed {r} from state; nothing on the server was changed");
    }
    Ok(ExitCode::SUCCESS)
}

async fn migrate(
    source: &dyn StateBackend,
    target: &dyn StateBackend,
    lock_timeout: Duration,
) -> anyhow::Result<ExitCode> {
    if source.describe() == target.describe() {
        bail!(
            "--from and --to are the same backend ({})",
            source.describe()
        );
    }
    let who = LockInfo::for_this_process("state migrate");
    let _source_lock = source.lock(&who, lock_timeout).await?;
    let _target_lock = target.lock(&who, lock_timeout).await?;
    let state = load_some(source).await?;
    if let Some(existing) = target.load().await? {
        if existing.lineage != state.lineage {
            bail!(
                "{} already holds another project's state (lineage {}, this one is {}); \
                 refusing to overwrite it",
                target.describe(),
                existing.lineage,
                state.lineage
            );
        }
        if existing.serial > state.serial {
            bail!(
                "{} holds a newer serial ({}) of this state than {} ({}); refusing to go back",
                target.describe(),
                existing.serial,
                source.describe(),
                state.serial
            );
        }
    }
    target.commit(&state, &[]).await?;
    match target.load().await? {
        Some(copied) if copied == state => {}
        _ => bail!(
            "{} does not read back what was written; the source {} is unchanged",
            target.describe(),
            source.describe()
        ),
    }
    println!(
        "migrated state (lineage {}, serial {}, {} restaurant(s)) from {} to {}",
        state.lineage,
        state.serial,
        state.restaurants.len(),
        source.describe(),
        target.describe()
    );
    Ok(ExitCode::SUCCESS)
}

/// `500ms`, `30s`, `2m`, `1h`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s or 2m"))?;
    match unit.trim() {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        other => Err(format!(
            "unknown unit {other:?} in {s:?}; use ms, s, m or h"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("soon").is_err());
    }
}
