//! `sipform rollout status [--json] | resume | abort`: a change going out in waves
//! (`rollout:` of `sipform.yaml`, docs/rollout.md).

use std::process::ExitCode;

use sipform::ops::rollout::{self, Phase};
use sipform::output;

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(clap::Subcommand)]
pub enum Sub {
    /// The waves, done / pending / failed, and why the rollout is paused or halted. Exit 1
    /// when it is halted.
    Status {
        /// One JSON document (for CI).
        #[arg(long)]
        json: bool,
    },
    /// Let a halted rollout go on (its wave's calls are judged again from now), or release
    /// the next wave under `pause: manual`. The next `apply` sends.
    Resume,
    /// Put the restaurants of the started waves back on the stable revision (planned and shown
    /// like any change), and end the rollout.
    Abort(super::abort::Args),
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Sub::Status { json } => {
            let ws = super::workspace(global, &Default::default()).await?;
            let s = rollout::status(&ws).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{}", output::rollout_status(&s));
            }
            Ok(if s.phase == Phase::Halted {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Sub::Resume => {
            let ws = super::workspace(global, &Default::default()).await?;
            let events = rollout::resume(&ws).await?;
            print!(
                "{}",
                output::rollout_run(events.list(), &rollout::Verdict::NoRollout)
            );
            println!("Run `sipform apply` to continue the rollout.");
            Ok(ExitCode::SUCCESS)
        }
        Sub::Abort(a) => super::abort::run(global, a).await,
    }
}
