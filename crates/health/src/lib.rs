//! Health checks for services: checks, aggregation, caching and HTTP handlers.
//!
//! A service registers [`HealthCheck`]s (a database read, a disk probe) in a [`Health`]
//! registry. A background task runs every check **concurrently**, each under **its own
//! timeout**, once per **interval**, and caches the results. Probes — HTTP requests from Docker,
//! Kubernetes or a load balancer — are answered from that cache without waiting, so any number
//! of probes per second costs each dependency at most one check per interval, and one slow
//! dependency can never stall an answer.
//!
//! # Concepts
//!
//! - **[`Status`]**: `UP`, `UNKNOWN`, `DEGRADED`, `OUT_OF_SERVICE`, `DOWN`, as in Spring Boot
//!   Actuator plus `DEGRADED`. Aggregation is *worst wins* in the order
//!   `DOWN > OUT_OF_SERVICE > DEGRADED > UNKNOWN > UP` (the reasons are on [`Status`]).
//!   `DOWN` and `OUT_OF_SERVICE` answer HTTP 503, everything else 200.
//! - **Critical or not** ([`HealthCheck::critical`]): a non-critical component that is `DOWN`
//!   shows as `DOWN` itself but only makes the aggregate `DEGRADED` (still 200).
//! - **Probes and scopes** ([`Probes`], [`Scope`]): each component takes part in liveness,
//!   readiness, both or neither; `/health` ([`Scope::Overall`]) shows every component.
//!   Checks default to readiness only: a liveness probe that fails with a dependency restarts
//!   healthy processes and fixes nothing.
//! - **Curable by restart or not** ([`Curability`], [`HealthCheck::curability`]): whether
//!   restarting the instance can cure a failure. An embedded database file can be (a
//!   replacement gets a fresh one); a database server every replica shares cannot. A failure a
//!   restart cannot cure fails `/health` but weighs at most `DEGRADED` in liveness and
//!   readiness: the restart signals fail only on faults a restart can cure, and readiness fails
//!   open rather than take every replica out of rotation at once.
//! - **Never looks healthy by accident**: a check that has not run yet is `OUT_OF_SERVICE`
//!   ("not checked yet"); a timeout, a panic or a result older than the staleness bound is
//!   `DOWN` ("timed out after 1s", "check panicked", "stale: last result 5s old"). A refresher
//!   that died or hangs therefore turns the service 503 within the staleness bound.
//! - **Manual components** ([`Health::set_manual`], [`Health::clear_manual`]): states set from
//!   outside, such as "draining" at shutdown or an operator's "forced unhealthy" switch. They
//!   take effect on the very next probe and never turn stale; with a detail
//!   ([`Health::set_manual_with_detail`]) saying what the state was concluded from.
//! - **Weak handles** ([`Health::downgrade`], [`WeakHealth`]): for a background task that
//!   watches the registry without keeping its checks (and what they hold) alive.
//! - **Reasons and details** ([`CheckOutcome`]): a short, public `reason` ("read failed") and
//!   an internal `detail` (error text, paths), plus an optional observed value and unit. The
//!   HTTP layer shows the detail only at [`http::Details::Always`].
//! - **Transitions** ([`Transition`], [`Health::transitions`], [`Health::subscribe`]): every
//!   change of a component's or a scope's status is recorded (the newest
//!   [`TRANSITIONS_KEPT`] in a ring, counts by new status since start), logged once (INFO for a
//!   recovery, WARN otherwise) and signalled to subscribers, so push consumers wake on change
//!   instead of polling.
//! - **Start-up** ([`Startup`]): `OUT_OF_SERVICE` with the progress the service reports
//!   ("seeding, 40%") until it says start-up is complete, `UP` from then on, never back; for a
//!   Kubernetes `startupProbe`.
//! - **HTTP** (feature `axum`, on by default): [`http::router`] mounts `/health`,
//!   `/health/live`, `/health/ready`, `/livez` and `/readyz` (GET and HEAD), answering
//!   `application/json` or, on request, `application/health+json`; also `/health/started` and
//!   `/startupz`, `/health/{component}`, and `/health/history`: who this replica is
//!   ([`http::Identity`]: instance, address, version, start time, slot), its overall status
//!   since when, and its last status changes.
//! - **OpenAPI** (feature `openapi`, off by default): `http::openapi` names the bodies the HTTP
//!   endpoints write (`HealthBody`, `HealthJsonBody`, `HealthHistory`, `StartupBody`, ...) as
//!   utoipa schemas, derived from the very types that serialize them, so a service's OpenAPI
//!   document cannot drift from its health answers. For the generator of that document (a
//!   test), not for the service's binary.
//! - **gRPC** (feature `grpc`, off by default): [`grpc::HealthService`] serves the gRPC health
//!   checking protocol (`grpc.health.v1.Health`: `Check`, `List`, `Watch`) from the same cache,
//!   `""`, `liveness`, `readiness` and each component being a service name. This crate knows
//!   nothing of tonic's transport: the server that mounts the service brings it.
//!
//! # Layout
//!
//! `status` (statuses and their order), `probe` (probes and scopes), `check` (the trait and
//! outcomes), `curability` (what a restart can cure), `registry` (cached state and reports),
//! `builder` (configuration, building the registry: it uses `registry`, never the reverse),
//! `refresh` (running rounds and the refresher), `report` (reports), `history` (transitions,
//! their counts and the change signal), `startup` (start-up state), `weak` (handles that do not
//! keep the registry alive), `http` (axum handlers, the bodies they write and, with `openapi`,
//! those bodies' schemas), `grpc` (the gRPC health service and its generated protocol code).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use health::{check_fn, BoxFuture, CheckOutcome, Health, HealthCheck, Probes, Scope, Status};
//!
//! /// A check against a real dependency; here a stand-in that always answers.
//! struct Database;
//!
//! impl HealthCheck for Database {
//!     fn name(&self) -> &str {
//!         "database"
//!     }
//!     fn measurement(&self) -> &str {
//!         "responseTime"
//!     }
//!     fn check(&self) -> BoxFuture<'_, CheckOutcome> {
//!         Box::pin(async {
//!             let started = std::time::Instant::now();
//!             // Blocking I/O belongs in spawn_blocking; a real check would read a row here.
//!             let read = tokio::task::spawn_blocking(|| Ok::<_, String>(())).await;
//!             let ms = started.elapsed().as_secs_f64() * 1000.0;
//!             match read {
//!                 Ok(Ok(())) => CheckOutcome::up().with_observed(ms, "ms"),
//!                 Ok(Err(e)) => CheckOutcome::down("read failed").with_detail(e),
//!                 Err(e) => CheckOutcome::down("read failed").with_detail(e.to_string()),
//!             }
//!         })
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), health::BuildError> {
//!     let health = Health::builder()
//!         .interval(Duration::from_secs(1))
//!         .timeout(Duration::from_secs(1))
//!         .check(Database)
//!         .check(check_fn("cache", || async { CheckOutcome::down("connection refused") }).non_critical())
//!         .build()?;
//!
//!     // One full round before accepting traffic, so the first probe is truthful.
//!     health.refresh_now().await;
//!     let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//!     let refresher = health.spawn_refresher(async move {
//!         let _ = stopped.await;
//!     });
//!
//!     let report = health.report(Scope::Readiness);
//!     assert_eq!(report.status, Status::Degraded); // the cache is down but not critical
//!     assert_eq!(report.http_status(), 200);
//!     assert_eq!(report.reason.as_deref(), Some("cache: connection refused"));
//!
//!     // At shutdown: readiness fails at once while in-flight requests finish.
//!     health.set_manual("lifecycle", Status::OutOfService, "draining", Probes::READINESS);
//!     assert_eq!(health.report(Scope::Readiness).http_status(), 503);
//!     assert_eq!(health.report(Scope::Liveness).http_status(), 200);
//!
//!     // The HTTP endpoints, ready to merge into the service's router.
//!     #[cfg(feature = "axum")]
//!     {
//!         use health::http::{Details, HttpOptions};
//!         let _app: axum::Router = health::http::router(
//!             health.clone(),
//!             HttpOptions {
//!                 details: Details::Components,
//!                 service_id: "accountservice".into(),
//!                 version: env!("CARGO_PKG_VERSION").into(),
//!                 ..HttpOptions::default()
//!             },
//!         );
//!     }
//!
//!     let _ = stop.send(());
//!     let _ = refresher.await;
//!     Ok(())
//! }
//! ```

mod builder;
mod check;
mod curability;
mod history;
mod probe;
mod refresh;
mod registry;
mod report;
mod startup;
mod status;
mod weak;

#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "axum")]
pub mod http;

pub use builder::{BuildError, DEFAULT_INTERVAL, DEFAULT_TIMEOUT, HealthBuilder};
pub use check::{BoxFuture, CheckOutcome, FnCheck, HealthCheck, check_fn};
pub use curability::Curability;
pub use history::{Subject, TRANSITIONS_KEPT, Transition};
pub use probe::{Probes, Scope};
pub use registry::Health;
pub use report::{ComponentKind, ComponentReport, Report};
pub use startup::Startup;
pub use status::Status;
pub use weak::WeakHealth;
