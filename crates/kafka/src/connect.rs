//! Reaching the cluster before a stage starts work, so a wrong password, an
//! untrusted certificate or a plaintext client at a TLS listener ends in an
//! error that says so, not in a request that times out.
//!
//! librdkafka reports connection problems through the client's error
//! callback and keeps retrying; [`Watch`] records them by error code.
//! [`check_connection`] asks for the cluster's metadata until it answers,
//! and stops early on a security failure (`_AUTHENTICATION`, `_SSL`, or the
//! broker's SASL_AUTHENTICATION_FAILED): those are fatal, because retrying
//! with the same credentials and trust store cannot succeed. Anything else
//! that outlasts the wait is transient, with librdkafka's last complaint
//! as the reason (for a plaintext client at a TLS listener, it suggests
//! checking `security.protocol`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer as _, ProducerContext};

use crate::{KafkaConfig, KafkaIoError};

/// What librdkafka complained of, kept for the error that ends the wait.
#[derive(Default)]
pub(crate) struct Watch {
    security: Mutex<Option<String>>,
    last: Mutex<Option<String>>,
}

impl Watch {
    fn error(&self, error: KafkaError, reason: &str) {
        let security = matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL | RDKafkaErrorCode::SaslAuthenticationFailed)
        );
        if security {
            self.security
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| reason.to_string());
        }
        // "All brokers are down" follows every other failure: keep the one
        // that says why.
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::AllBrokersDown) {
            *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_string());
        }
        tracing::warn!(error = %error, reason, "Kafka client error");
    }
}

impl Watch {
    /// librdkafka logs each failed connection attempt under facility
    /// `FAIL` (some, such as a peer closing during the first request, reach
    /// no error callback): keep the latest as the reason.
    fn log(&self, fac: &str, message: &str) {
        if fac == "FAIL" {
            *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(message.to_string());
        }
        tracing::debug!(fac, message, "librdkafka");
    }

    fn security(&self) -> Option<String> {
        self.security.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn last(&self) -> Option<String> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Waits up to `within` for the cluster to answer a metadata request.
pub async fn check_connection(cfg: &KafkaConfig, within: Duration) -> Result<(), KafkaIoError> {
    let watch = std::sync::Arc::new(Watch::default());
    let producer: BaseProducer<WatchRef> = cfg
        .client_config(&[])
        .create_with_context(WatchRef(watch.clone()))
        .map_err(KafkaIoError::Config)?;
    let client = producer.client();
    let started = Instant::now();
    loop {
        // A short blocking request at start-up, then a pause that lets the
        // runtime's other tasks run.
        match client.fetch_metadata(None, Duration::from_millis(500)) {
            Ok(_) => return Ok(()),
            Err(e) => {
                // Error callbacks are served by polling the client.
                producer.poll(Duration::ZERO);
                if let Some(reason) = watch.security() {
                    return Err(KafkaIoError::Security {
                        servers: cfg.bootstrap_servers.clone(),
                        reason,
                    });
                }
                if started.elapsed() >= within {
                    return Err(KafkaIoError::Unreachable {
                        servers: cfg.bootstrap_servers.clone(),
                        waited: within,
                        reason: format!("{}{}", watch.last().unwrap_or_else(|| e.to_string()), hint(cfg)),
                    });
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// [`Watch`] shared with the client that reports into it.
struct WatchRef(std::sync::Arc<Watch>);

impl ClientContext for WatchRef {
    fn error(&self, error: KafkaError, reason: &str) {
        self.0.error(error, reason);
    }

    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.0.log(fac, message);
    }
}

/// What to check when a plaintext client's connections keep failing.
fn hint(cfg: &KafkaConfig) -> &'static str {
    let protocol = cfg.properties.get("security.protocol").unwrap_or("plaintext");
    if protocol.eq_ignore_ascii_case("plaintext") || protocol.eq_ignore_ascii_case("sasl_plaintext") {
        " (the client speaks plaintext: if the listener expects TLS, set security.protocol to SSL or SASL_SSL)"
    } else {
        ""
    }
}

impl ProducerContext for WatchRef {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: ()) {}
}
