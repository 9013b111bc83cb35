//! The tests' own stack's Apache Kafka broker (`scripts/test.sh` starts it).

use kafka::KafkaConfig;

/// A client of the tests' broker, named `client`.
pub(crate) fn config(client: &str) -> KafkaConfig {
    let stack = stack::StackConfig::for_tests(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")).unwrap();
    KafkaConfig {
        bootstrap_servers: stack.env_value("KAFKA_BOOTSTRAP_SERVERS").unwrap(),
        client_id: client.into(),
        ..KafkaConfig::default()
    }
}
