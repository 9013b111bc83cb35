//! The registry down is not bad data (issue 16, path 2): a sink that
//! starts with an empty schema cache while the test stack's registry is
//! stopped dead-letters nothing and moves no position; `/healthz` says it
//! is unhealthy; once the registry is back, everything loads.
//!
//! One test function in its own binary: it stops the registry that every
//! other test uses.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use stack::{Service, Stack, StackConfig};

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

#[tokio::test]
async fn a_sink_waits_for_the_registry_and_dead_letters_nothing() {
    let (db, cdc, sf) = TestDb::small_table_captured("sink_registry_down").await;
    let database = db.name.to_uppercase();

    let mut cfg = StackConfig::for_tests(&project()).unwrap();
    cfg.contrail_exe = Some(env!("CARGO_BIN_EXE_contrail").into());
    let stack = Stack::new(cfg);
    stack.down(&[Service::Registry]).unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let n = &db.name;
    let sink_config = format!(
        "[source]\ntopics = [\"{n}.public.t\"]\ngroup_id = \"{n}\"\ndead_letter_topic = \"{n}.sink.dlq\"\n\n\
         [snowflake]\ndatabase = \"{database}\"\nschema = \"CDC\"\ncreate_schema = true\n\n[batch]\nmax_rows = 500\nmax_ms = 100\n\n\
         [service]\nmetrics_listen = \"127.0.0.1:{port}\"\n"
    );
    let mut sink = Stage::command(&db, "sink", &sink_config);
    // Event: the sink has given up on the client's retries and waits
    // (the client's own "retrying" warnings come first).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sink
        .log()
        .contains("the batch waits, nothing is dead-lettered or skipped")
    {
        sink.assert_running();
        assert!(
            Instant::now() < deadline,
            "the sink never met the outage:\n{}",
            sink.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = get(port, "/healthz").unwrap_or_default();
    assert!(
        !health.starts_with("HTTP/1.1 200"),
        "healthy while the registry is down: {health}"
    );
    assert!(health.contains("schema registry is unavailable"), "{health}");
    assert_eq!(
        stored_offsets_sum(&sf, &database, "CDC").await.unwrap_or(0),
        0,
        "no position moves while the registry is down"
    );
    let metrics = get(port, "/metrics").unwrap_or_default();
    for line in ["contrail_sink_dead_lettered_total 0", "contrail_sink_registry_up 0"] {
        assert!(metrics.lines().any(|l| l == line), "{line} missing from\n{metrics}");
    }

    stack.up(&[Service::Registry]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while stored_offsets_sum(&sf, &database, "CDC").await.unwrap_or(0) != 40 {
        sink.assert_running();
        assert!(Instant::now() < deadline, "the sink did not resume:\n{}", sink.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(get(port, "/healthz").unwrap_or_default().starts_with("HTTP/1.1 200"));
    let view = sf
        .query(&format!("SELECT COUNT(*) AS N FROM {database}.CDC.T"), &[])
        .await
        .unwrap();
    assert_eq!(view.get(0, "N"), Some("40"));
    assert!(read(&[format!("{n}.sink.dlq")]).is_empty(), "nothing was dead-lettered");
    let (ok, log) = sink.stop();
    assert!(ok, "{log}");
    db.finish(cdc).await;
}
