//! `/metrics` (Prometheus text) and `/healthz` for a long-running stage.
//!
//! A stage hands over how to render its metrics and how to judge its
//! health; [`serve`] binds the address (failing at once if it is taken, so
//! a misconfigured port stops the stage at start) and serves until the
//! returned [`Server`] is dropped.

pub mod typed;

use std::net::SocketAddr;
use std::sync::Arc;

pub use typed::{Buckets, Tally, Timings};

/// A Prometheus registry in the text exposition format.
pub fn render(registry: &prometheus_client::registry::Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// The running server; dropping it stops it.
#[derive(Debug)]
pub struct Server(tokio::task::JoinHandle<()>);

impl Drop for Server {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves `render()` at `/metrics` and `health()` at `/healthz` (200 "ok",
/// or 503 with the reason).
pub async fn serve(
    addr: SocketAddr,
    render: impl Fn() -> String + Send + Sync + 'static,
    health: impl Fn() -> Result<(), String> + Send + Sync + 'static,
) -> std::io::Result<Server> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let (render, health) = (Arc::new(render), Arc::new(health));
    let app = axum::Router::new()
        .route("/metrics", get(move || async move { render() }))
        .route(
            "/healthz",
            get(move || async move {
                match health() {
                    Ok(()) => (StatusCode::OK, "ok".to_string()),
                    Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
                }
            }),
        );
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "metrics server stopped");
        }
    });
    tracing::info!(%addr, "serving /metrics and /healthz");
    Ok(Server(task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_fails_at_once() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        assert!(serve(addr, String::new, || Ok(())).await.is_err());
    }
}
