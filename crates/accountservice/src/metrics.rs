//! `GET /metrics`: Prometheus metrics for HTTP requests, health checks and the process.
//!
//! - `http_requests_total{method,route,status}` and
//!   `http_request_duration_seconds{method,route}`: every request, labelled by the route
//!   template (`/accounts/{account_id}`), never the raw path, by the method when HTTP defines it
//!   (`other` for a made-up one), and by the status the service answered with; requests no route
//!   takes count as `route="unmatched"`. Every label takes its values from a closed set, so
//!   nothing a client sends (method, path, host, headers) can add a series.
//! - the health series (`health_series`), read from the health registry at scrape time;
//! - the standard `process_*` series (`process`), read from `/proc` at scrape time;
//! - `accountservice_build_info{version,arch,profile} 1`.
//!
//! The answer is in the Prometheus text format (0.0.4), or in OpenMetrics when the scraper's
//! `Accept` prefers it ([`format`]). Only the request series are updated on a request's path.

mod format;
mod health_series;
mod process;

pub use format::Format;

use std::{
    fmt::Write as _,
    sync::{Arc, OnceLock},
};

use axum::{
    extract::{MatchedPath, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use health::Health;
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder, prometheus_text, text},
    metrics::{
        counter::Counter,
        family::{Family, MetricConstructor},
        histogram::Histogram,
        info::Info,
    },
    registry::Registry,
};

use self::{health_series::HealthSeries, process::ProcessCollector};

/// Latency buckets in seconds: 50 µs to 2.5 s, dense where this service's answers fall.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    2.5,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: MethodLabel,
    route: RouteLabel,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    method: MethodLabel,
    route: RouteLabel,
}

/// A request method as a label value: one of the methods HTTP defines, or `other` for any
/// method a client makes up. The set is closed, so clients cannot add series by inventing
/// methods; and a label is a static string, copied, never allocated per request.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct MethodLabel(&'static str);

impl MethodLabel {
    /// The label of every method HTTP does not define.
    const OTHER: &'static str = "other";

    /// The method's label: its name when HTTP defines it (RFC 9110's and PATCH), else `other`.
    fn of(method: &Method) -> Self {
        // Method names are case-sensitive: `get` is not `GET`.
        Self(match method.as_str() {
            "GET" => "GET",
            "HEAD" => "HEAD",
            "POST" => "POST",
            "PUT" => "PUT",
            "DELETE" => "DELETE",
            "OPTIONS" => "OPTIONS",
            "PATCH" => "PATCH",
            "CONNECT" => "CONNECT",
            "TRACE" => "TRACE",
            _ => Self::OTHER,
        })
    }
}

impl EncodeLabelValue for MethodLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(self.0)
    }
}

/// The route template a request matched, or `unmatched`. Cloning shares the template (axum
/// keeps it in an `Arc<str>`).
#[derive(Clone, Debug)]
struct RouteLabel(Option<MatchedPath>);

impl RouteLabel {
    fn as_str(&self) -> &str {
        Self::name(self.0.as_ref())
    }

    fn name(route: Option<&MatchedPath>) -> &str {
        route.map_or("unmatched", MatchedPath::as_str)
    }
}

/// The request counter and latency histogram of one method, route and status, shared with
/// their metric families; [`RouteMetrics`] keeps one per route for its `GET`s with status 200.
#[derive(Debug)]
struct Series {
    route: RouteLabel,
    requests: Counter,
    latency: Histogram,
}

impl Series {
    fn count(&self, seconds: f64) {
        self.requests.inc();
        self.latency.observe(seconds);
    }
}

impl PartialEq for RouteLabel {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RouteLabel {}

impl std::hash::Hash for RouteLabel {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

/// Builds latency histograms with [`LATENCY_BUCKETS`].
#[derive(Clone)]
struct LatencyHistogram;

impl MetricConstructor<Histogram> for LatencyHistogram {
    fn new_metric(&self) -> Histogram {
        Histogram::new(LATENCY_BUCKETS)
    }
}

/// The service's metrics and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, LatencyHistogram>,
}

impl Metrics {
    /// Registers every metric; health series are read from `health` at each scrape. `version`
    /// is the build info's (`Settings::version`: with the release label when there is one).
    pub fn new(health: Health, version: &str) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        let latency = Family::new_with_constructor(LatencyHistogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response head, by method and route template",
            latency.clone(),
        );
        registry.register_collector(Box::new(HealthSeries::new(health)));
        registry.register_collector(Box::new(ProcessCollector::new()));
        registry.register(
            "accountservice_build",
            "Always 1: the version of the running accountservice, its CPU architecture and \
             build profile",
            Info::new([
                ("version", version.to_owned()),
                ("arch", std::env::consts::ARCH.to_owned()),
                (
                    "profile",
                    if cfg!(debug_assertions) {
                        "debug"
                    } else {
                        "release"
                    }
                    .to_owned(),
                ),
            ]),
        );
        Self {
            registry,
            requests,
            latency,
        }
    }

    /// Adds series read at each scrape from something the metrics do not know (the PostgreSQL
    /// pool's, `store::postgres::pool_metrics`).
    pub fn register_collector(
        &mut self,
        collector: Box<dyn prometheus_client::collector::Collector>,
    ) {
        self.registry.register_collector(collector);
    }

    /// Counts one answered request, by the route template it matched (`None`: `unmatched`).
    pub fn record(
        &self,
        method: &Method,
        route: Option<&MatchedPath>,
        status: StatusCode,
        seconds: f64,
    ) {
        self.series(method, route, status).count(seconds);
    }

    /// The counter and histogram of one method, route and status, shared with their families.
    fn series(&self, method: &Method, route: Option<&MatchedPath>, status: StatusCode) -> Series {
        let method = MethodLabel::of(method);
        let route = RouteLabel(route.cloned());
        Series {
            requests: self
                .requests
                .get_or_create(&RequestLabels {
                    method,
                    route: route.clone(),
                    status: status.as_u16(),
                })
                .clone(),
            latency: self
                .latency
                .get_or_create(&LatencyLabels {
                    method,
                    route: route.clone(),
                })
                .clone(),
            route,
        }
    }

    /// Every metric in `format`; the health and process series are read now.
    pub fn render(&self, format: Format) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8192);
        match format {
            Format::Text => prometheus_text::encode(&mut out, &self.registry)?,
            Format::OpenMetrics => text::encode(&mut out, &self.registry)?,
        }
        Ok(out)
    }
}

/// The request metrics of one route, as its edge records them: the series of the route's
/// successful `GET`s (nearly every request in practice) is cached after the first, so those
/// skip the label hashing and map lookups of the metric families. An answer from another route
/// or with another method or status takes the ordinary path.
pub struct RouteMetrics {
    metrics: Arc<Metrics>,
    ok_gets: OnceLock<Series>,
}

impl RouteMetrics {
    /// Records into `metrics`; the cache fills on the first successful `GET`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            ok_gets: OnceLock::new(),
        }
    }

    /// Counts one answered request, like [`Metrics::record`].
    pub fn record(
        &self,
        method: &Method,
        route: Option<&MatchedPath>,
        status: StatusCode,
        seconds: f64,
    ) {
        if method == Method::GET && status == StatusCode::OK {
            let series = self
                .ok_gets
                .get_or_init(|| self.metrics.series(&Method::GET, route, StatusCode::OK));
            if series.route.as_str() == RouteLabel::name(route) {
                return series.count(seconds);
            }
        }
        self.metrics.record(method, route, status, seconds);
    }
}

/// `GET /metrics`: the Prometheus text format, or OpenMetrics when `Accept` prefers it.
pub async fn scrape(State(metrics): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT));
    match metrics.render(format) {
        Ok(text) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(format.content_type()),
                ),
                // The body depends on Accept: a cache must not hand one format to the other.
                (header::VARY, HeaderValue::from_static("accept")),
            ],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, http::Request, routing::get};
    use tower::ServiceExt as _;

    use health::Status;

    use super::*;
    use crate::{guard::EdgeLayer, lifecycle::Draining};

    #[test]
    fn a_method_http_defines_is_its_own_label_and_any_other_is_other() {
        for method in [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
            Method::PATCH,
            Method::CONNECT,
            Method::TRACE,
        ] {
            assert_eq!(MethodLabel::of(&method).0, method.as_str());
        }
        for made_up in ["get", "BREW", "PROPFIND", "X".repeat(200).as_str()] {
            let method = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(MethodLabel::of(&method).0, "other", "{made_up}");
        }
    }

    #[tokio::test]
    async fn requests_health_process_and_build_appear_in_both_formats() {
        let health = Health::builder()
            .check(health::check_fn("dependency", || async {
                health::CheckOutcome::up()
            }))
            .build()
            .unwrap();
        health.refresh_now().await;
        health.set_manual(
            "testability",
            Status::Down,
            "forced unhealthy",
            health::Probes::ALL,
        );
        let metrics = Arc::new(Metrics::new(health.clone(), "0.1.0+v2"));
        let app = Router::new()
            .route("/accounts/{account_id}", get(|| async { "{}" }))
            .layer(EdgeLayer::new(Draining::default(), Some(metrics.clone())));
        for path in ["/accounts/1", "/accounts/2", "/nowhere"] {
            let request = Request::get(path).body(Body::empty()).unwrap();
            app.clone().oneshot(request).await.unwrap();
        }
        let text = metrics.render(Format::Text).unwrap();
        assert!(
            text.contains(
                r#"http_requests_total{method="GET",route="/accounts/{account_id}",status="200"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("http_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(
            text.contains(r#"health_check_status{component="testability",status="DOWN"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"health_status{scope="readiness",status="DOWN"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("# TYPE http_requests_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains(r#"health_check_timeout_seconds{component="dependency"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"accountservice_build_info{version="0.1.0+v2","#),
            "{text}"
        );
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
        assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
        assert!(!text.contains("# EOF"), "{text}");

        let open_metrics = metrics.render(Format::OpenMetrics).unwrap();
        assert!(open_metrics.contains("# TYPE http_requests counter\n"));
        assert!(open_metrics.contains("# TYPE accountservice_build info\n"));
        assert!(open_metrics.ends_with("# EOF\n"), "{open_metrics}");

        health.clear_manual("testability");
        let text = metrics.render(Format::Text).unwrap();
        assert!(
            !text.contains(r#"health_check_status{component="testability""#),
            "{text}"
        );
        // Counters never go away while the process lives.
        assert!(
            text.contains(r#"health_transitions_total{component="testability",status="DOWN"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"health_status{scope="overall",status="UP"} 1"#),
            "{text}"
        );
    }
}
