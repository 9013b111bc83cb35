//! The producer's Kafka mode against a bare rdkafka producer sending the same
//! bytes to the same broker, in one run: a scratch Apache Kafka broker
//! (`stack::ScratchKafka`, logs on disk in a temporary directory) started
//! here, and the local stack's schema registry.
//!
//! Run: `cargo bench -p producer --bench kafka` (after `contrail stack up`).
//! Figures go to docs/BENCHMARKS.md.

use std::time::{Duration, Instant};

use avro_codec::AvroRecord;
use producer::kafka_target::KafkaTargetConfig;
use producer::{ProducerConfig, Target};

const DURATION: Duration = Duration::from_secs(15);

fn main() {
    let broker = stack::ScratchKafka::start()
        .expect("a scratch Apache Kafka broker (Java 17 and Maven: ./scripts/env.sh installs them)");
    let registry_url = std::env::var("SCHEMA_REGISTRY_URL").unwrap_or_else(|_| "http://127.0.0.1:8081".into());
    let kafka = kafka::KafkaConfig {
        bootstrap_servers: broker.bootstrap.clone(),
        client_id: "bench".into(),
        properties: Default::default(),
    };
    let sim = simulator::SimConfig {
        seed: 3,
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // 1. The producer service: simulate, validate, encode, send, until DURATION.
    let cfg = ProducerConfig {
        source: producer::source::SourceConfig::Simulator(sim.clone()),
        target: Target::Kafka(Box::new(KafkaTargetConfig {
            kafka: kafka.clone(),
            registry_url,
            registry: Default::default(),
            topic: "bench.service".into(),
            dead_letter_topic: "bench.service.dlq".into(),
            partitions: 3,
            linger: Duration::from_millis(5),
        })),
        batch_size: 1000,
        rate: None,
        duration: Some(DURATION),
        metrics_listen: None,
    };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let summary = rt.block_on(producer::run(cfg, rx)).unwrap();
    let service_rate = summary.acknowledged as f64 / summary.elapsed.as_secs_f64();

    // 2. Bare rdkafka: the same number of records, the same bytes, pre-encoded.
    let n = summary.total() as usize;
    let mut simulator = simulator::Simulator::new(sim).unwrap();
    let now = 1_764_000_000_000;
    let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..n)
        .map(|_| {
            let c = simulator.next_change(now);
            let mut key = Vec::new();
            wire::write_header(&mut key, 1);
            avro_codec::put_string(&mut key, &c.state.icao24);
            let value = (c.op != simulator::Op::Delete).then(|| {
                let mut v = Vec::new();
                wire::write_header(&mut v, 1);
                c.state.encode(&mut v);
                v
            });
            (key, value)
        })
        .collect();
    rt.block_on(kafka::ensure_topics(
        &kafka,
        &[kafka::TopicSpec {
            name: "bench.bare".into(),
            partitions: 3,
            replication: 1,
            config: Vec::new(),
        }],
    ))
    .unwrap();
    let bare = kafka::Producer::new(&kafka, Duration::from_millis(5)).unwrap();
    let start = Instant::now();
    for (key, value) in &records {
        bare.send(kafka::Record {
            topic: "bench.bare",
            key,
            value: value.as_deref(),
            headers: &[],
        })
        .unwrap();
    }
    bare.flush(Duration::from_secs(300)).unwrap();
    let bare_elapsed = start.elapsed();
    let bare_rate = n as f64 / bare_elapsed.as_secs_f64();

    println!(
        "producer service: {} records acknowledged in {:.2} s = {:.0} records/s (simulate + validate + encode + send)",
        summary.acknowledged,
        summary.elapsed.as_secs_f64(),
        service_rate
    );
    println!(
        "bare rdkafka, same bytes: {n} records in {:.2} s = {bare_rate:.0} records/s",
        bare_elapsed.as_secs_f64()
    );
    println!("ratio: {:.2}", service_rate / bare_rate);
    drop(broker);
}
