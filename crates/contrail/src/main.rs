//! `contrail`: one binary for the whole pipeline.
//!
//! - `contrail schema lint|compile|check|codegen`: the schema-first workflow
//!   over `schemas/*.avdl` (see [`schema_cmd`]).
//! - `contrail stack up|down|status|env`: the local services (see the `stack`
//!   crate).
//! - `contrail produce`: flight data into PostgreSQL (see the `producer`
//!   crate).
//! - `contrail cdc`: PostgreSQL logical replication to Kafka (see the `cdc`
//!   crate).
//! - `contrail sink`: the CDC topics into Snowflake (see the `sink` crate).
//! - `contrail run`: producer, CDC stage and sink together, with a live
//!   view and a verified report (see the `pipeline` crate).
//! - `contrail registry serve`: the Confluent-compatible schema registry
//!   (see the `registry` crate).
//!
//! Exit codes: 0 success, 1 a check failed (lint errors, incompatible schemas,
//! drift), 2 the command could not run (bad input, service failure).

mod cdc_cmd;
mod produce_cmd;
mod registry_cmd;
mod run_cmd;
mod schema_cmd;
mod sink_cmd;
mod stack_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "contrail",
    version,
    about = "Schema-first change data capture: PostgreSQL → Kafka → Snowflake"
)]
struct Cli {
    /// The project directory (holding schemas/ and registry/). Defaults to the
    /// nearest ancestor of the working directory that has a schemas/ folder.
    #[arg(long, global = true, env = "CONTRAIL_PROJECT_DIR")]
    project_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with the Avro IDL schemas in schemas/.
    Schema {
        #[command(subcommand)]
        command: schema_cmd::SchemaCommand,
    },
    /// Produce flight data into PostgreSQL (the operational source CDC reads).
    Produce(produce_cmd::ProduceArgs),
    /// Stream row changes from PostgreSQL to Kafka (config: connectors/cdc.toml).
    Cdc(cdc_cmd::CdcArgs),
    /// Load the CDC topics into Snowflake (config: connectors/sink.toml).
    Sink(sink_cmd::SinkArgs),
    /// Run producer, CDC stage and sink together: live progress, end-to-end
    /// latency, and a check that Snowflake equals PostgreSQL at the end.
    Run(run_cmd::RunArgs),
    /// The schema registry server.
    Registry {
        #[command(subcommand)]
        command: registry_cmd::RegistryCommand,
    },
    /// Start, stop and inspect the local services.
    Stack {
        #[command(subcommand)]
        command: stack_cmd::StackCommand,
    },
}

/// How a command ended, when it did not fail outright.
pub(crate) enum Outcome {
    Ok,
    /// A check ran and found problems (exit code 1).
    CheckFailed,
}

/// Resolves on SIGTERM or SIGINT.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}

/// Runs a long-lived stage until SIGTERM/SIGINT, starting it again with
/// backoff (1 s doubling to 30 s) after a transient error.
pub(crate) async fn run_with_restarts<T, E, Fut>(
    run: impl Fn(tokio::sync::watch::Receiver<bool>) -> Fut,
) -> Result<T, E>
where
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::error::Error + changes::Classified,
{
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = tx.send(true);
    });
    changes::supervise("stage", run, rx).await
}

/// The process environment, read once here: the library crates parse
/// their configuration from it as a value.
pub(crate) fn process_env() -> changes::Env {
    changes::Env::from_vars(std::env::vars())
}

/// The local stack's addresses by variable name (`contrail stack env`):
/// a stage's defaults where the environment gives none.
pub(crate) fn local_stack(dir: &std::path::Path) -> anyhow::Result<std::collections::HashMap<&'static str, String>> {
    Ok(stack::StackConfig::for_project(dir)?.env().into_iter().collect())
}

fn project_dir(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir);
    }
    let cwd = std::env::current_dir()?;
    cwd.ancestors()
        .find(|d| d.join("schemas").is_dir() && d.join("registry").is_dir())
        .map(PathBuf::from)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} is not inside a Contrail project (no ancestor has schemas/ and registry/); pass --project-dir",
                cwd.display()
            )
        })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `contrail run` draws a live view: only warnings interrupt it.
    let default_level = if matches!(cli.command, Command::Run(_)) {
        "warn"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let result = (|| {
        let dir = project_dir(cli.project_dir)?;
        match cli.command {
            Command::Schema { command } => schema_cmd::run(&dir, command),
            Command::Stack { command } => stack_cmd::run(&dir, command),
            Command::Registry { command } => registry_cmd::run(&dir, command),
            Command::Produce(args) => produce_cmd::run(&dir, args),
            Command::Cdc(args) => cdc_cmd::run(&dir, args),
            Command::Sink(args) => sink_cmd::run(&dir, args),
            Command::Run(args) => run_cmd::run(&dir, args),
        }
    })();
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::CheckFailed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
