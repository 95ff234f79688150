//! axum handlers for the health endpoints (feature `axum`): one call, [`router`], mounts them.
//! With the feature `openapi`, `openapi` names the bodies they write as utoipa schemas.

mod exclude;
mod history;
mod negotiate;
#[cfg(feature = "openapi")]
pub mod openapi;
mod options;
mod render;
mod router;

pub use options::{Details, HttpOptions, Identity, ParseDetailsError};
pub use router::{CHECK_AGE, router, startup_router};
