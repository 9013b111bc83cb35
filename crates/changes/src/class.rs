//! Error classes decided by the codes services send, never by their text.

/// What to do about an error, decided where it arises (by SQLSTATE, Kafka
/// error code, HTTP status, Snowflake or registry error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// This record is bad: it goes to the dead-letter path, the rest goes on.
    Data,
    /// The service may recover: retry with backoff.
    Transient,
    /// Retrying unchanged cannot help: stop, with a message that says what
    /// to do.
    Fatal,
}

impl Class {
    /// Transient if retrying may help, else fatal: for a stage's error,
    /// which is never data (bad records are dead-lettered where found).
    pub fn transient_or_fatal(transient: bool) -> Class {
        if transient {
            Class::Transient
        } else {
            Class::Fatal
        }
    }
}

/// An error that knows its [`Class`]: what [`crate::supervise`] asks.
pub trait Classified {
    fn class(&self) -> Class;

    fn is_transient(&self) -> bool {
        self.class() == Class::Transient
    }
}

/// Whether a PostgreSQL error with this SQLSTATE may succeed if retried
/// (after reconnecting): connection exceptions (class 08), the server
/// shutting down or restarting (57P01 admin shutdown, 57P02 crash
/// shutdown, 57P03 cannot connect now), too many connections (53300), and
/// a transaction that lost a race (40001 serialization failure, 40P01
/// deadlock). Anything else is about the statement or its data.
pub fn sqlstate_is_transient(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_and_lost_connections_are_transient_data_errors_are_not() {
        for code in ["08006", "08001", "57P01", "57P03", "53300", "40001", "40P01"] {
            assert!(sqlstate_is_transient(code), "{code}");
        }
        for code in ["23505", "22P02", "42P01", "42501", "57014", ""] {
            assert!(!sqlstate_is_transient(code), "{code}");
        }
    }
}
