//! The CDC stage and the sink as tasks of the run, each under the
//! supervisor, and the waits on what they publish: the CDC stage's
//! confirmed position and snapshotted tables, the sink's stored positions
//! (see `cdc::metrics::Progress` and `sink::metrics::Progress`). Nothing
//! here reads a stage's private tables.

use std::time::Duration;

use changes::{error_chain, supervise, Lsn};
use tokio::sync::watch;

use crate::meters::Meters;
use crate::RunError;

type StageTask = tokio::task::JoinHandle<Result<(), RunError>>;

/// The two stages that run for the whole run.
pub(crate) struct Stages {
    cdc: StageTask,
    sink: StageTask,
    stop: watch::Sender<bool>,
}

impl Stages {
    /// Spawns both, each restarted with backoff after a transient error.
    pub(crate) fn spawn(cdc_cfg: &cdc::CdcConfig, sink_cfg: &sink::SinkConfig, meters: &Meters) -> Stages {
        let (stop, stop_rx) = watch::channel(false);
        let cdc = {
            let (c, m, rx) = (cdc_cfg.clone(), meters.cdc.clone(), stop_rx.clone());
            tokio::spawn(async move {
                let run = |s| cdc::run_with_metrics(c.clone(), m.clone(), s);
                supervise("cdc", run, rx).await?;
                Ok(())
            })
        };
        let sink = {
            let (c, m, rx) = (sink_cfg.clone(), meters.sink.clone(), stop_rx);
            tokio::spawn(async move {
                let run = |s| sink::run_with_metrics(c.clone(), m.clone(), s);
                supervise("sink", run, rx).await?;
                Ok(())
            })
        };
        Stages { cdc, sink, stop }
    }

    /// Resolves with the error of whichever stage ends first; a stage
    /// never ends on its own while the run needs it.
    pub(crate) async fn failure(&mut self) -> RunError {
        let ended = |name: &str, r: Result<Result<(), RunError>, tokio::task::JoinError>| match r {
            Ok(Err(e)) => e,
            Ok(Ok(())) => RunError::Task(format!("the {name} stopped")),
            Err(e) => RunError::Task(format!("the {name}: {e}")),
        };
        tokio::select! {
            r = &mut self.cdc => ended("CDC stage", r),
            r = &mut self.sink => ended("sink", r),
        }
    }

    /// Stops stages that have not caught up in `timeout`: each returns
    /// the last error it was retrying (the supervisor hands it back on a
    /// stop), and the run ends naming them.
    pub(crate) async fn stop_stalled(mut self, timeout: Duration, waiting: &'static str) -> RunError {
        let _ = self.stop.send(true);
        let mut last = Vec::new();
        for (name, task) in [("CDC stage", &mut self.cdc), ("sink", &mut self.sink)] {
            let said = match tokio::time::timeout(Duration::from_secs(30), task).await {
                Ok(Ok(Ok(()))) => "no error".to_string(),
                Ok(Ok(Err(e))) => error_chain(&e),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "did not stop within 30 s".to_string(),
            };
            last.push(format!("the {name}: {said}"));
        }
        RunError::Start {
            timeout,
            waiting,
            last_errors: last.join("; "),
        }
    }

    /// A graceful stop: the CDC stage confirms its last position, the sink
    /// finishes its batch. What goes wrong is logged: the run is over.
    pub(crate) async fn stop(mut self) {
        let _ = self.stop.send(true);
        for (name, task) in [("CDC stage", &mut self.cdc), ("sink", &mut self.sink)] {
            match tokio::time::timeout(Duration::from_secs(30), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => {
                    tracing::warn!(stage = name, error = %error_chain(&e), "stopped with an error after the run")
                }
                Ok(Err(e)) => tracing::warn!(stage = name, error = %e, "task failed after the run"),
                Err(_) => tracing::warn!(stage = name, "did not stop within 30 s"),
            }
        }
    }
}

/// Waits until the CDC stage has snapshotted `table` (at once when an
/// earlier run did): from then on, its changes stream.
pub(crate) async fn wait_streaming(meters: &Meters, table: &str) -> Result<(), RunError> {
    let mut rx = meters.cdc.progress.subscribe();
    rx.wait_for(|p| p.snapshotted.contains(table)).await.map_err(gone)?;
    Ok(())
}

/// Waits until everything committed before `lsn` is loaded: the CDC stage
/// has confirmed it (so Kafka has it), then the sink's stored positions
/// reach every partition's end.
pub(crate) async fn wait_through(
    meters: &Meters,
    kafka: &kafka::KafkaConfig,
    topic: &str,
    lsn: Lsn,
) -> Result<(), RunError> {
    let mut confirmed = meters.cdc.progress.subscribe();
    confirmed.wait_for(|p| p.confirmed >= lsn).await.map_err(gone)?;
    let ends = high_watermarks(kafka, topic).await?;
    let mut stored = meters.sink.progress.subscribe();
    stored
        .wait_for(|p| {
            ends.iter()
                .all(|(part, end)| *end == 0 || p.stored.get(&(topic.to_string(), *part)).is_some_and(|at| at >= end))
        })
        .await
        .map_err(gone)?;
    Ok(())
}

fn gone(_: watch::error::RecvError) -> RunError {
    RunError::Task("a stage's progress channel closed".into())
}

/// Each partition's end offset.
pub(crate) async fn high_watermarks(kafka: &kafka::KafkaConfig, topic: &str) -> Result<Vec<(i32, i64)>, RunError> {
    let (kafka, topic) = (kafka.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || kafka::high_watermarks(&kafka, &topic))
        .await
        .map_err(|e| RunError::Task(e.to_string()))?
        .map_err(RunError::from)
}
