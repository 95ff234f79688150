//! Request guards: size limits hyper does not apply (URI length, body size), `Connection:
//! close` while draining, and load shedding.
//!
//! Each answers with a JSON [`ApiError`] and a precise status (414, 413, 503 with
//! `Retry-After`) instead of dropping the connection. The request-head size limit (431) and the
//! header read timeout live in the server loop (`crate::server`), where hyper applies them.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::Response,
};
use tokio::sync::Semaphore;

use crate::{error::ApiError, server::Draining};

/// Longest accepted request target (path and query) in bytes. Account ids are at most 64 bytes;
/// this leaves room for anything reasonable and answers 414 beyond.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Largest accepted request body. No route takes a body; a small one (an empty JSON object
/// sent by a tool with a PUT) is tolerated and ignored, anything larger is 413 without reading
/// it.
pub const MAX_BODY_BYTES: u64 = 1024;

/// The outermost guard of every request: answers 414 for an over-long URI and 413 for a declared
/// body over [`MAX_BODY_BYTES`] before any handler runs, and once the drain has begun marks every
/// answer `Connection: close` so clients move to another instance.
pub async fn edge(
    State(draining): State<Draining>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return Err(ApiError::UriTooLong(MAX_URI_BYTES));
    }
    let declared_body = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared_body.is_some_and(|bytes| bytes > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
    }
    let mut response = next.run(request).await;
    if draining.is_draining() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// Admits a request only if fewer than the semaphore's permits are in progress; otherwise
/// answers 503 with `Retry-After` at once. Apply it to the work routes only: health and metrics
/// must keep answering when the service is busy, or the orchestrator kills a busy instance.
pub async fn shed(
    State(in_progress): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Ok(_permit) = in_progress.try_acquire() else {
        return Err(ApiError::Overloaded);
    };
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::{Router, body::Body, http::StatusCode, middleware, routing::get};
    use tokio::sync::Notify;
    use tower::ServiceExt as _;

    use super::*;

    fn app_draining(draining: Draining) -> Router {
        Router::new()
            .route("/x", get(|| async { "ok" }))
            .layer(middleware::from_fn_with_state(draining, edge))
    }

    fn app() -> Router {
        app_draining(Draining::default())
    }

    async fn status(app: Router, request: axum::http::Request<Body>) -> StatusCode {
        app.oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn a_uri_over_the_limit_is_414_and_at_the_limit_passes() {
        let at_limit = format!("/x?{}", "a".repeat(MAX_URI_BYTES - 3));
        let request = axum::http::Request::get(at_limit)
            .body(Body::empty())
            .unwrap();
        assert_eq!(status(app(), request).await, StatusCode::OK);
        let over = format!("/x?{}", "a".repeat(MAX_URI_BYTES));
        let request = axum::http::Request::get(over).body(Body::empty()).unwrap();
        assert_eq!(status(app(), request).await, StatusCode::URI_TOO_LONG);
    }

    #[tokio::test]
    async fn a_declared_body_over_the_limit_is_413() {
        let request = axum::http::Request::get("/x")
            .header(header::CONTENT_LENGTH, MAX_BODY_BYTES + 1)
            .body(Body::empty())
            .unwrap();
        assert_eq!(status(app(), request).await, StatusCode::PAYLOAD_TOO_LARGE);
        let request = axum::http::Request::get("/x")
            .header(header::CONTENT_LENGTH, 2)
            .body(Body::from("{}"))
            .unwrap();
        assert_eq!(status(app(), request).await, StatusCode::OK);
    }

    #[tokio::test]
    async fn answers_close_their_connection_once_draining() {
        let draining = Draining::default();
        let request = || axum::http::Request::get("/x").body(Body::empty()).unwrap();
        let before = app_draining(draining.clone())
            .oneshot(request())
            .await
            .unwrap();
        assert!(before.headers().get(header::CONNECTION).is_none());
        draining.start();
        let after = app_draining(draining).oneshot(request()).await.unwrap();
        assert_eq!(after.headers()[header::CONNECTION], "close");
    }

    #[tokio::test]
    async fn past_the_limit_requests_are_shed_with_retry_after_and_admitted_again_later() {
        let release = Arc::new(Notify::new());
        let started = Arc::new(Notify::new());
        let (r, s) = (release.clone(), started.clone());
        let app = Router::new()
            .route(
                "/slow",
                get(move || async move {
                    s.notify_one();
                    r.notified().await;
                    "done"
                }),
            )
            .layer(middleware::from_fn_with_state(
                Arc::new(Semaphore::new(1)),
                shed,
            ));
        let request = || {
            axum::http::Request::get("/slow")
                .body(Body::empty())
                .unwrap()
        };
        let first = tokio::spawn(app.clone().oneshot(request()));
        started.notified().await;

        let shed = app.clone().oneshot(request()).await.unwrap();
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()[header::RETRY_AFTER], "1");

        release.notify_one();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        let again = tokio::spawn(app.oneshot(request()));
        started.notified().await;
        release.notify_one();
        let again = tokio::time::timeout(Duration::from_secs(5), again)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(again.status(), StatusCode::OK);
    }
}
