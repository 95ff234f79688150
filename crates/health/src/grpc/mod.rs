//! The gRPC health checking protocol (`grpc.health.v1.Health`) served from the registry's cache.
//!
//! [`HealthService`] implements `Check`, `List` and `Watch`, including `List`, added to the
//! protocol in 2025 (tonic-health does not have it). It is what Kubernetes' `grpc:` probes,
//! `grpc-health-probe`, gRPC client-side health checking and Envoy call.
//!
//! # Service names
//!
//! | name | status of |
//! |---|---|
//! | `""` | [`Scope::Overall`](crate::Scope::Overall), as `/health` |
//! | `liveness` | [`Scope::Liveness`](crate::Scope::Liveness), as `/health/live` |
//! | `readiness` | [`Scope::Readiness`](crate::Scope::Readiness), as `/health/ready` |
//! | a component's name (`database`) | that component alone, checks and manual components alike |
//!
//! A status that answers HTTP 200 is `SERVING`, one that answers 503 (`DOWN`,
//! `OUT_OF_SERVICE`) `NOT_SERVING`, so a gRPC probe and an HTTP probe of the same instance
//! never disagree. The scope names win over a component of the same name. An unknown name is
//! `NOT_FOUND` for `Check` and `SERVICE_UNKNOWN` for `Watch`, whose call then stays open and
//! reports the name once a component of that name appears.
//!
//! # Watch
//!
//! A watcher sleeps until the registry publishes a change ([`Health::subscribe`]) or until a
//! result in the cache turns stale, whichever is first, and sends a message only when its
//! name's status differs from the last one it sent: there is no polling loop per watcher, and
//! an idle watcher does no work between changes. When the [`CancellationToken`] given to
//! [`HealthService::new`] is cancelled (the server is shutting down), every watcher sends
//! `NOT_SERVING` (unless that, or `SERVICE_UNKNOWN`, was its last message) and ends its call
//! with `UNAVAILABLE`, so a graceful server shutdown, which waits for open calls, is never held
//! up by a watcher.
//!
//! [`Health::subscribe`]: crate::Health::subscribe
//!
//! # Serving it
//!
//! The crate depends on tonic's codec layer only; the server brings tonic's transport (or
//! mounts the service in an axum router with tonic's `router` feature):
//!
//! ```ignore
//! let shutdown = CancellationToken::new();
//! tonic::transport::Server::builder()
//!     .add_service(HealthService::new(health, shutdown.clone()).into_server())
//!     .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
//!     .await?;
//! ```
//!
//! `examples/grpc_health_server.rs` is a complete server whose components a test can fail.
//!
//! # Layout
//!
//! `pb` (the protocol's messages, server and client, generated from
//! `proto/grpc/health/v1/health.proto` by `cargo xtask codegen` and committed), `service` (the
//! service and the name mapping).

#[allow(missing_docs, clippy::all, rust_2018_idioms)]
pub mod pb;
mod service;

pub use pb::health_check_response::ServingStatus;
pub use pb::health_client::HealthClient;
pub use pb::health_server::HealthServer;
pub use pb::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};
pub use service::{HealthService, LIST_LIMIT};
pub use tokio_util::sync::CancellationToken;
