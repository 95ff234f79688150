//! HTTP handlers, one module per concern.

pub mod accounts;
pub mod fallback;
pub mod testability;
