//! `scan_back` against the tests' own stack's Apache Kafka broker
//! (`scripts/test.sh` starts it): every record newest first per partition,
//! across windows, stopping where the visitor says or at the limit.

use std::collections::BTreeMap;
use std::time::Duration;

mod common;

use kafka::{scan_back, Producer, Record, TopicSpec};

fn number(headers: &kafka::Headers) -> u64 {
    let (_, v) = headers.iter().find(|(k, _)| k == "n").expect("header n");
    std::str::from_utf8(v).unwrap().parse().unwrap()
}

#[tokio::test]
async fn reads_each_partition_newest_first_until_told_to_stop() {
    let cfg = common::config("scan-back-test");
    let (topic, empty) = (
        format!("scanned{}", std::process::id()),
        format!("empty{}", std::process::id()),
    );
    kafka::ensure_topics(
        &cfg,
        &[
            TopicSpec {
                name: topic.clone(),
                partitions: 2,
                replication: 1,
                config: Vec::new(),
            },
            TopicSpec {
                name: empty.clone(),
                partitions: 1,
                replication: 1,
                config: Vec::new(),
            },
        ],
    )
    .await
    .unwrap();
    // 1,500 records: each partition gets more than the first window (256).
    let producer = Producer::new(&cfg, Duration::from_millis(5)).unwrap();
    for n in 0..1_500u64 {
        let (key, value) = (format!("k{}", n % 50), n.to_string());
        producer
            .send(Record {
                topic: &topic,
                key: key.as_bytes(),
                value: Some(value.as_bytes()),
                headers: &[("n", value.as_bytes())],
            })
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let scan = |limit: u64, stop_below: u64| {
        let mut seen: BTreeMap<i32, Vec<u64>> = BTreeMap::new();
        scan_back(&cfg, &topic, limit, |partition, key, headers| {
            assert!(key.is_some_and(|k| k.starts_with(b"k")));
            let n = number(headers);
            seen.entry(partition).or_default().push(n);
            n >= stop_below
        })
        .unwrap();
        seen
    };

    // Everything, newest first in each partition.
    let all = scan(u64::MAX, 0);
    assert_eq!(all.len(), 2);
    assert_eq!(all.values().map(Vec::len).sum::<usize>(), 1_500);
    for ns in all.values() {
        assert!(ns.len() > 256, "{}", ns.len());
        assert!(ns.windows(2).all(|w| w[0] > w[1]), "not newest first");
    }

    // The visitor stops each partition at its first record below 1,200.
    for (p, ns) in scan(u64::MAX, 1_200) {
        let (last, before) = ns.split_last().unwrap();
        assert!(
            *last < 1_200 && before.iter().all(|n| *n >= 1_200),
            "partition {p}: {ns:?}"
        );
        assert_eq!(before.len(), all[&p].iter().filter(|n| **n >= 1_200).count());
    }

    // The limit caps each partition.
    for ns in scan(5, 0).values() {
        assert_eq!(ns.len(), 5);
    }

    // An empty topic has nothing to visit.
    scan_back(&cfg, &empty, 10, |_, _, _| panic!("a record in an empty topic")).unwrap();
}
