//! The delivery contract (`changes::testing::contract`) against the tests'
//! own stack's Apache Kafka broker: the same checks the memory doubles
//! pass, on a tracked producer and a group-offset source.

mod common;

use common::config;
use kafka::{GroupSource, KafkaConfig, Producer, Record, TopicSpec};

async fn topic(cfg: &KafkaConfig, name: &str, partitions: i32, config: Vec<(String, String)>) -> String {
    let name = format!("{name}{}", std::process::id());
    kafka::ensure_topics(
        cfg,
        &[TopicSpec {
            name: name.clone(),
            partitions,
            replication: 1,
            config,
        }],
    )
    .await
    .unwrap();
    name
}

fn record<'a>(topic: &'a str, value: &'a [u8]) -> Record<'a> {
    Record {
        topic,
        key: b"k",
        value: Some(value),
        headers: &[],
    }
}

#[tokio::test]
async fn a_tracked_producer_keeps_the_destination_contract() {
    let cfg = config("contract-destination");
    let ok = topic(&cfg, "contract-dest", 3, Vec::new()).await;
    let producer = Producer::tracked(&cfg, std::time::Duration::from_millis(5)).unwrap();
    let values: Vec<Vec<u8>> = (0..50).map(|i| format!("v{i}").into_bytes()).collect();
    let records = values.iter().map(|v| record(&ok, v)).collect();
    changes::testing::contract::numbers_rise_and_a_flush_makes_all_durable(&producer, records).await;

    // The broker refuses a record over the topic's max.message.bytes: a
    // delivery that fails, with records acknowledged after it.
    let small = topic(
        &cfg,
        "contract-small",
        1,
        vec![("max.message.bytes".into(), "2000".into())],
    )
    .await;
    let producer = Producer::tracked(&cfg, std::time::Duration::from_millis(5)).unwrap();
    let big = vec![b'x'; 10_000];
    changes::testing::contract::a_failed_record_holds_back_what_follows(
        &producer,
        [record(&small, b"a"), record(&small, &big), record(&small, b"c")],
        |_| {}, // the broker fails it
    )
    .await;
}

#[tokio::test]
async fn a_group_source_keeps_the_source_contract() {
    let cfg = config("contract-source");
    let topic = topic(&cfg, "contract-src", 2, Vec::new()).await;
    let producer = Producer::tracked(&cfg, std::time::Duration::from_millis(5)).unwrap();
    for i in 0..20u32 {
        let v = i.to_string();
        producer
            .send(Record {
                topic: &topic,
                key: &i.to_be_bytes(),
                value: Some(v.as_bytes()),
                headers: &[],
            })
            .unwrap();
    }
    producer.flush(std::time::Duration::from_secs(30)).unwrap();
    let group = format!("contract-{}", std::process::id());
    let source = GroupSource::open(&cfg, &group, &topic).unwrap();
    changes::testing::contract::a_reopened_source_reads_from_its_commit(source, 20, 7, async || {
        GroupSource::open(&cfg, &group, &topic).unwrap()
    })
    .await;
}
