//! `sipform schema [--check] [--out DIR]`: write the JSON Schemas generated from the types.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use sipform::front::schema::{to_text, SCHEMA_FILES};

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
    let dir = args.out.unwrap_or_else(|| global.project.join("schema"));
    let mut stale = Vec::new();
    if !args.check {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for f in SCHEMA_FILES {
        let text = to_text(&(f.generate)());
        let path = dir.join(f.file_name);
        if args.check {
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if current != text {
                stale.push(path);
            }
        } else {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    if stale.is_empty() {
        if args.check {
            println!("ok: {} schemas up to date", SCHEMA_FILES.len());
        }
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &stale {
            eprintln!(
                "{}: differs from the types; run `sipform schema`",
                p.display()
            );
        }
        Ok(ExitCode::FAILURE)
    }
}
