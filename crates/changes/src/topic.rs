//! Kafka topic names, checked once for every stage.

/// The longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME: usize = 249;

/// Checks `name` against Kafka's rules for topic names: 1 to 249
/// characters from `[a-zA-Z0-9._-]`, and not `.` or `..`. The error says
/// which rule it breaks.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a topic name may not be empty".into());
    }
    if name.len() > MAX_TOPIC_NAME {
        return Err(format!(
            "a topic name has at most {MAX_TOPIC_NAME} characters, this one {}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err("\".\" and \"..\" are not topic names".into());
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
    {
        Some(c) => Err(format!(
            "{c:?} may not be in a topic name (letters, digits, '.', '_' and '-' only)"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_rules_each_with_its_reason() {
        for ok in ["a", "contrail.public.flight_state", "a-b_c.9", &"x".repeat(249)] {
            assert_eq!(check_topic_name(ok), Ok(()), "{ok}");
        }
        assert!(check_topic_name("").unwrap_err().contains("empty"));
        assert!(check_topic_name(&"x".repeat(250)).unwrap_err().contains("249"));
        assert!(check_topic_name("..").unwrap_err().contains("not topic names"));
        assert!(check_topic_name("a b").unwrap_err().contains("' '"));
        assert!(check_topic_name("é").is_err());
    }
}
