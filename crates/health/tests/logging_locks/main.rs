//! The lock test that logs: a binary of its own, so no other test thread registers the health
//! crate's log callsites while this one's thread-local subscriber is being set. tracing caches
//! a callsite's interest when it is first hit; a callsite first hit on another thread at that
//! moment can be cached as "never", and this test would then see nothing logged.

// Test code: an unwrap that fails is a failed test, with the value in the message.
#![allow(clippy::unwrap_used)]

// Shared with the API tests; this binary uses only part of it.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod locks;
