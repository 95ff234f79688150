//! axum handlers for the health endpoints (feature `axum`): one call, [`router`], mounts them.

mod negotiate;
mod options;
mod render;
mod router;

pub use options::{Details, HttpOptions, ParseDetailsError};
pub use router::router;
