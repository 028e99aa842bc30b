//! `sipform render [--restaurant ID] [--json]`: the rendered specs, after validation.

use std::process::ExitCode;

use serde_json::json;
use sipform::front::load;
use sipform::front::render::RenderEnv;
use sipform::front::validate;

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
    let root = &global.project;
    let project = match load::load_project_file(root) {
        Ok(p) => p,
        Err(d) => {
            super::validate::report(&d);
            return Ok(ExitCode::FAILURE);
        }
    };
    let env = RenderEnv::from_env(&project);
    let v = match validate::desired(root, &env) {
        Ok(v) => v,
        Err(d) => {
            super::validate::report(&d);
            return Ok(ExitCode::FAILURE);
        }
    };
    let specs: Vec<_> = v
        .desired
        .restaurants
        .iter()
        .filter(|r| {
            args.restaurant
                .as_deref()
                .is_none_or(|id| r.id.as_str() == id)
        })
        .map(|r| {
            json!({
                "restaurantId": r.id,
                "finalCustomer": r.final_customer,
                "agent": r.agent,
            })
        })
        .collect();
    if let (Some(id), true) = (&args.restaurant, specs.is_empty()) {
        eprintln!("error: no restaurant with id `{id}`");
        return Ok(ExitCode::FAILURE);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&specs)?);
    } else {
        for (i, s) in specs.iter().enumerate() {
            if i > 0 {
                println!("---");
            }
            print!("{}", serde_saphyr::to_string(s)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
