//! The one function that builds the HTTP router; tests call it without a socket.

use axum::{Router, routing::get};
use tower_http::trace::TraceLayer;

use crate::{routes, state::AppState};

/// The complete router of the service over `state`.
pub fn router(state: AppState) -> Router {
    finish(api_routes(state))
}

/// The account routes, with their state applied.
pub fn api_routes(state: AppState) -> Router {
    Router::new()
        .route("/accounts/{account_id}", get(routes::accounts::get_account))
        .with_state(state)
}

/// Adds what applies to every route: JSON 404 and 405 answers and request tracing.
///
/// Call it last, after merging every other router (e.g. health endpoints): axum applies the 405
/// fallback only to routes that exist when it is set.
pub fn finish(routes: Router) -> Router {
    routes
        .fallback(routes::fallback::not_found)
        .method_not_allowed_fallback(routes::fallback::method_not_allowed)
        .layer(TraceLayer::new_for_http())
}
