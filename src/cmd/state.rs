//! `sipform state list|show|rm|migrate`: look at state, forget a restaurant, move state between
//! backends. Nothing here talks to sip-agent-server.

use std::process::ExitCode;
use std::time::Duration;

use sipform::config::{parse_duration, StateSettings};
use sipform::ops::state::{self, BackendKind, MigrateOptions, RmOptions};

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

impl From<Kind> for BackendKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::File => BackendKind::File,
            Kind::Sqlite => BackendKind::Sqlite,
            Kind::Postgres => BackendKind::Postgres,
        }
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let settings = StateSettings::load(&global.project)?;
    match args.command {
        Sub::List => list(&settings, global.verbose > 0).await,
        Sub::Show { restaurant } => show(&settings, &restaurant).await,
        Sub::Rm {
            restaurants,
            lock_timeout,
        } => {
            let opts = RmOptions {
                restaurants,
                lock_timeout,
            };
            for r in state::rm(&settings, &opts).await? {
                println!("removed {r} from state; nothing on the server was changed");
            }
            Ok(ExitCode::SUCCESS)
        }
        Sub::Migrate {
            from,
            from_url,
            to,
            to_url,
            lock_timeout,
        } => {
            let opts = MigrateOptions {
                from: from.into(),
                from_url,
                to: to.into(),
                to_url,
                lock_timeout,
            };
            let m = state::migrate(&settings, &opts).await?;
            println!(
                "migrated state (lineage {}, serial {}, {} restaurant(s)) from {} to {}",
                m.state.lineage,
                m.state.serial,
                m.state.restaurants.len(),
                m.from,
                m.to
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn list(settings: &StateSettings, verbose: bool) -> anyhow::Result<ExitCode> {
    let listing = state::list(settings).await?;
    let Some(state) = listing.state else {
        eprintln!("no state in {}", listing.place);
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
            listing.place
        );
    } else {
        eprintln!("{} restaurant(s)", state.restaurants.len());
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(settings: &StateSettings, restaurant: &str) -> anyhow::Result<ExitCode> {
    let r = state::show(settings, restaurant).await?;
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
