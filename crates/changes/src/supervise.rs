//! The one supervisor every stage runs under, and what it judges by.
//!
//! ```text
//! supervise(run) ─▶ run(stop) ─▶ Ok ───────────────────────────▶ Ok
//!                      │
//!                      └─▶ Err(e) ─▶ transient(e)? ─ no ─────────▶ Err(e)
//!                                        │ yes
//!                                        ▼
//!                        wait 1 s, 2 s, … 30 s (or stop) ─▶ run(stop) again
//! ```
//!
//! An error's [`Class`](crate::Class) is decided where it arises (see each
//! stage's error type); the supervisor only asks it. [`Heartbeat`] is the health a stage
//! serves on `/healthz`: its loop beats, and a loop that stops beating is
//! unhealthy. [`error_chain`] is how an error is logged: with its causes.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::Classified;

/// The first wait before a restart; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Runs `run` again after each transient error ([`Classified`]), with
/// backoff ([`FIRST_BACKOFF`] doubling to [`MAX_BACKOFF`]), until it
/// succeeds, fails otherwise, or `stop` turns true (then the last error is
/// returned).
pub async fn supervise<T, E, Fut>(
    stage: &str,
    run: impl Fn(watch::Receiver<bool>) -> Fut,
    stop: watch::Receiver<bool>,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
    E: std::error::Error + Classified,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        match run(stop.clone()).await {
            Err(e) if e.is_transient() && !*stop.borrow() => {
                tracing::warn!(stage, error = %error_chain(&e), retry_in = ?backoff, "stopped on a transient error; restarting");
                let mut s = stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = s.changed() => {}
                }
                if *stop.borrow() {
                    return Err(e);
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            other => return other,
        }
    }
}

/// An error and its sources, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// When a stage's loop last went round, for its `/healthz`.
#[derive(Debug, Default)]
pub struct Heartbeat {
    /// Unix ms of the last beat; 0 before the first.
    last_ms: AtomicI64,
}

impl Heartbeat {
    pub fn beat(&self) {
        self.last_ms.store(unix_ms(), Ordering::Relaxed);
    }

    /// Healthy if the loop beat within `max_age`; `starting` explains the
    /// time before the first beat.
    pub fn check(&self, max_age: Duration, starting: &str) -> Result<(), String> {
        let last = self.last_ms.load(Ordering::Relaxed);
        let age = unix_ms() - last;
        match last {
            0 => Err(starting.to_string()),
            _ if age > i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX) => {
                Err(format!("the stage's loop has not gone round for {age} ms"))
            }
            _ => Ok(()),
        }
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[derive(Debug)]
    enum E {
        Transient,
        Fatal,
    }

    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }

    impl std::error::Error for E {}

    impl crate::Classified for E {
        fn class(&self) -> crate::Class {
            match self {
                E::Transient => crate::Class::Transient,
                E::Fatal => crate::Class::Fatal,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_restart_with_backoff_and_fatal_ones_stop() {
        let runs = AtomicU32::new(0);
        let (_tx, rx) = watch::channel(false);
        let started = tokio::time::Instant::now();
        let result: Result<(), E> = supervise(
            "test",
            |_| async {
                match runs.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(E::Transient),
                    _ => Err(E::Fatal),
                }
            },
            rx,
        )
        .await;
        assert!(matches!(result, Err(E::Fatal)));
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        // 1 s, then 2 s, of paused time.
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_during_the_backoff_returns_the_last_error() {
        let (tx, rx) = watch::channel(false);
        let result: Result<(), E> = supervise(
            "test",
            |_| {
                let _ = tx.send(true);
                async { Err(E::Transient) }
            },
            rx,
        )
        .await;
        assert!(matches!(result, Err(E::Transient)));
    }

    #[test]
    fn a_heartbeat_is_unhealthy_before_its_first_beat() {
        let h = Heartbeat::default();
        assert_eq!(h.check(Duration::from_secs(10), "starting"), Err("starting".into()));
        h.beat();
        assert_eq!(h.check(Duration::from_secs(10), "starting"), Ok(()));
    }

    #[test]
    fn an_error_chain_names_every_cause() {
        let e = Wrapped(std::io::Error::other("refused"));
        assert_eq!(error_chain(&e), "wrapped: refused");
    }

    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapped")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
}
