//! `sipform validate [DIR]`: every file and every rendered agent, without contacting
//! sip-agent-server (a database inventory is read from the platform's table).

use std::path::PathBuf;
use std::process::ExitCode;

use sipform::front::diagnostics::Diagnostics;
use sipform::front::load;
use sipform::front::render::RenderEnv;
use sipform::front::validate;

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    /// The project folder (default: -C, else the current folder).
    pub dir: Option<PathBuf>,
}

/// Prints each diagnostic on its own line to stderr.
pub fn report(diags: &Diagnostics) {
    for d in diags.iter() {
        eprintln!("{d}");
    }
    eprintln!(
        "error: {} problem{} found",
        diags.len(),
        if diags.len() == 1 { "" } else { "s" }
    );
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let root = args.dir.unwrap_or_else(|| global.project.clone());
    let project = match load::load_project_file(&root) {
        Ok(p) => p,
        Err(d) => {
            report(&d);
            return Ok(ExitCode::FAILURE);
        }
    };
    let env = RenderEnv::from_env(&project);
    // A database inventory is read from the platform's table (never from sip-agent-server).
    let checked =
        match sipform::inventory::PlatformTable::from_config(&project.inventory, &root).await? {
            None => validate::check(&root, &env),
            Some(table) => validate::check_with(&root, &env, table.read_restaurants().await?),
        };
    match checked {
        Ok(r) => {
            if global.verbose > 0 {
                for one in &r.validated.desired.restaurants {
                    eprintln!(
                        "rendered {} ({}): {} tools",
                        one.id,
                        one.agent.name,
                        one.tools.len()
                    );
                }
            }
            println!(
                "ok: {} tools, {} restaurants, {} agents rendered",
                r.tools,
                r.validated.desired.restaurants.len(),
                r.agents
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(d) => {
            report(&d);
            Ok(ExitCode::FAILURE)
        }
    }
}
