//! The outermost layer of every route (and of the 404/405 fallbacks): one tower layer that
//! applies the request edge's concerns in order, each from the module named for it.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Instant,
};

use axum::{
    extract::{MatchedPath, Request},
    http::Method,
    response::{IntoResponse as _, Response},
};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::{access_log::AccessLine, drain, limits};
use crate::{
    draining::Draining,
    metrics::{Metrics, RouteMetrics},
};

/// Answers 414 for an over-long URI and 413 for a declared body over
/// [`limits::MAX_BODY_BYTES`] before any handler runs; once the drain has begun marks every
/// answer `Connection: close` so clients move to another instance; records every answer in
/// [`Metrics`] by route template; and logs it at DEBUG (`finished processing request`, target
/// `accountservice::guard`).
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
                // axum layers every route (and each method of it) separately, so one edge sees
                // one route template: its metrics can cache that route's series.
                metrics: self.metrics.clone().map(RouteMetrics::new),
            }),
        }
    }
}

/// What one route's edge shares between its requests: one `Arc` to clone per request.
struct RouteEdge {
    draining: Draining,
    metrics: Option<RouteMetrics>,
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
        let access = AccessLine::start(&request);
        let answer = match limits::refusal(&request) {
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
                access,
            }),
        }
    }
}

/// What the edge does with the answer.
struct Record {
    route_edge: Arc<RouteEdge>,
    started: Instant,
    method: Method,
    route: Option<MatchedPath>,
    access: Option<AccessLine>,
}

impl Record {
    fn finish(self, mut response: Response) -> Response {
        drain::close_if_draining(&self.route_edge.draining, &mut response);
        let elapsed = self.started.elapsed();
        if let Some(metrics) = &self.route_edge.metrics {
            metrics.record(
                &self.method,
                self.route.as_ref(),
                response.status(),
                elapsed.as_secs_f64(),
            );
        }
        if let Some(access) = self.access {
            access.finish(&self.method, response.status(), elapsed);
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

#[cfg(test)]
mod tests {
    use axum::{
        Router,
        body::Body,
        http::{StatusCode, header},
        routing::get,
    };
    use tower::ServiceExt as _;

    use super::*;
    use crate::guard::{MAX_BODY_BYTES, MAX_URI_BYTES};

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
}
