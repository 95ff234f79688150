//! Account lookup over an embedded redb database: the library behind the `accountservice` binary.
//!
//! `main.rs` only parses [`config::Settings`], installs logging and calls
//! [`startup::Application`]; everything else lives here so that tests can drive it:
//!
//! - [`config`]: the one typed settings struct (flags with `ACCOUNTSERVICE_*` fallbacks).
//! - [`domain`]: [`domain::AccountId`] (parsed at the edge) and [`domain::Account`].
//! - [`store`]: [`store::Store`], what handlers and the health check read through, over the
//!   synchronous [`store::AccountStore`] trait and its redb implementation (the default), or
//!   [`store::postgres`] (`--database-url`): a pool with prepared statements, every wait
//!   bounded, embedded migrations; with `--testability`, [`store::FaultSwitch`] fails or hangs
//!   every call on demand.
//! - [`seed`]: idempotent, chunked seeding of fake accounts with progress output.
//! - [`router`], [`routes`], [`error`], [`state`]: the HTTP surface over [`state::AppState`]
//!   and [`router::Endpoints`] (live handles, with their plain [`router::EndpointSettings`]).
//! - [`checks`]: the database health check and the registry from the `health` crate that runs
//!   it in the background; [`metrics`]: `/metrics` (request, health, process and build series,
//!   Prometheus text or OpenMetrics by `Accept`); its [`metrics::RouteMetrics`] counts each
//!   request as the edge finishes it.
//! - [`fleet`]: with `--peers`, `/health/fleet` and `/status`: every replica's health, asked of
//!   the peers' `/health/history` only while someone looks, and of two answering replicas that
//!   claim one `--slot`, which holds it (the later started); each round on a task of its own,
//!   what it reads and keeps within stated byte bounds; knows nothing of this replica's own
//!   health.
//! - [`outage`]: is it me, or everyone? While a check of a dependency every replica shares
//!   fails, a few peers are asked whether they reach it: a fault of this replica's own takes it
//!   out of readiness (and after a grace, liveness); an outage of the dependency restarts
//!   nothing, keeps readiness in rotation and turns lookups into an immediate 503.
//! - [`served_by`]: the instance name put in every account answer, computed once.
//! - [`openapi`]: the OpenAPI document served at `/openapi.json`.
//! - [`guard`]: the request edge: [`guard::edge`] composes, on every route, the size limits
//!   ([`guard::limits`]), `Connection: close` while draining ([`guard::drain`]), the request
//!   metrics and the access line ([`guard::access_log`]); [`guard::shed`] sheds load on the work
//!   routes.
//! - [`startup`]: [`startup::Application`], the start-up in order (bind, open, seed, listen),
//!   which then hands over to [`lifecycle`]: the signals that end the service
//!   ([`lifecycle::Signals`]: the first SIGTERM or Ctrl-C stops, a second cuts the stop
//!   short), the drain ([`draining::Draining`], re-exported by [`lifecycle`]: a flag the edge
//!   reads, which also turns readiness 503 "draining"; its own module, below the edge and the
//!   router that read it), the division of the orchestrator's grace between the phases of
//!   a stop ([`lifecycle::StopBudget`], from `--stop-grace`) and the order of stopping
//!   ([`lifecycle::Lifecycle::run`]: drain, stop the listeners and the refresher, close the
//!   database once its last user lets go, [`lifecycle::Lent`], each phase under its bound);
//!   [`server`]: the HTTP server loop with its connection limits, driven by both (HTTP/1.1
//!   only on the public port, also h2c on the management port); [`telemetry`]: logging, where
//!   [`telemetry::Repeats`] writes a warning or error of one cause once per window and counts
//!   the rest.
//! - [`memory_limit`]: the memory limit (the container's, or `--memory-limit`) and the two
//!   listeners' connection caps that fit in it, every connection counted at its worst, kernel
//!   socket buffers included.
//! - [`management`]: with `--management-port`, the operator endpoints on a listener with a
//!   runtime and thread of its own; [`router::split`] divides the routes between the ports.
//! - [`grpc`]: gRPC health (`grpc.health.v1`, the `health` crate's service over the same
//!   registry) on the management port only, with its bounds (request size and time, open
//!   `Watch` calls); the management listener ends its `Watch` calls when it stops.

pub mod checks;
pub mod config;
pub mod domain;
pub mod draining;
pub mod error;
pub mod fleet;
pub mod grpc;
pub mod guard;
pub mod lifecycle;
pub mod management;
pub mod memory_limit;
pub mod metrics;
pub mod openapi;
pub mod outage;
pub mod router;
pub mod routes;
pub mod seed;
pub mod served_by;
pub mod server;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
