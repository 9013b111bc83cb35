//! The registry's Prometheus metrics. Every name is here; labels are low
//! cardinality (route templates, never subjects or ids).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub const HTTP_REQUESTS: &str = "contrail_registry_http_requests";
pub const HTTP_REQUEST_SECONDS: &str = "contrail_registry_http_request_seconds";
pub const REGISTRATIONS: &str = "contrail_registry_registrations";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// new_version, existing, incompatible, invalid, error
    pub outcome: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RouteLabels, Histogram>,
    pub registrations: Family<OutcomeLabels, Counter>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0])
        });
        let registrations = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            HTTP_REQUESTS,
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            HTTP_REQUEST_SECONDS,
            "HTTP request latency by route",
            request_seconds.clone(),
        );
        registry.register(REGISTRATIONS, "Schema registrations by outcome", registrations.clone());
        Metrics {
            registry,
            requests,
            request_seconds,
            registrations,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
