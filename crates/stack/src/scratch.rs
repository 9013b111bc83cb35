//! A throwaway Apache Kafka for benchmarks: the stack's broker (same jars,
//! same settings) on free ports in a temporary directory, so a benchmark
//! measures a real broker writing real logs without touching the user's
//! stack, and leaves nothing behind.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::health::kafka_probe;
use crate::kafka::Broker;
use crate::process::{self, wait_until};
use crate::{io_err, StackError};

/// A running scratch broker; stopped, and its directory removed, on drop.
#[derive(Debug)]
pub struct ScratchKafka {
    child: Child,
    dir: PathBuf,
    /// `host:port` for `bootstrap.servers`.
    pub bootstrap: String,
}

fn free_port() -> Result<u16, StackError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(io_err("finding a free port"))
}

impl ScratchKafka {
    /// The broker's process (its JVM), for CPU accounting.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts one and waits until it is healthy. The jars come from the
    /// shared cache (fetched with Maven when missing).
    pub fn start() -> Result<ScratchKafka, StackError> {
        let cache = crate::cache_dir(&crate::process_env).ok_or_else(|| {
            StackError::Config("neither XDG_CACHE_HOME nor HOME is set: no cache for the Kafka jars".into())
        })?;
        let (port, controller_port) = (free_port()?, free_port()?);
        let dir = std::env::temp_dir().join(format!("contrail-scratch-kafka-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        let broker = Broker {
            dir: dir.clone(),
            port,
            controller_port,
            secure: None,
        };
        let mut cmd = broker.prepare(&cache)?;
        let log = dir.join("kafka.log");
        let out = std::fs::File::create(&log).map_err(io_err(format!("creating {}", log.display())))?;
        let err = out.try_clone().map_err(io_err(format!("opening {}", log.display())))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io_err("starting a scratch Kafka broker"))?;
        let scratch = ScratchKafka {
            child,
            dir,
            bootstrap: format!("127.0.0.1:{port}"),
        };
        wait_until(Duration::from_secs(60), Some(scratch.child.id()), || {
            kafka_probe(port).map(|_| ())
        })
        .map_err(|reason| StackError::StartFailed {
            service: "scratch kafka",
            reason,
            log: log.display().to_string(),
            tail: process::tail(&log, 30),
        })?;
        Ok(scratch)
    }
}

impl Drop for ScratchKafka {
    fn drop(&mut self) {
        process::stop(self.child.id(), Duration::from_secs(30));
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
