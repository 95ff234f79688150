//! gRPC health (`grpc.health.v1.Health`) on the management port: the `health` crate's service
//! over the same registry as the HTTP endpoints, behind the bounds a listener facing unknown
//! clients needs.
//!
//! Names, statuses, `Check`, `List` and `Watch` are the health crate's ([`health::grpc`]): `""`
//! is `/health`, `liveness` and `readiness` the scopes, any other name a component (`database`,
//! and `testability` or `lifecycle` while they are set). What this module adds:
//!
//! - a request message of at most [`MAX_REQUEST_BYTES`] (it carries a service name);
//! - the request message within the time given to [`routes`] (the header read timeout): a call
//!   whose message has not arrived by then ends with `DEADLINE_EXCEEDED`, so a client cannot
//!   hold a stream, and with it its connection, by never sending it;
//! - at most [`MAX_WATCHES`] `Watch` calls at once; more end at once with `RESOURCE_EXHAUSTED`.
//!   A `Watch` call lasts as long as its client likes, and without a cap such calls could take
//!   every connection the management listener allows ([`crate::management::MAX_CONNECTIONS`]).
//!
//! `Watch` calls end (`NOT_SERVING`, then `UNAVAILABLE`) when the token given to [`routes`] is
//! cancelled, which the management listener does when it stops, after the public port has
//! drained; while the service drains they already say `NOT_SERVING` for `""` and `readiness`,
//! since the registry does. Before the registry exists, [`starting`] answers every call
//! `UNAVAILABLE` with the start-up's progress.
//!
//! The routes answer gRPC, not JSON: [`crate::router::split`] mounts them outside the HTTP edge.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    response::Response,
    routing::any,
};
use health::{
    Health, Startup,
    grpc::{CancellationToken, HealthServer, HealthService},
};
use tokio::sync::Semaphore;
use tower::{Service, ServiceExt as _};

use crate::server::Guarded;

/// Every method of the health service; what [`routes`] and [`starting`] answer.
pub const PATH: &str = "/grpc.health.v1.Health/{*method}";

/// The method whose calls [`MAX_WATCHES`] counts.
const WATCH: &str = "/grpc.health.v1.Health/Watch";

/// Largest request message accepted: a service name and its framing.
pub const MAX_REQUEST_BYTES: usize = 1024;

/// `Watch` calls open at once; more are refused with `RESOURCE_EXHAUSTED`.
pub const MAX_WATCHES: usize = 16;

/// The health service over `health` at [`PATH`]. `watches_end` ends every `Watch` call once
/// cancelled; a call's request message must arrive within `request_timeout`.
pub fn routes(health: Health, watches_end: CancellationToken, request_timeout: Duration) -> Router {
    let service = Bounded {
        inner: HealthService::new(health, watches_end)
            .into_server()
            .max_decoding_message_size(MAX_REQUEST_BYTES),
        watches: Arc::new(Semaphore::new(MAX_WATCHES)),
        request_timeout,
    };
    Router::new().route_service(PATH, service)
}

/// Every call at [`PATH`] answered `UNAVAILABLE` with the start-up's progress ("starting:
/// seeding, 40% (…)"), for the management port before the registry exists.
pub fn starting(startup: Startup) -> Router {
    Router::new()
        .route(PATH, any(starting_call))
        .with_state(startup)
}

async fn starting_call(State(startup): State<Startup>) -> Response {
    let (_, progress) = startup.status();
    let message = match progress {
        Some(progress) => format!("starting: {progress}"),
        None => "starting".to_owned(),
    };
    status_response(tonic::Status::unavailable(message))
}

/// A gRPC status as a complete answer (trailers-only: the status in the head, no body).
fn status_response(status: tonic::Status) -> Response {
    status.into_http::<Body>()
}

/// The health crate's server with this module's bounds.
#[derive(Clone)]
struct Bounded {
    inner: HealthServer<HealthService>,
    watches: Arc<Semaphore>,
    request_timeout: Duration,
}

impl Service<Request> for Bounded {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Taken before the call, held by the answer's body: a Watch call counts until its
        // stream ends.
        let permit = if request.uri().path() == WATCH {
            match self.watches.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    let status = tonic::Status::resource_exhausted(format!(
                        "{MAX_WATCHES} Watch calls are open, the most this server allows"
                    ));
                    return Box::pin(std::future::ready(Ok(status_response(status))));
                }
            }
        } else {
            None
        };
        let call = self.inner.clone().oneshot(request);
        let timeout = self.request_timeout;
        Box::pin(async move {
            let response = match tokio::time::timeout(timeout, call).await {
                Ok(Ok(response)) => response,
                Ok(Err(infallible)) => match infallible {},
                Err(_) => {
                    let status = tonic::Status::deadline_exceeded(format!(
                        "no complete request within {timeout:?}"
                    ));
                    return Ok(status_response(status));
                }
            };
            Ok(response.map(|body| Body::new(Guarded::new(body, permit))))
        })
    }
}

#[cfg(test)]
mod tests {
    // Test code: an unwrap that fails is a failed test.
    #![allow(clippy::unwrap_used)]

    use axum::{
        body::Bytes,
        http::{HeaderMap, StatusCode},
    };
    use hyper::body::{Body as HttpBody, Frame};

    use super::*;

    /// A request body that never sends anything.
    struct Silent;

    impl HttpBody for Silent {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Pending
        }
    }

    fn call(path: &str, body: Body) -> Request {
        axum::http::Request::post(path)
            .header("content-type", "application/grpc")
            .body(body)
            .unwrap()
    }

    /// The status code as sent, and the message as tonic decodes it (the protocol
    /// percent-encodes it).
    fn grpc_status(headers: &HeaderMap) -> (&str, String) {
        let code = headers["grpc-status"].to_str().unwrap();
        let status = tonic::Status::from_header_map(headers).unwrap();
        (code, status.message().to_owned())
    }

    #[tokio::test]
    async fn before_the_registry_exists_every_call_is_unavailable_with_the_progress() {
        let startup = Startup::new();
        startup.progress("seeding");
        for method in ["Check", "Watch", "List", "Nothing"] {
            let path = format!("/grpc.health.v1.Health/{method}");
            let response = starting(startup.clone())
                .oneshot(call(&path, Body::empty()))
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{method}");
            // 14 is UNAVAILABLE.
            assert_eq!(
                grpc_status(response.headers()),
                ("14", "starting: seeding".to_owned()),
                "{method}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_whose_request_never_arrives_ends_with_deadline_exceeded() {
        let health = Health::builder().build().unwrap();
        let routes = routes(health, CancellationToken::new(), Duration::from_secs(10));
        let response = routes
            .oneshot(call("/grpc.health.v1.Health/Check", Body::new(Silent)))
            .await
            .unwrap();
        // 4 is DEADLINE_EXCEEDED.
        assert_eq!(
            grpc_status(response.headers()),
            ("4", "no complete request within 10s".to_owned())
        );
    }
}
