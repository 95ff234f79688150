//! The fleet routes, `GET /health/fleet` and `GET /status`, as a router that can be mounted on
//! any listener (the service port, or a separate management port).

use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderValue, header},
    response::Response,
    routing::get,
};

use super::view::Fleet;

/// The status page: one self-contained document (inline style and script, no external
/// resource), which polls `health/fleet` relative to itself.
const STATUS_PAGE: &str = include_str!("status.html");

/// What the page may load: nothing but itself and the fleet view from the same origin, so it
/// works (and can only work) without internet access.
const STATUS_PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     script-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `GET /health/fleet` (JSON, `Cache-Control: no-store`) and `GET /status` (HTML), both also
/// answering HEAD. Generic over the state type so it merges into any `Router<S>`.
pub fn routes<S>(fleet: Arc<Fleet>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/health/fleet", get(fleet_json))
        .route("/status", get(status_page))
        .with_state(fleet)
}

/// Every replica's health, as this replica sees it.
///
/// The peers are asked for their `/health/history` at most once per health interval, each under
/// the health timeout, however many look; a peer that does not answer shows as `UNREACHABLE`.
#[cfg_attr(test, utoipa::path(
    get,
    path = "/health/fleet",
    tag = "fleet",
    responses(
        (status = 200, description = "The fleet view, whatever the replicas' health",
            body = super::view::FleetView<'static>),
    )
))]
pub(crate) async fn fleet_json(State(fleet): State<Arc<Fleet>>) -> Response {
    let mut response = Response::new(Body::from(fleet.view().await));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The status page: the fleet view for people, in a browser.
#[cfg_attr(test, utoipa::path(
    get,
    path = "/status",
    tag = "fleet",
    responses(
        (status = 200, description = "One self-contained HTML document that polls \
            `health/fleet` relative to itself", content_type = "text/html; charset=utf-8",
            body = String),
    )
))]
pub(crate) async fn status_page() -> Response {
    let mut response = Response::new(Body::from(STATUS_PAGE));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(STATUS_PAGE_CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
