//! `contrail stack …`: the local services.

use std::path::Path;

use clap::Subcommand;
use stack::{ServiceState, Stack, StackConfig};

use crate::Outcome;

#[derive(Debug, Subcommand)]
pub(crate) enum StackCommand {
    /// Start the services that are not running and wait until all are healthy.
    Up {
        /// Production-style security: a CA of the stack's own under
        /// .contrail/tls, and Kafka with SASL_SSL (SCRAM) and mTLS listeners
        /// beside its plaintext one. See docs/SECURITY.md.
        #[arg(long)]
        secure: bool,
    },
    /// Stop the services (data is kept in .contrail/).
    Down,
    /// Show each service's state; exits 1 when any is not healthy.
    Status,
    /// Print `export NAME=value` lines for the services, for `eval "$(contrail stack env)"`.
    Env {
        /// The environment that reaches the secure stack's services securely
        /// (Kafka over SASL_SSL with SCRAM-SHA-512, verifying the CA).
        #[arg(long)]
        secure: bool,
    },
}

pub(crate) fn run(dir: &Path, command: StackCommand) -> anyhow::Result<Outcome> {
    let mut config = StackConfig::for_project(dir)?;
    config.contrail_exe = Some(std::env::current_exe()?);
    config.secure = matches!(command, StackCommand::Up { secure: true });
    let stack = Stack::new(config);
    let all = stack::Service::ALL;
    let statuses = match command {
        StackCommand::Up { .. } => stack.up(&all)?,
        StackCommand::Down => stack.down(&all)?,
        StackCommand::Status => stack.status(),
        StackCommand::Env { secure } => {
            print_env(stack.config(), secure);
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

/// `export` lines, shell-quoted; with `secure`, the secure settings win over
/// the plain ones of the same name.
fn print_env(config: &StackConfig, secure: bool) {
    let mut vars: Vec<(String, String)> = config.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    if secure {
        for (k, v) in config.secure_env() {
            vars.retain(|(name, _)| *name != k);
            vars.push((k, v));
        }
    }
    for (k, v) in vars {
        println!("export {k}='{}'", v.replace('\'', "'\\''"));
    }
}
