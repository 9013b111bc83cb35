//! A registry server per test, on an ephemeral port, over a database of its
//! own in the local stack's PostgreSQL cluster; and a small HTTP client.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// The local stack's configuration (the README's test command starts it).
pub fn stack() -> stack::StackConfig {
    stack::StackConfig::for_tests(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap()
}

/// Creates (or re-creates) a database named `registry_test_<name>` and returns its URL.
pub fn fresh_database(name: &str) -> String {
    let cfg = stack();
    let admin = cfg.env().into_iter().find(|(k, _)| *k == "DATABASE_URL").unwrap().1;
    let db = format!("registry_test_{name}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .expect("the local stack's PostgreSQL (run `contrail stack up`)");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await
            .unwrap();
        client.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    });
    admin.rsplit_once('/').map(|(base, _)| format!("{base}/{db}")).unwrap()
}

/// A running registry; stops when dropped.
pub struct TestRegistry {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn config(database_url: &str) -> registry::ServerConfig {
    registry::ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
        local_listen: None,
        database_url: registry::DatabaseUrl::new(database_url),
        auth: None,
        public_metrics: false,
        body_limit: 1 << 20,
        request_timeout: Duration::from_secs(30),
        pool_size: 8,
    }
}

/// Serves `config` on an ephemeral port in a thread of its own.
pub fn start(config: registry::ServerConfig) -> TestRegistry {
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let state = registry::app_state(&config).await.unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            port_tx.send(listener.local_addr().unwrap().port()).unwrap();
            axum::serve(listener, registry::api::router(state))
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("registry did not start");
    TestRegistry {
        url: format!("http://127.0.0.1:{port}"),
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

/// A fresh database and a registry on it.
pub fn registry(name: &str) -> TestRegistry {
    start(config(&fresh_database(name)))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Sends a request and returns the status and the body (JSON, or a string).
pub fn call(method: &str, url: &str, body: Option<&Value>, auth: Option<&str>) -> (u16, Value) {
    let agent = agent();
    let mut resp = match (method, body) {
        ("GET", _) | ("DELETE", None) => {
            let mut req = if method == "GET" {
                agent.get(url)
            } else {
                agent.delete(url)
            };
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            req.call().unwrap()
        }
        (_, body) => {
            let mut req = match method {
                "POST" => agent.post(url),
                "PUT" => agent.put(url),
                other => panic!("method {other}"),
            }
            .header("Content-Type", "application/vnd.schemaregistry.v1+json");
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            req.send(body.map(Value::to_string).unwrap_or_default()).unwrap()
        }
    };
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

pub fn get(url: &str) -> (u16, Value) {
    call("GET", url, None, None)
}

pub fn post(url: &str, body: Value) -> (u16, Value) {
    call("POST", url, Some(&body), None)
}

pub fn put(url: &str, body: Value) -> (u16, Value) {
    call("PUT", url, Some(&body), None)
}

pub fn delete(url: &str) -> (u16, Value) {
    call("DELETE", url, None, None)
}

/// A record schema with the given fields, as registration body text.
pub fn record(name: &str, fields: &str) -> String {
    format!(r#"{{"type":"record","name":"{name}","namespace":"t","fields":[{fields}]}}"#)
}

pub fn register(base: &str, subject: &str, schema: &str) -> (u16, Value) {
    post(
        &format!("{base}/subjects/{subject}/versions"),
        serde_json::json!({"schema": schema}),
    )
}
