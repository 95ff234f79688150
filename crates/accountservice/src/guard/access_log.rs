//! The access line: one DEBUG event per answer (`finished processing request`, with method, URI,
//! status and latency), off unless the log filter enables DEBUG for `accountservice::guard`.

use std::time::Duration;

use axum::{
    extract::Request,
    http::{Method, StatusCode, Uri},
};

/// What the access line needs from the request, taken before the handler consumes it.
pub struct AccessLine {
    uri: Uri,
}

impl AccessLine {
    /// The request's URI if the access line is enabled: an `Arc` clone, never a copy, and
    /// nothing at all when it is off (the usual case).
    pub fn start(request: &Request) -> Option<Self> {
        tracing::enabled!(tracing::Level::DEBUG).then(|| Self {
            uri: request.uri().clone(),
        })
    }

    /// Logs the answer.
    pub fn finish(self, method: &Method, status: StatusCode, elapsed: Duration) {
        tracing::debug!(
            method = %method,
            uri = %self.uri,
            status = status.as_u16(),
            latency_us = elapsed.as_micros(),
            "finished processing request"
        );
    }
}
