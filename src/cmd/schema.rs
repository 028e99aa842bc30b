//! `sipform schema [--check] [--out DIR]`: write the JSON Schemas generated from the types.

use std::path::PathBuf;
use std::process::ExitCode;

use sipform::ops::schema::{schema, SchemaOptions};

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    /// Write nothing; exit 1 when a committed file differs from what the types generate.
    #[arg(long)]
    pub check: bool,
    /// The folder (default: `schema/` in the project).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let opts = SchemaOptions {
        dir: args.out.unwrap_or_else(|| global.project.join("schema")),
        check: args.check,
    };
    let outcome = schema(&opts)?;
    for path in &outcome.written {
        println!("wrote {}", path.display());
    }
    if outcome.stale.is_empty() {
        if args.check {
            println!("ok: {} schemas up to date", outcome.total);
        }
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &outcome.stale {
            eprintln!(
                "{}: differs from the types; run `sipform schema`",
                p.display()
            );
        }
        Ok(ExitCode::FAILURE)
    }
}
