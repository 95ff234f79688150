//! API tests of the health crate: the registry under tokio's paused clock, and the HTTP
//! endpoints through `tower::ServiceExt::oneshot`. One binary, so the crate links once.

// Test code: an unwrap that fails is a failed test, with the value in the message.
#![allow(clippy::unwrap_used)]

mod curability;
mod helpers;
mod history;
mod http;
mod registry;
mod startup_and_components;
mod transitions;
