//! axum handlers for the health endpoints (feature `axum`): one call, [`router`], mounts them.

mod exclude;
mod history;
mod negotiate;
mod options;
mod render;
mod router;

pub use options::{Details, HttpOptions, Identity, ParseDetailsError};
pub use router::{router, startup_router};
