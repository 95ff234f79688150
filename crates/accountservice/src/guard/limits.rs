//! Request size limits hyper does not apply: the request target's length (414) and a declared
//! body's size (413), checked before any handler runs.

use axum::{extract::Request, http::header};

use crate::error::ApiError;

/// Longest accepted request target (path and query) in bytes. Account ids are at most 64 bytes;
/// this leaves room for anything reasonable and answers 414 beyond.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Largest accepted request body. No route takes a body; a small one (an empty JSON object
/// sent by a tool with a PUT) is tolerated and ignored, anything larger is 413 without reading
/// it.
pub const MAX_BODY_BYTES: u64 = 1024;

/// Why a request is refused before its handler runs, if it is.
pub fn refusal(request: &Request) -> Option<ApiError> {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return Some(ApiError::UriTooLong(MAX_URI_BYTES));
    }
    let declared_body = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    declared_body
        .is_some_and(|bytes| bytes > MAX_BODY_BYTES)
        .then_some(ApiError::PayloadTooLarge(MAX_BODY_BYTES))
}
