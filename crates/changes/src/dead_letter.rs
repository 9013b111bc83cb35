//! The dead-letter contract: every stage's rejected records carry the
//! same headers, so one consumer reads any dead-letter topic.
//!
//! | header | value |
//! | --- | --- |
//! | `contrail.dlq.stage` | `producer`, `cdc` or `sink` |
//! | `contrail.dlq.rules` | the broken rules, comma-separated (`decode`, `size`, `warehouse` when no schema rule) |
//! | `contrail.dlq.reason` | a JSON list of human-readable reasons |
//! | `contrail.dlq.topic` | the topic the record was meant for (producer, CDC) or read from (sink) |
//! | `contrail.dlq.position` | where it came from, when known: the change's LSN (CDC), `topic/partition/offset` (sink) |
//!
//! Stage-specific headers come after them: the CDC stage adds
//! `contrail.dlq.lsn`, `contrail.dlq.commit_lsn` and
//! `contrail.dlq.topic_prefix` (telling its dead letters from other
//! stages' in a shared topic), the sink `contrail.dlq.source` (the same as
//! the position). The record's key and value are the original ones, except
//! where a stage says otherwise (a CDC event too large for Kafka, or with
//! no Avro form, is a JSON document instead).

/// The header names.
pub mod header {
    pub const STAGE: &str = "contrail.dlq.stage";
    pub const RULES: &str = "contrail.dlq.rules";
    pub const REASON: &str = "contrail.dlq.reason";
    pub const TOPIC: &str = "contrail.dlq.topic";
    pub const POSITION: &str = "contrail.dlq.position";
    /// CDC: the change's LSN.
    pub const LSN: &str = "contrail.dlq.lsn";
    /// CDC: the commit LSN of the change's transaction.
    pub const COMMIT_LSN: &str = "contrail.dlq.commit_lsn";
    /// CDC: the topic prefix (the source's logical name).
    pub const TOPIC_PREFIX: &str = "contrail.dlq.topic_prefix";
    /// Sink: `topic/partition/offset` of the record read.
    pub const SOURCE: &str = "contrail.dlq.source";
}

/// The stage that rejected a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Producer,
    Cdc,
    Sink,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Producer => "producer",
            Stage::Cdc => "cdc",
            Stage::Sink => "sink",
        }
    }
}

/// Why and where a record was rejected: its headers (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub stage: Stage,
    pub topic: String,
    pub rules: Vec<String>,
    pub reasons: Vec<String>,
    pub position: Option<String>,
    /// Stage-specific headers, in order.
    pub extra: Vec<(&'static str, String)>,
}

impl DeadLetter {
    pub fn new(stage: Stage, topic: &str, rules: Vec<String>, reasons: Vec<String>) -> DeadLetter {
        DeadLetter {
            stage,
            topic: topic.to_string(),
            rules,
            reasons,
            position: None,
            extra: Vec::new(),
        }
    }

    /// Where the record came from.
    pub fn at(self, position: impl Into<String>) -> DeadLetter {
        DeadLetter {
            position: Some(position.into()),
            ..self
        }
    }

    /// A stage-specific header.
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> DeadLetter {
        self.extra.push((name, value.into()));
        self
    }

    /// The headers, in the contract's order.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            (header::STAGE, self.stage.as_str().to_string()),
            (header::RULES, self.rules.join(",")),
            (header::REASON, serde_json::to_string(&self.reasons).unwrap_or_default()),
            (header::TOPIC, self.topic.clone()),
        ];
        if let Some(p) = &self.position {
            h.push((header::POSITION, p.clone()));
        }
        h.extend(self.extra.iter().cloned());
        h
    }
}

/// The value of header `name` among `headers` (as a consumer reads them),
/// if it is text.
pub fn find<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_follow_the_contract() {
        let d = DeadLetter::new(
            Stage::Cdc,
            "p.public.t",
            vec!["a.range".into(), "b.pattern".into()],
            vec!["a is 7, above 5".into(), "b \"x\" does not match".into()],
        )
        .at("0/16B3748")
        .with(header::LSN, "0/16B3748");
        let h = d.headers();
        let names: Vec<&str> = h.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                header::STAGE,
                header::RULES,
                header::REASON,
                header::TOPIC,
                header::POSITION,
                header::LSN
            ]
        );
        assert_eq!(h[0].1, "cdc");
        assert_eq!(h[1].1, "a.range,b.pattern");
        let reasons: Vec<String> = serde_json::from_str(&h[2].1).unwrap();
        assert_eq!(reasons, d.reasons);
        let read: Vec<(String, Vec<u8>)> = h.iter().map(|(k, v)| (k.to_string(), v.clone().into_bytes())).collect();
        assert_eq!(find(&read, header::TOPIC), Some("p.public.t"));
        assert_eq!(find(&read, "missing"), None);
        let no_position = DeadLetter::new(Stage::Producer, "t", vec![], vec![]).headers();
        assert!(no_position.iter().all(|(k, _)| *k != header::POSITION));
    }
}
