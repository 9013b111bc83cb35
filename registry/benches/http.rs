//! Registry throughput and latency on loopback, against the local stack's
//! PostgreSQL (a database of its own), server in-process:
//! - `GET /schemas/ids/{id}` requests per second, driven by `wrk`
//!   (Debian package `wrk`) from a second process;
//! - registration latency: 50 subjects × 10 versions, each version adding an
//!   optional field (BACKWARD), sequentially from one client.
//!
//! Run: `cargo bench -p registry --bench http`. Figures go to docs/BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Instant;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() {
    let mut cfg = common::config(&common::fresh_database("bench"));
    cfg.pool_size = 16;
    let r = common::start(cfg);
    let u = &r.url;

    // Registration latency.
    let mut latencies = Vec::new();
    for version in 0..10 {
        for subject in 0..50 {
            let mut fields = vec![r#"{"name":"id","type":"long"}"#.to_string()];
            for f in 0..version {
                fields.push(format!(r#"{{"name":"f{f}","type":["null","string"],"default":null}}"#));
            }
            let schema = common::record(&format!("S{subject}"), &fields.join(","));
            let start = Instant::now();
            let (status, body) = common::register(u, &format!("bench-{subject}-value"), &schema);
            latencies.push(start.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status, 200, "{body}");
        }
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "registration: {} requests, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );

    // GET /schemas/ids/{id} with wrk.
    let target = format!("{u}/schemas/ids/1");
    match Command::new("wrk")
        .args(["-t2", "-c64", "-d15s", "--latency", &target])
        .output()
    {
        Ok(out) => println!(
            "wrk -t2 -c64 -d15s --latency {target}\n{}",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(e) => println!("wrk is not installed ({e}): apt-get install wrk"),
    }
}
