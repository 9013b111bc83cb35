//! `contrail run`: the producer, the CDC stage and the sink together on the
//! configurations in `connectors/`, with a live view and a final report
//! (see the `pipeline` crate).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::Outcome;

/// A flag given twice keeps its last value, so `./scripts/run.sh --duration
/// 600` overrides the script's own `--duration 30`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub(crate) struct RunArgs {
    /// Seconds to produce (0: until interrupted; the first Ctrl-C stops
    /// producing, drains and reports, a second one quits at once).
    #[arg(long)]
    duration: Option<u64>,
    /// Changes per second (0: as fast as PostgreSQL accepts).
    #[arg(long)]
    rate: Option<u64>,
    #[command(flatten)]
    data: crate::produce_cmd::DataArgs,
    /// Write the report as JSON here too (on a failed run: `verified: false`
    /// and the `error`).
    #[arg(long)]
    report: Option<PathBuf>,
    /// How often to query the warehouse for latency, in milliseconds.
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// Seconds at the start whose changes are loaded but not measured.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Seconds to wait, after producing, for everything to be loaded.
    #[arg(long, default_value_t = 120)]
    drain_timeout: u64,
    /// Seconds the stages may take to catch up at the start (an
    /// unreachable service ends the run then, with the stages' last errors).
    #[arg(long, default_value_t = 120)]
    start_timeout: u64,
    /// Producer configuration (default: connectors/producer.toml).
    #[arg(long)]
    producer_config: Option<PathBuf>,
    /// CDC configuration (default: connectors/cdc.toml).
    #[arg(long)]
    cdc_config: Option<PathBuf>,
    /// Sink configuration (default: connectors/sink.toml).
    #[arg(long)]
    sink_config: Option<PathBuf>,
}

pub(crate) fn run(dir: &Path, args: RunArgs) -> anyhow::Result<Outcome> {
    let path = args.report.clone();
    let outcome = run_and_report(dir, args);
    if let (Err(e), Some(path)) = (&outcome, &path) {
        // A machine reading the report learns that the run failed, and why,
        // instead of finding an earlier run's report.
        let json = serde_json::json!({ "verified": false, "error": format!("{e:#}") });
        std::fs::write(path, format!("{json:#}\n"))
            .map_err(|w| anyhow::anyhow!("{e:#}; and cannot write {}: {w}", path.display()))?;
    }
    outcome
}

fn run_and_report(dir: &Path, args: RunArgs) -> anyhow::Result<Outcome> {
    if !(0.0..=3600.0).contains(&args.warmup) {
        anyhow::bail!("--warmup must be between 0 and 3600 seconds, got {}", args.warmup);
    }
    let overrides = args
        .data
        .overrides(Some("postgres".into()), args.rate, args.duration, None);
    let terminal = std::io::stderr().is_terminal();
    let cfg = pipeline::RunConfig {
        producer: crate::produce_cmd::config(dir, args.producer_config, &overrides)?,
        cdc: crate::cdc_cmd::config(dir, args.cdc_config)?,
        sink: crate::sink_cmd::config(dir, args.sink_config)?,
        poll: Duration::from_millis(args.poll_ms),
        warmup: Duration::from_secs_f64(args.warmup),
        drain_timeout: Duration::from_secs(args.drain_timeout),
        start_timeout: Duration::from_secs(args.start_timeout),
        progress_every: Duration::from_secs(if terminal { 1 } else { 5 }),
    };
    cfg.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            crate::shutdown_signal().await;
            eprintln!("\nstopping the producer; draining and verifying (Ctrl-C again to quit at once)");
            let _ = tx.send(true);
            crate::shutdown_signal().await;
            std::process::exit(130);
        });
        let mut err = std::io::stderr();
        let result = pipeline::run(cfg, rx, |p| {
            // In place on a terminal, a line at a time otherwise.
            let _ = if terminal {
                write!(err, "\r\x1b[2K{}", p.line())
            } else {
                writeln!(err, "{}", p.line())
            };
            let _ = err.flush();
        })
        .await;
        if terminal {
            eprintln!();
        }
        result
    });
    let report = report.map_err(|e| anyhow::anyhow!(changes::error_chain(&e)))?;
    print!("{report}");
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(if report.verified {
        Outcome::Ok
    } else {
        Outcome::CheckFailed
    })
}
