//! `sipform render [--restaurant ID] [--json]`: the rendered specs, after validation.

use std::process::ExitCode;

use sipform::ops::render::{self, RenderOptions};
use sipform::ops::OpsError;
use sipform::output::specs;

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    /// Only this restaurant (its id).
    #[arg(long)]
    pub restaurant: Option<String>,
    /// JSON instead of YAML.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let Some(settings) = super::validate::settings(&global.project)? else {
        return Ok(ExitCode::FAILURE);
    };
    let opts = RenderOptions {
        restaurant: args.restaurant,
    };
    let specs = match render::render(&settings, &opts).await {
        Ok(s) => s,
        Err(OpsError::Invalid(d)) => {
            super::validate::report(&d);
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        print!("{}", specs::json(&specs)?);
    } else {
        print!("{}", specs::yaml(&specs)?);
    }
    Ok(ExitCode::SUCCESS)
}
