//! The layers every request passes: the edge (size limits hyper does not apply, `Connection:
//! close` while draining, request metrics, a DEBUG access line) and load shedding on the work
//! routes.
//!
//! Each refusal is a JSON [`ApiError`] with a precise status (414, 413, 503 with `Retry-After`)
//! instead of a dropped connection. The request-head size limit (431) and the header read timeout
//! live in the server loop (`crate::server`), where hyper applies them.
//!
//! Both are plain tower layers with their own future types rather than
//! `axum::middleware::from_fn`: that boxes a future and clones the inner service on every
//! request, and with three such layers plus `tower_http::trace` the middleware cost about as much
//! CPU per account lookup as the handler and its database read together (see BENCHMARKS.md,
//! Notes).

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll, ready},
    time::Instant,
};

use axum::{
    extract::{MatchedPath, Request},
    http::{HeaderValue, Method, Uri, header},
    response::{IntoResponse as _, Response},
};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use crate::{
    error::ApiError,
    metrics::{FastSeries, Metrics},
    server::Draining,
};

/// Longest accepted request target (path and query) in bytes. Account ids are at most 64 bytes;
/// this leaves room for anything reasonable and answers 414 beyond.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Largest accepted request body. No route takes a body; a small one (an empty JSON object
/// sent by a tool with a PUT) is tolerated and ignored, anything larger is 413 without reading
/// it.
pub const MAX_BODY_BYTES: u64 = 1024;

/// The outermost layer of every route (and of the 404/405 fallbacks): answers 414 for an
/// over-long URI and 413 for a declared body over [`MAX_BODY_BYTES`] before any handler runs;
/// once the drain has begun marks every answer `Connection: close` so clients move to another
/// instance; records every answer in [`Metrics`] by route template; and logs it at DEBUG
/// (`finished processing request`, target `accountservice::guard`).
#[derive(Clone)]
pub struct EdgeLayer {
    draining: Draining,
    metrics: Option<Arc<Metrics>>,
}

impl EdgeLayer {
    /// The edge, recording into `metrics` if given.
    pub fn new(draining: Draining, metrics: Option<Arc<Metrics>>) -> Self {
        Self { draining, metrics }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            route: Arc::new(RouteEdge {
                draining: self.draining.clone(),
                metrics: self.metrics.clone(),
                fast: OnceLock::new(),
            }),
        }
    }
}

/// What one route's edge shares between its requests: one `Arc` to clone per request.
struct RouteEdge {
    draining: Draining,
    metrics: Option<Arc<Metrics>>,
    /// axum layers every route (and each method of it) separately, so one edge sees one route
    /// template: this caches its metric series.
    fast: OnceLock<FastSeries>,
}

/// The service [`EdgeLayer`] wraps a route in.
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    route: Arc<RouteEdge>,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let method = request.method().clone();
        let route = request.extensions().get::<MatchedPath>().cloned();
        // Kept only for the access line, which is rarely on: an `Arc` clone, never a copy.
        let uri = tracing::enabled!(tracing::Level::DEBUG).then(|| request.uri().clone());
        let answer = match refusal(&request) {
            Some(error) => Answer::Refused {
                response: Some(error.into_response()),
            },
            None => Answer::Route {
                future: self.inner.call(request),
            },
        };
        EdgeFuture {
            answer,
            record: Some(Record {
                route_edge: self.route.clone(),
                started,
                method,
                route,
                uri,
            }),
        }
    }
}

/// Why a request is refused before routing's handler runs, if it is.
fn refusal(request: &Request) -> Option<ApiError> {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return Some(ApiError::UriTooLong(MAX_URI_BYTES));
    }
    let declared_body = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    declared_body
        .is_some_and(|bytes| bytes > MAX_BODY_BYTES)
        .then_some(ApiError::PayloadTooLarge(MAX_BODY_BYTES))
}

/// What the edge does with the answer.
struct Record {
    route_edge: Arc<RouteEdge>,
    started: Instant,
    method: Method,
    route: Option<MatchedPath>,
    uri: Option<Uri>,
}

impl Record {
    fn finish(self, mut response: Response) -> Response {
        if self.route_edge.draining.is_draining() {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let elapsed = self.started.elapsed();
        if let Some(metrics) = &self.route_edge.metrics {
            metrics.record_fast(
                &self.route_edge.fast,
                &self.method,
                self.route.as_ref(),
                response.status(),
                elapsed.as_secs_f64(),
            );
        }
        if let Some(uri) = self.uri {
            tracing::debug!(
                method = %self.method,
                uri = %uri,
                status = response.status().as_u16(),
                latency_us = elapsed.as_micros(),
                "finished processing request"
            );
        }
        response
    }
}

pin_project! {
    /// The future of [`Edge`]: the route's answer, or the refusal, then the bookkeeping.
    pub struct EdgeFuture<F> {
        #[pin]
        answer: Answer<F>,
        record: Option<Record>,
    }
}

pin_project! {
    /// Where the answer of an [`Edge`] comes from.
    #[project = AnswerProjection]
    enum Answer<F> {
        Route { #[pin] future: F },
        Refused { response: Option<Response> },
    }
}

impl<F> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.answer.project() {
            AnswerProjection::Route { future } => match ready!(future.poll(cx)) {
                Ok(response) => response,
                Err(never) => match never {},
            },
            AnswerProjection::Refused { response } => {
                response.take().unwrap_or_else(polled_after_completion)
            }
        };
        Poll::Ready(Ok(match this.record.take() {
            Some(record) => record.finish(response),
            None => response,
        }))
    }
}

/// The answer for a future polled again after it completed (a caller's bug): a 500, rather
/// than a panic in the server.
fn polled_after_completion() -> Response {
    axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

/// Admits a request only if fewer than `limit` are in progress; otherwise answers 503 with
/// `Retry-After` at once. Apply it to the work routes only: health and metrics must keep
/// answering when the service is busy, or the orchestrator kills a busy instance.
#[derive(Clone)]
pub struct ShedLayer {
    in_progress: Arc<Semaphore>,
}

impl ShedLayer {
    /// At most `limit` (at least 1) requests in progress at once through every route this layer
    /// wraps, together.
    pub fn new(limit: usize) -> Self {
        Self {
            in_progress: Arc::new(Semaphore::new(limit.clamp(1, Semaphore::MAX_PERMITS))),
        }
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Shed<S> {
        Shed {
            inner,
            in_progress: self.in_progress.clone(),
        }
    }
}

/// The service [`ShedLayer`] wraps a route in.
#[derive(Clone)]
pub struct Shed<S> {
    inner: S,
    in_progress: Arc<Semaphore>,
}

impl<S> Service<Request> for Shed<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ShedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.in_progress.clone().try_acquire_owned() {
            Ok(permit) => ShedFuture {
                inner: Some(self.inner.call(request)),
                permit: Some(permit),
            },
            Err(_) => ShedFuture {
                inner: None,
                permit: None,
            },
        }
    }
}

pin_project! {
    /// The future of [`Shed`]: the route's answer while holding a permit, or the 503.
    pub struct ShedFuture<F> {
        #[pin]
        inner: Option<F>,
        permit: Option<OwnedSemaphorePermit>,
    }
}

impl<F> Future for ShedFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(inner) => {
                let answer = ready!(inner.poll(cx));
                // The request is done: free its place at once, not when the future is dropped.
                this.permit.take();
                Poll::Ready(answer)
            }
            None => Poll::Ready(Ok(ApiError::Overloaded.into_response())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::{Router, body::Body, http::StatusCode, routing::get};
    use tokio::sync::Notify;
    use tower::ServiceExt as _;

    use super::*;

    fn app_draining(draining: Draining) -> Router {
        Router::new()
            .route("/x", get(|| async { "ok" }))
            .layer(EdgeLayer::new(draining, None))
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
            .layer(ShedLayer::new(1));
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
