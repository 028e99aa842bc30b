//! `sipform schema` (not yet written).

use std::process::ExitCode;

use super::Global;

#[derive(clap::Args)]
pub struct Args {}

pub async fn run(_global: &Global, _args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`sipform schema` is not implemented yet")
}
