//! The OpenAPI 3 description of every route, served at `GET /openapi.json`.
//!
//! Built with utoipa from the handlers' own annotations and the response types they serialize,
//! so it cannot drift from the code; the health endpoints, which live in the `health` crate,
//! are described by the doc-only functions below, and a test checks that every documented path
//! is routed. The testability operations are in the document only when their routes are
//! mounted. `schemathesis` fuzzes the live service against this document in CI.

use axum::{Json, extract::State};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// The document of the routes every instance serves.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "accountservice",
        description = "Account lookup over an embedded database, with health checks an \
                       orchestrator acts on.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        crate::routes::accounts::get_account,
        health,
        liveness,
        livez,
        readiness,
        readyz,
        metrics,
        openapi_json,
    ),
    components(schemas(
        crate::routes::accounts::AccountBody<'_>,
        crate::error::ErrorBody,
        HealthBody,
        HealthComponent,
        HealthJsonBody,
        HealthStatus,
    ))
)]
pub struct ApiDoc;

/// The testability operations, added when `--testability` is on.
#[derive(OpenApi)]
#[openapi(
    paths(
        crate::routes::testability::set_healthy,
        crate::routes::testability::set_database,
    ),
    components(schemas(
        crate::routes::testability::HealthySwitched,
        crate::routes::testability::DatabaseSwitched,
    ))
)]
pub struct TestabilityDoc;

/// The document for an instance with or without the testability routes.
pub fn document(testability: bool) -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    if testability {
        document.merge(TestabilityDoc::openapi());
    }
    document
}

/// `GET /openapi.json`: the document, rendered once at start.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
pub async fn openapi_json(
    State(document): State<std::sync::Arc<serde_json::Value>>,
) -> Json<serde_json::Value> {
    Json(document.as_ref().clone())
}

/// A health status, worst first: `DOWN > OUT_OF_SERVICE > DEGRADED > UNKNOWN > UP`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // describes the health crate's answers; never built here
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthStatus {
    /// Works.
    Up,
    /// A non-critical component is down; still 200.
    Degraded,
    /// Not known yet.
    Unknown,
    /// Deliberately out of service (draining at shutdown, not checked yet); 503.
    OutOfService,
    /// Broken; 503.
    Down,
}

/// One component of a health answer.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // describes the health crate's answers; never built here
pub struct HealthComponent {
    /// The component's status.
    pub status: HealthStatus,
    /// Why it is not UP, in a few words.
    pub reason: Option<String>,
}

/// A health answer (`application/json`). With `--health-details always` components carry more
/// fields (details, observed values, timings).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // describes the health crate's answers; never built here
pub struct HealthBody {
    /// The aggregate status: the worst of the components'.
    pub status: HealthStatus,
    /// When not UP: the failing components and why, e.g. `database: read failed`.
    pub reason: Option<String>,
    /// Each component by name (absent with `--health-details never`).
    pub components: Option<std::collections::BTreeMap<String, HealthComponent>>,
}

/// A health answer in the IETF draft format (`application/health+json`).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // describes the health crate's answers; never built here
pub struct HealthJsonBody {
    /// `pass`, `warn` or `fail`.
    #[schema(pattern = "^(pass|warn|fail)$")]
    pub status: String,
    /// The service version.
    pub version: Option<String>,
    /// The service id.
    #[serde(rename = "serviceId")]
    pub service_id: Option<String>,
    /// Human-readable description of the service.
    pub description: Option<String>,
    /// Why it is not passing.
    pub output: Option<String>,
    /// Checks keyed `component:measurement`.
    #[schema(value_type = Option<Object>)]
    pub checks: Option<serde_json::Value>,
}

/// Declares a doc-only function for a health path: the handler itself is generic and lives in
/// the `health` crate.
macro_rules! health_path {
    ($name:ident, $path:literal, $what:literal) => {
        #[doc = $what]
        #[utoipa::path(
            get,
            path = $path,
            tag = "health",
            description = $what,
            responses(
                (status = 200, description = "Healthy (UP, DEGRADED or UNKNOWN)",
                    content(
                        (HealthBody = "application/json"),
                        (HealthJsonBody = "application/health+json"),
                    )),
                (status = 503, description = "Unhealthy (DOWN or OUT_OF_SERVICE), with a reason",
                    content(
                        (HealthBody = "application/json"),
                        (HealthJsonBody = "application/health+json"),
                    )),
            )
        )]
        #[allow(dead_code)] // only its generated path description is used
        fn $name() {}
    };
}

health_path!(
    health,
    "/health",
    "Every component: the database check, the testability switch and the shutdown state."
);
health_path!(
    liveness,
    "/health/live",
    "Liveness: the process answers. Checks no dependency."
);
health_path!(livez, "/livez", "Liveness (alias of /health/live).");
health_path!(
    readiness,
    "/health/ready",
    "Readiness: the database works, not draining, not forced unhealthy."
);
health_path!(readyz, "/readyz", "Readiness (alias of /health/ready).");

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    responses((status = 200, description = "Metrics in the OpenMetrics text format",
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String))
)]
#[allow(dead_code)] // only its generated path description is used
fn metrics() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_testability_operations_are_documented_only_when_mounted() {
        let without = serde_json::to_value(document(false)).unwrap();
        let with = serde_json::to_value(document(true)).unwrap();
        assert!(
            without["paths"]
                .get("/testability/healthy/{state}")
                .is_none()
        );
        assert!(with["paths"].get("/testability/healthy/{state}").is_some());
        for path in [
            "/accounts/{accountId}",
            "/health",
            "/health/live",
            "/health/ready",
            "/livez",
            "/readyz",
            "/metrics",
            "/openapi.json",
        ] {
            assert!(without["paths"].get(path).is_some(), "{path} undocumented");
        }
    }
}
