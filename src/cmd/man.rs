//! `sipform man [COMMAND]`: a man page (roff, from `clap_mangen`) on stdout, the whole
//! program's or one command's (`sipform man plan`); `--dir DIR` writes every page there
//! (`sipform.1`, `sipform-plan.1`, …) for packaging.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// One command's page instead of the program's (`plan`, `controller`, …).
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
    /// Write every page into this folder instead of printing one.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    pub dir: Option<PathBuf>,
}

pub fn run(mut command: clap::Command, args: &Args) -> anyhow::Result<ExitCode> {
    command.build();
    if let Some(dir) = &args.dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        clap_mangen::generate_to(command, dir)
            .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
        println!("wrote the man pages into {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let page = match &args.command {
        None => command,
        Some(name) => {
            let program = command.get_name().to_string();
            let version = command.get_version().unwrap_or_default().to_string();
            let Some(sub) = command.find_subcommand(name) else {
                let known: Vec<&str> = command.get_subcommands().map(|s| s.get_name()).collect();
                anyhow::bail!("no command {name:?}: one of {}", known.join(", "));
            };
            // clap names are `&'static str` without its `string` feature; this process prints
            // one page and exits.
            let full: &'static str =
                Box::leak(format!("{program}-{}", sub.get_name()).into_boxed_str());
            let version: &'static str = Box::leak(version.into_boxed_str());
            sub.clone().name(full).display_name(full).version(version)
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .context("cannot render the man page")?;
    std::io::stdout()
        .write_all(&out)
        .context("cannot write the man page")?;
    Ok(ExitCode::SUCCESS)
}
