//! A throwaway Kafka broker for benchmarks: Tansu with in-memory storage on
//! a free port, so a benchmark measures the client side rather than the
//! stack broker's sqlite writes, and leaves nothing behind.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{io_err, StackError};

/// A running in-memory Tansu; stopped when dropped.
#[derive(Debug)]
pub struct MemoryBroker {
    child: Child,
    dir: PathBuf,
    /// `host:port` for `bootstrap.servers`.
    pub bootstrap: String,
}

impl MemoryBroker {
    /// Starts one and waits until it accepts connections.
    pub fn start() -> Result<MemoryBroker, StackError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io_err("finding a free port"))?
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let dir = std::env::temp_dir().join(format!("tansu-memory-{port}"));
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let child = Command::new(crate::services::tansu_bin()?)
            .current_dir(&dir)
            .args([
                "broker",
                "--storage-engine",
                "memory://tansu/",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_err("starting tansu"))?;
        let mut broker = MemoryBroker {
            child,
            dir,
            bootstrap: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || broker.child.try_wait().ok().flatten().is_some() {
                return Err(StackError::Command {
                    what: "tansu (memory storage)".into(),
                    detail: "did not start".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(broker)
    }
}

impl Drop for MemoryBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
