//! The functions that build the HTTP router; tests call them without a socket.

use std::sync::Arc;

use axum::{
    Router,
    routing::{get, get_service},
};
use health::{Health, http::HttpOptions};

use crate::{
    draining::Draining,
    fleet::{self, Fleet},
    guard,
    metrics::{self, Metrics},
    openapi,
    routes::{self, testability::Testability},
    state::AppState,
};

/// Everything besides the account routes: the live handles the endpoints answer from, and
/// their [`EndpointSettings`]. Cloning shares the handles (the same registry, metrics,
/// switches, drain flag and fleet view), so the routers built from clones stay one instance.
#[derive(Clone)]
pub struct Endpoints {
    /// The health registry behind every health route (`/health`, `/livez`, `/readyz`,
    /// `/health/history`, ...).
    pub health: Health,
    /// The metrics behind `/metrics`, also fed by every request.
    pub metrics: Arc<Metrics>,
    /// The testability switches; `None` leaves their routes unmounted (404).
    pub testability: Option<Testability>,
    /// Set when shutdown begins: every answer then closes its connection.
    pub draining: Draining,
    /// The fleet view behind `/health/fleet` and `/status`; `None` (no `--peers`) leaves
    /// them unmounted.
    pub fleet: Option<Arc<Fleet>>,
    /// How the endpoints are built: plain data, fixed for the life of the instance.
    pub settings: EndpointSettings,
}

/// The configuration of the [`Endpoints`], read from the settings at start-up.
#[derive(Clone, Debug)]
pub struct EndpointSettings {
    /// How much the health endpoints show, and the service's id and version in them.
    pub health: HttpOptions,
    /// Account and testability requests in progress at once before new ones are shed (503).
    pub max_concurrent_requests: usize,
}

/// The complete service on one port: account routes, health endpoints, metrics and (if switched
/// on) the testability and fleet routes, with JSON 404/405 answers, request limits, load
/// shedding on the work routes (accounts and testability; never on health, metrics or the fleet
/// view, which answers from its cache and asks the peers at most one round at a time), request
/// metrics and tracing.
pub fn app(state: AppState, endpoints: Endpoints) -> Router {
    let Endpoints {
        health,
        metrics,
        testability,
        draining,
        fleet,
        settings,
    } = endpoints;
    // The document is a constant of this instance: parse it once.
    let document = Arc::new(openapi::document(testability.is_some(), fleet.is_some()));
    let work = testability_routes(testability).merge(api_routes(state));
    let routes = work
        .layer(guard::ShedLayer::new(settings.max_concurrent_requests))
        .merge(fleet_routes(fleet))
        .merge(health::http::router(health, settings.health))
        .route("/metrics", get(metrics::scrape).with_state(metrics.clone()))
        .route(
            "/openapi.json",
            get(openapi::openapi_json).with_state(document),
        );
    finish(routes).layer(guard::EdgeLayer::new(draining, Some(metrics)))
}

/// Testability requests at once on the management port before new ones are shed (503): operator
/// traffic is a few requests, and a flood of switches must not hold every connection the
/// management listener allows. Health, metrics and the fleet view are exempt: their answers are
/// cached, and the fleet view bounds its own cost (one round of asking the peers at a time, at
/// most one per health interval, each under the health timeout), so its viewers wait for that
/// round instead of being turned away.
pub const MANAGEMENT_MAX_CONCURRENT_REQUESTS: usize = 16;

/// The two routers of a service with a management port.
pub struct Split {
    /// What clients need: the account routes, `/openapi.json` (describing only those) and
    /// `GET /health`, the original's contract on its port. Everything else is 404.
    pub public: Router,
    /// Every health route, `/metrics`, the testability and fleet routes when they are on, and
    /// gRPC health.
    pub management: Router,
}

/// The routes of [`app`], divided between a public and a management listener, with gRPC health
/// (`grpc_health`, from [`crate::grpc::routes`]) on the management one only. Both record HTTP
/// requests into the same metrics; only the public one closes connections while draining (the
/// management listener keeps answering probes until the public one has drained). gRPC health
/// is mounted outside the HTTP edge: its answers are gRPC statuses, never JSON, and a `Watch`
/// call is a stream, not a request to time.
pub fn split(state: AppState, endpoints: Endpoints, grpc_health: Router) -> Split {
    let Endpoints {
        health,
        metrics,
        testability,
        draining,
        fleet,
        settings,
    } = endpoints;
    let mut document = openapi::document(false, false);
    openapi::keep_public_paths(&mut document);
    // One health router for both listeners, so its answers are rendered once per change.
    let health_routes: Router = health::http::router(health, settings.health);
    let public = api_routes(state)
        .layer(guard::ShedLayer::new(settings.max_concurrent_requests))
        // Only GET (and HEAD) of `/health`; the other methods get the JSON 405 of `finish`.
        .route("/health", get_service(health_routes.clone()))
        .route(
            "/openapi.json",
            get(openapi::openapi_json).with_state(Arc::new(document)),
        );
    let public = finish(public).layer(guard::EdgeLayer::new(draining, Some(metrics.clone())));
    let management = testability_routes(testability)
        .layer(guard::ShedLayer::new(MANAGEMENT_MAX_CONCURRENT_REQUESTS))
        .merge(fleet_routes(fleet))
        .merge(health_routes)
        .route("/metrics", get(metrics::scrape).with_state(metrics.clone()));
    let management = finish(management)
        .layer(guard::EdgeLayer::new(Draining::default(), Some(metrics)))
        // Merged after the edge's layer, which therefore does not wrap it.
        .merge(grpc_health);
    Split { public, management }
}

/// The testability routes when they are on, else none.
fn testability_routes(testability: Option<Testability>) -> Router {
    testability.map_or_else(Router::new, routes::testability::routes)
}

/// The fleet routes when there are peers, else none.
fn fleet_routes(fleet: Option<Arc<Fleet>>) -> Router {
    fleet.map_or_else(Router::new, fleet::routes)
}

/// The account routes alone, finished: what handler unit tests drive over a mocked store.
pub fn router(state: AppState) -> Router {
    finish(api_routes(state))
}

/// The account routes, with their state applied.
pub fn api_routes(state: AppState) -> Router {
    Router::new()
        .route("/accounts/{account_id}", get(routes::accounts::get_account))
        .with_state(state)
}

/// Adds what applies to every route: JSON 404 and 405 answers.
///
/// Call it last, after merging every other router (e.g. health endpoints): axum applies the 405
/// fallback only to routes that exist when it is set. [`app`] then wraps everything in
/// [`guard::EdgeLayer`], which logs each answer at DEBUG only: a 503 from `/health` is an
/// answer, not a failure of the server, and Docker asks every few seconds, so an ERROR line per
/// probe would bury the one line that explains the fault (the store logs its own failures).
pub fn finish(routes: Router) -> Router {
    routes
        .fallback(routes::fallback::not_found)
        .method_not_allowed_fallback(routes::fallback::method_not_allowed)
}
