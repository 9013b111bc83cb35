//! `contrail stack …`: the local services.

use std::path::Path;

use clap::Subcommand;
use stack::{ServiceState, Stack, StackConfig};

use crate::Outcome;

#[derive(Debug, Subcommand)]
pub(crate) enum StackCommand {
    /// Start the services that are not running and wait until all are healthy.
    Up,
    /// Stop the services (data is kept in .contrail/).
    Down,
    /// Show each service's state; exits 1 when any is not healthy.
    Status,
    /// Print `export NAME=value` lines for the services, for `eval "$(contrail stack env)"`.
    Env,
}

pub(crate) fn run(dir: &Path, command: StackCommand) -> anyhow::Result<Outcome> {
    let mut config = StackConfig::for_project(dir)?;
    config.contrail_exe = Some(std::env::current_exe()?);
    let stack = Stack::new(config);
    let all = stack::Service::ALL;
    let statuses = match command {
        StackCommand::Up => stack.up(&all)?,
        StackCommand::Down => stack.down(&all)?,
        StackCommand::Status => stack.status(),
        StackCommand::Env => {
            for (k, v) in stack.config().env() {
                println!("export {k}={v}");
            }
            return Ok(Outcome::Ok);
        }
    };
    for s in &statuses {
        println!("{s}");
    }
    let want = if matches!(command, StackCommand::Down) {
        ServiceState::Stopped
    } else {
        ServiceState::Healthy
    };
    Ok(if statuses.iter().all(|s| s.state == want) {
        Outcome::Ok
    } else {
        Outcome::CheckFailed
    })
}
