//! `GET /metrics`: Prometheus metrics (OpenMetrics text) for HTTP requests and health checks.
//!
//! - `http_requests_total{method,route,status}` and
//!   `http_request_duration_seconds{method,route}`: every request, labelled by the route
//!   template (`/accounts/{account_id}`), never the raw path, so label cardinality stays bounded
//!   whatever clients send; requests no route takes count as `route="unmatched"`.
//! - `health_check_status{component,status}`: one series per component and status, 1 for the
//!   component's current status and 0 for the others (the usual "state set" encoding).
//! - `health_check_duration_seconds{component}`: how long the component's last check took.
//! - `health_status{scope,status}`: the aggregate of `/health`, liveness and readiness.
//!
//! The health series are read from the health registry's cache at scrape time: scraping runs no
//! check.

use std::{
    fmt::Write as _,
    sync::{Arc, Mutex, OnceLock, PoisonError},
};

use axum::{
    extract::{MatchedPath, State},
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use health::{Health, Scope, Status};
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder, text::encode},
    metrics::{
        counter::Counter,
        family::{Family, MetricConstructor},
        gauge::Gauge,
        histogram::Histogram,
    },
    registry::Registry,
};

/// The `Content-Type` of the OpenMetrics text format, which Prometheus negotiates.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets in seconds: 50 µs to 2.5 s, dense where this service's answers fall.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    2.5,
];

/// Every status a component or scope can have, for the state-set encoding.
const STATUSES: [Status; 5] = [
    Status::Up,
    Status::Unknown,
    Status::Degraded,
    Status::OutOfService,
    Status::Down,
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

/// A request method as a label value. Cloning a standard method copies a tag, where a `String`
/// label would allocate on every request.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct MethodLabel(Method);

impl EncodeLabelValue for MethodLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        encoder.write_str(self.0.as_str())
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
/// their metric families; [`Metrics::record_fast`] keeps one per route for its `GET`s with
/// status 200.
#[derive(Debug)]
pub struct FastSeries {
    route: RouteLabel,
    requests: Counter,
    latency: Histogram,
}

impl FastSeries {
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentStatusLabels {
    component: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabels {
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabels {
    scope: &'static str,
    status: &'static str,
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
    health: Health,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, LatencyHistogram>,
    check_status: Family<ComponentStatusLabels, Gauge>,
    check_duration: Family<ComponentLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    scope_status: Family<ScopeLabels, Gauge>,
    scrape: Mutex<()>,
}

impl Metrics {
    /// Registers every metric; health series are read from `health` at each scrape.
    pub fn new(health: Health) -> Self {
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
        let check_status = Family::<ComponentStatusLabels, Gauge>::default();
        registry.register(
            "health_check_status",
            "1 for each health component's current status, 0 for its other statuses",
            check_status.clone(),
        );
        let check_duration = Family::default();
        registry.register(
            "health_check_duration_seconds",
            "How long each health component's last check took",
            check_duration.clone(),
        );
        let scope_status = Family::<ScopeLabels, Gauge>::default();
        registry.register(
            "health_status",
            "1 for the current aggregate status of each scope (overall, liveness, readiness)",
            scope_status.clone(),
        );
        Self {
            registry,
            health,
            requests,
            latency,
            check_status,
            check_duration,
            scope_status,
            scrape: Mutex::new(()),
        }
    }

    /// Like [`Metrics::record`], with `fast` caching the series of one route's successful `GET`s:
    /// after the first, those (nearly every request in practice) skip the label hashing and map
    /// lookups of the metric families. `fast` belongs to one route; an answer from another
    /// route takes the ordinary path.
    pub fn record_fast(
        &self,
        fast: &OnceLock<FastSeries>,
        method: &Method,
        route: Option<&MatchedPath>,
        status: StatusCode,
        seconds: f64,
    ) {
        if method == Method::GET && status == StatusCode::OK {
            let series = fast.get_or_init(|| self.series(&Method::GET, route, StatusCode::OK));
            if series.route.as_str() == RouteLabel::name(route) {
                return series.count(seconds);
            }
        }
        self.record(method, route, status, seconds);
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
    fn series(
        &self,
        method: &Method,
        route: Option<&MatchedPath>,
        status: StatusCode,
    ) -> FastSeries {
        let method = MethodLabel(method.clone());
        let route = RouteLabel(route.cloned());
        FastSeries {
            requests: self
                .requests
                .get_or_create(&RequestLabels {
                    method: method.clone(),
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

    /// The metrics in OpenMetrics text format, health series refreshed from the cache first.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        // Concurrent scrapes would otherwise see each other's half-rebuilt health series.
        let _scrape = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        self.update_health();
        let mut text = String::with_capacity(4096);
        encode(&mut text, &self.registry)?;
        Ok(text)
    }

    fn update_health(&self) {
        let overall = self.health.report(Scope::Overall);
        // Start from empty so a component that went away (a cleared manual switch) drops out
        // instead of keeping its last value.
        self.check_status.clear();
        self.check_duration.clear();
        for (name, component) in &overall.components {
            for status in STATUSES {
                self.check_status
                    .get_or_create(&ComponentStatusLabels {
                        component: name.clone(),
                        status: status.as_str(),
                    })
                    .set(i64::from(component.status == status));
            }
            if let Some(duration) = component.duration {
                self.check_duration
                    .get_or_create(&ComponentLabels {
                        component: name.clone(),
                    })
                    .set(duration.as_secs_f64());
            }
        }
        for (scope, report) in [
            ("overall", overall.status),
            ("liveness", self.health.report(Scope::Liveness).status),
            ("readiness", self.health.report(Scope::Readiness).status),
        ] {
            for status in STATUSES {
                self.scope_status
                    .get_or_create(&ScopeLabels {
                        scope,
                        status: status.as_str(),
                    })
                    .set(i64::from(report == status));
            }
        }
    }
}

/// `GET /metrics`.
pub async fn scrape(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.render() {
        Ok(text) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS))],
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

    use super::*;
    use crate::{guard::EdgeLayer, server::Draining};

    #[tokio::test]
    async fn requests_and_health_appear_in_the_text_format() {
        let health = Health::builder().build().unwrap();
        health.set_manual(
            "testability",
            Status::Down,
            "forced unhealthy",
            health::Probes::ALL,
        );
        let metrics = Arc::new(Metrics::new(health.clone()));
        let app = Router::new()
            .route("/accounts/{account_id}", get(|| async { "{}" }))
            .layer(EdgeLayer::new(Draining::default(), Some(metrics.clone())));
        for path in ["/accounts/1", "/accounts/2", "/nowhere"] {
            let request = Request::get(path).body(Body::empty()).unwrap();
            app.clone().oneshot(request).await.unwrap();
        }
        let text = metrics.render().unwrap();
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
        assert!(text.ends_with("# EOF\n"));

        health.clear_manual("testability");
        let text = metrics.render().unwrap();
        assert!(!text.contains("testability"), "{text}");
        assert!(
            text.contains(r#"health_status{scope="overall",status="UP"} 1"#),
            "{text}"
        );
    }
}
