//! Topics: created when missing, and their settings read and checked
//! before a stage writes to them.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use crate::{KafkaConfig, KafkaIoError};

/// How long a stage waits at start for the cluster to answer before it
/// reports it unreachable (and its supervisor retries).
const CONNECT_WAIT: Duration = Duration::from_secs(30);

/// A topic to create when missing.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    /// Topic-level settings given at creation (`min.insync.replicas`, …).
    pub config: Vec<(String, String)>,
}

/// Creates the topics that do not exist yet; existing ones are left alone.
/// It first checks that the cluster answers, so a security failure is
/// reported as one ([`crate::check_connection`]).
pub async fn ensure_topics(cfg: &KafkaConfig, topics: &[TopicSpec]) -> Result<(), KafkaIoError> {
    crate::check_connection(cfg, CONNECT_WAIT).await?;
    let admin: AdminClient<DefaultClientContext> = cfg.client_config(&[]).create().map_err(KafkaIoError::Config)?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            t.config.iter().fold(
                NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(t.replication)),
                |topic, (k, v)| topic.set(k, v),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin
        .create_topics(new.iter(), &opts)
        .await
        .map_err(KafkaIoError::Admin)?
    {
        match result {
            Ok(topic) => tracing::info!(topic, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaIoError::CreateTopic {
                    topic,
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// What a stage needs to know of a topic's settings before it writes to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSettings {
    pub name: String,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election: bool,
    /// `max.message.bytes`: the largest record batch the topic accepts.
    pub max_message_bytes: usize,
}

/// Kafka's default `max.message.bytes`, for a topic that does not report it.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

/// Reads the settings of `topics` with DescribeConfigs.
pub async fn describe_topics(cfg: &KafkaConfig, topics: &[&str]) -> Result<Vec<TopicSettings>, KafkaIoError> {
    use rdkafka::admin::ResourceSpecifier;
    let admin: AdminClient<DefaultClientContext> = cfg.client_config(&[]).create().map_err(KafkaIoError::Config)?;
    let specs: Vec<ResourceSpecifier<'_>> = topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let described = admin
        .describe_configs(specs.iter(), &opts)
        .await
        .map_err(KafkaIoError::Admin)?;
    topics
        .iter()
        .zip(described)
        .map(|(topic, result)| {
            let resource = result.map_err(|code| KafkaIoError::CreateTopic {
                topic: topic.to_string(),
                reason: format!("describing its settings failed: {code}"),
            })?;
            let value = |name: &str| resource.get(name).and_then(|e| e.value.as_deref());
            Ok(TopicSettings {
                name: topic.to_string(),
                unclean_leader_election: value("unclean.leader.election.enable") == Some("true"),
                max_message_bytes: value("max.message.bytes")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
            })
        })
        .collect()
}

/// Refuses topics whose settings would lose acknowledged records: with
/// `unclean.leader.election.enable=true` a replica that missed writes can
/// become leader after a failure, and the records only the old leader had
/// are gone, though the producer was told they were written.
pub fn check_durability(topics: &[TopicSettings]) -> Result<(), KafkaIoError> {
    match topics.iter().find(|t| t.unclean_leader_election) {
        Some(t) => Err(KafkaIoError::Unsafe {
            topic: t.name.clone(),
            reason: "unclean.leader.election.enable=true lets a replica that missed writes become leader, \
                     losing records Kafka had acknowledged; set it to false on the topic \
                     (kafka-configs --alter --entity-type topics --entity-name TOPIC \
                     --add-config unclean.leader.election.enable=false)"
                .into(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(name: &str, unclean: bool) -> TopicSettings {
        TopicSettings {
            name: name.into(),
            unclean_leader_election: unclean,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    #[test]
    fn unclean_leader_election_is_refused_by_topic_name() {
        assert!(check_durability(&[settings("a", false)]).is_ok());
        let err = check_durability(&[settings("a", false), settings("b", true)]).unwrap_err();
        assert!(err.is_fatal());
        assert!(err.to_string().contains("topic b"), "{err}");
    }
}
