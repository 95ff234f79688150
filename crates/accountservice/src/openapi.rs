//! The OpenAPI 3.1 description of every route, served at `GET /openapi.json`.
//!
//! The document is generated from the code by utoipa: the handlers' own `utoipa::path`
//! annotations and the response types they serialize. The health endpoints' handlers live in
//! the `health` crate, so their paths are described below, doc-only, with the body schemas the
//! `health` crate derives from its own body types (its `openapi` feature, on only for this
//! crate's tests). Generation runs in a unit test
//! (`the_committed_document_is_what_the_code_generates`), which fails whenever `openapi.json`
//! differs from what the code generates, so the file cannot drift on a green build;
//! `UPDATE_OPENAPI=1 cargo test -p accountservice openapi` rewrites it. The binary serves the
//! committed file and carries no utoipa code (its size counts against the image's size budget).
//!
//! The committed document includes the testability and fleet operations; an instance without
//! `--testability` or without `--peers` serves it without them (and without the schemas only
//! they use). `cargo xtask api-fuzz` fuzzes the live service against it with schemathesis.

use std::sync::Arc;

use axum::{Json, extract::State};
use serde_json::Value;

/// The document as generated from the code, testability operations included.
const DOCUMENT: &str = include_str!("../openapi.json");

/// Paths that exist only with `--testability`.
const TESTABILITY_PREFIX: &str = "/testability/";

/// Paths that exist only with `--peers`.
const FLEET_PATHS: [&str; 2] = ["/health/fleet", "/status"];

/// The document for an instance with or without the testability and the fleet routes.
pub fn document(testability: bool, fleet: bool) -> Value {
    let mut document: Value = match serde_json::from_str(DOCUMENT) {
        Ok(document) => document,
        Err(error) => {
            // The unit test parses the same file, so this cannot happen in a tested build.
            tracing::error!(%error, "the embedded OpenAPI document does not parse");
            return Value::Null;
        }
    };
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        paths.retain(|path, _| {
            (testability || !path.starts_with(TESTABILITY_PREFIX))
                && (fleet || !FLEET_PATHS.contains(&path.as_str()))
        });
    }
    drop_unused_schemas(&mut document);
    document
}

/// Removes the component schemas that nothing left in the document refers to, so that leaving
/// out a path also leaves out the schemas only it used.
fn drop_unused_schemas(document: &mut Value) {
    let Some(Value::Object(mut schemas)) =
        document.pointer_mut("/components/schemas").map(Value::take)
    else {
        return;
    };
    // The schemas the paths use, then those these use, until no new one turns up.
    let mut used = std::collections::BTreeSet::new();
    let mut pending = Vec::new();
    collect_references(&document["paths"], &mut pending);
    while let Some(name) = pending.pop() {
        if used.insert(name.clone())
            && let Some(schema) = schemas.get(&name)
        {
            collect_references(schema, &mut pending);
        }
    }
    schemas.retain(|name, _| used.contains(name));
    document["components"]["schemas"] = Value::Object(schemas);
}

/// Pushes the name of every schema `value` refers to (`"$ref": "#/components/schemas/NAME"`).
fn collect_references(value: &Value, names: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            let reference = fields.get("$ref").and_then(Value::as_str);
            if let Some(name) = reference.and_then(|r| r.strip_prefix("#/components/schemas/")) {
                names.push(name.to_owned());
            }
            fields.values().for_each(|v| collect_references(v, names));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, names)),
        _ => {}
    }
}

/// Paths the public port keeps when a management port serves the rest.
const PUBLIC_PATHS: [&str; 3] = ["/accounts/{accountId}", "/openapi.json", "/health"];

/// Leaves in `document` only the operations the public port serves when the operator endpoints
/// are on a management port, so the document never lists a path that answers 404 there.
pub fn keep_public_paths(document: &mut Value) {
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        paths.retain(|path, _| PUBLIC_PATHS.contains(&path.as_str()));
    }
}

/// `GET /openapi.json`: the document, rendered once at start.
#[cfg_attr(test, utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "This document", content_type = "application/json"))
))]
pub async fn openapi_json(State(document): State<Arc<Value>>) -> Json<Value> {
    Json(document.as_ref().clone())
}

#[cfg(test)]
#[allow(dead_code)] // doc-only items: their generated descriptions are what is used
mod spec {
    //! The generator: everything utoipa needs to describe the service.

    use health::http::openapi::{
        HealthBody, HealthComponent, HealthError, HealthHistory, HealthJsonBody, StartupBody,
    };
    use utoipa::OpenApi;

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
            started,
            startupz,
            component,
            history,
            metrics,
            crate::openapi::openapi_json,
        ),
        components(schemas(crate::routes::accounts::AccountBody<'_>, crate::error::ErrorBody))
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

    /// The fleet operations, added when `--peers` is on.
    #[derive(OpenApi)]
    #[openapi(paths(crate::fleet::routes::fleet_json, crate::fleet::routes::status_page))]
    pub struct FleetDoc;

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
                params(("exclude" = Option<Vec<String>>, Query,
                    description = "Components to leave out of this answer (repeatable); the \
                                   answer lists them under `excluded`, and names that match no \
                                   component of the scope under `notExcluded`.")),
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
            fn $name() {}
        };
    }

    health_path!(
        health,
        "/health",
        "Every component: the database check, the testability switch, the shutdown state and the \
         outage verdict. 503 whenever the database cannot serve."
    );
    health_path!(
        liveness,
        "/health/live",
        "Liveness, the restart signal: fails only on faults a restart can cure (the embedded \
         database, the testability switch, a local fault past its grace), never on a database \
         every replica shares."
    );
    health_path!(livez, "/livez", "Liveness (alias of /health/live).");
    health_path!(
        readiness,
        "/health/ready",
        "Readiness: not draining, not forced unhealthy, and the database works, or its outage \
         is shared by every replica (fail open)."
    );
    health_path!(readyz, "/readyz", "Readiness (alias of /health/ready).");

    /// Declares a doc-only function for a start-up path.
    macro_rules! startup_path {
        ($name:ident, $path:literal, $what:literal) => {
            #[doc = $what]
            #[utoipa::path(
                get,
                path = $path,
                tag = "health",
                description = $what,
                responses(
                    (status = 200, description = "Started (for good)", body = StartupBody),
                    (status = 503, description = "Still starting, with how far it got",
                        body = StartupBody),
                )
            )]
            fn $name() {}
        };
    }

    startup_path!(
        started,
        "/health/started",
        "Start-up: 503 until the instance serves, then 200 for good. For a startupProbe."
    );
    startup_path!(
        startupz,
        "/startupz",
        "Start-up (alias of /health/started)."
    );

    /// One component: its status and reason.
    #[utoipa::path(
        get,
        path = "/health/{component}",
        tag = "health",
        params(("component" = String, Path, description = "A component's name, e.g. `database`")),
        responses(
            (status = 200, description = "The component is UP, DEGRADED or UNKNOWN",
                body = HealthComponent, headers(("health-check-age" = String,
                    description = "For a check that has run: seconds (to the millisecond) since \
                        the check behind this answer began"))),
            (status = 503, description = "The component is DOWN or OUT_OF_SERVICE",
                body = HealthComponent, headers(("health-check-age" = String,
                    description = "For a check that has run: seconds (to the millisecond) since \
                        the check behind this answer began"))),
            (status = 404, description = "No such component (or `--health-details never`)",
                body = HealthError),
        )
    )]
    fn component() {}

    /// The replica's identity and its last status changes, newest first. Always 200.
    #[utoipa::path(
        get,
        path = "/health/history",
        tag = "health",
        responses((status = 200, description = "The replica and its last 256 transitions",
            body = HealthHistory))
    )]
    fn history() {}

    /// Prometheus metrics.
    #[utoipa::path(
        get,
        path = "/metrics",
        tag = "meta",
        responses((status = 200,
            description = "Metrics in the Prometheus text format (0.0.4), or in OpenMetrics when \
                the request's Accept prefers application/openmetrics-text",
            content(
                (String = "text/plain; version=0.0.4; charset=utf-8"),
                (String = "application/openmetrics-text; version=1.0.0; charset=utf-8")
            )))
    )]
    fn metrics() {}
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    use super::*;

    /// What the code describes: every route, testability included.
    fn generated() -> Value {
        let mut document = spec::ApiDoc::openapi();
        document.merge(spec::TestabilityDoc::openapi());
        document.merge(spec::FleetDoc::openapi());
        serde_json::to_value(document).unwrap()
    }

    #[test]
    fn the_committed_document_is_what_the_code_generates() {
        let generated = generated();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
            std::fs::write(path, text).unwrap();
            // The binary embeds the file at compile time: the next build serves the new one.
            return;
        }
        let committed: Value = serde_json::from_str(DOCUMENT).unwrap();
        assert!(
            committed == generated,
            "openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p accountservice \
             openapi` and commit the file"
        );
    }

    #[test]
    fn the_testability_and_fleet_operations_are_served_only_when_mounted() {
        let without = document(false, false);
        let with = document(true, true);
        for path in ["/testability/healthy/{state}", "/health/fleet", "/status"] {
            assert!(without["paths"].get(path).is_none(), "{path} documented");
            assert!(with["paths"].get(path).is_some(), "{path} undocumented");
        }
        // Nor the schemas only they use; those that others use too stay.
        for schema in ["HealthySwitched", "FleetView", "FleetReplica"] {
            assert!(
                without["components"]["schemas"].get(schema).is_none(),
                "{schema} kept"
            );
            assert!(
                with["components"]["schemas"].get(schema).is_some(),
                "{schema} missing"
            );
        }
        for schema in ["Error", "HealthStatus", "HealthBody"] {
            assert!(
                without["components"]["schemas"].get(schema).is_some(),
                "{schema} missing"
            );
        }
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

    #[test]
    fn the_fleet_view_schema_names_every_status_it_counts() {
        let committed: Value = serde_json::from_str(DOCUMENT).unwrap();
        let counts = &committed["components"]["schemas"]["FleetView"]["properties"]["counts"];
        let described = counts["description"].as_str().unwrap();
        for status in crate::fleet::VIEW_STATUSES {
            assert!(
                described.contains(&format!("`{status}`")),
                "{status}: {described}"
            );
        }
    }

    #[test]
    fn the_committed_document_uses_every_schema_it_lists() {
        let committed: Value = serde_json::from_str(DOCUMENT).unwrap();
        assert_eq!(document(true, true), committed);
    }
}
