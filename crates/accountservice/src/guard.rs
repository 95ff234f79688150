//! The layers every request passes before and after its handler.
//!
//! - [`edge`]: the outermost layer of every route, which applies, in order, the size limits
//!   ([`limits`]), `Connection: close` while draining ([`drain`]), the request metrics
//!   ([`crate::metrics::RouteMetrics`]) and the access line ([`access_log`]);
//! - [`shed`]: load shedding on the work routes.
//!
//! Each refusal is a JSON [`crate::error::ApiError`] with a precise status (414, 413, 503 with
//! `Retry-After`) instead of a dropped connection. The request-head size limit (431) and the
//! header read timeout live in the server loop (`crate::server`), where hyper applies them.
//!
//! Both layers are plain tower layers with their own future types rather than
//! `axum::middleware::from_fn`: that boxes a future and clones the inner service on every
//! request, and with three such layers plus `tower_http::trace` the middleware cost about as much
//! CPU per account lookup as the handler and its database read together (see BENCHMARKS.md,
//! Notes). The concerns are separate modules, but one layer: each would otherwise add a future
//! and a clone of its state per request.

pub mod access_log;
pub mod drain;
pub mod edge;
pub mod limits;
pub mod shed;

pub use edge::{Edge, EdgeLayer};
pub use limits::{MAX_BODY_BYTES, MAX_URI_BYTES};
pub use shed::{Shed, ShedLayer};
