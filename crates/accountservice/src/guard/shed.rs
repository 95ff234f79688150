//! Load shedding on the work routes: past a number of requests in progress, answer 503 with
//! `Retry-After` at once rather than queue.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use axum::{
    extract::Request,
    response::{IntoResponse as _, Response},
};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use crate::error::ApiError;

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

    use axum::{Router, body::Body, http::StatusCode, http::header, routing::get};
    use tokio::sync::Notify;
    use tower::ServiceExt as _;

    use super::*;

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
