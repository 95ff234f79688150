//! `ApiError`: every way a request can fail, mapped to a status and a JSON body.
//!
//! Clients get `{"error":"<short reason>"}`; internal causes (file paths, redb messages) are
//! logged with their whole chain and never put in a response.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{
    domain::{AccountId, InvalidAccountId},
    store::StoreError,
};

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The path segment is not a valid account id.
    #[error("invalid account id: {0}")]
    InvalidAccountId(#[from] InvalidAccountId),
    /// The path could not be decoded (e.g. percent-encoding that is not UTF-8).
    #[error("invalid request path: {0}")]
    InvalidPath(String),
    /// A testability switch was given a state it does not know.
    #[error("{0}")]
    InvalidSwitch(String),
    /// No account has this id.
    #[error("account {0} not found")]
    AccountNotFound(AccountId),
    /// The store failed; the cause is logged, not returned.
    #[error("account store unavailable")]
    StoreUnavailable(#[from] StoreError),
    /// No route matches the path.
    #[error("no route for {0}")]
    RouteNotFound(String),
    /// The request URI is longer than the service accepts.
    #[error("request URI longer than {0} bytes")]
    UriTooLong(usize),
    /// The request has a body, which no route takes, larger than the service accepts.
    #[error("request body larger than {0} bytes; no route takes a body")]
    PayloadTooLarge(u64),
    /// The store is in a shared outage (every replica fails to reach it): answered at once,
    /// with the public reason and the seconds until the next verdict as `Retry-After`.
    #[error("{reason}")]
    SharedOutage {
        /// E.g. `shared outage: 3 of 3 replicas cannot reach the database`.
        reason: std::sync::Arc<str>,
        /// Seconds to wait before retrying.
        retry_after: u64,
    },
    /// A store every replica shares (a database server) failed this lookup, before or without a
    /// verdict that turns lookups away at once: the short cause (from the error's kind, never its
    /// text) and the seconds until the next verdict as `Retry-After`. Logged with its whole chain.
    #[error("database unavailable: {reason}")]
    SharedStoreFailed {
        /// E.g. `connection refused`, `timed out after 1 s`.
        reason: String,
        /// Seconds to wait before retrying.
        retry_after: u64,
        /// What failed, for the log.
        #[source]
        cause: StoreError,
    },
    /// Too many requests in progress: shed instead of queued.
    #[error("too many requests in progress; retry shortly")]
    Overloaded,
    /// The path exists but not for this method (axum adds the `Allow` header).
    #[error("method {0} not allowed on this path")]
    MethodNotAllowed(String),
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidAccountId(_) | Self::InvalidPath(_) | Self::InvalidSwitch(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::AccountNotFound(_) | Self::RouteNotFound(_) => StatusCode::NOT_FOUND,
            Self::StoreUnavailable(_)
            | Self::Overloaded
            | Self::SharedOutage { .. }
            | Self::SharedStoreFailed { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        }
    }
}

/// The JSON body of every error answer: `{"error":"account 99999 not found"}`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema), schema(as = Error))]
pub struct ErrorBody {
    /// What went wrong, in a sentence safe to show to any client.
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::StoreUnavailable(cause) | Self::SharedStoreFailed { cause, .. } = &self {
            tracing::error!(error = %chain(cause), "account store failed");
        }
        // The Display text of each variant is written for clients: it never includes a cause.
        let body = ErrorBody {
            error: self.to_string(),
        };
        let mut response = (self.status_code(), Json(body)).into_response();
        if let Self::Overloaded = self {
            // A shed request is cheap to retry; one second lets the burst pass.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Self::SharedOutage { retry_after, .. }
        | Self::SharedStoreFailed { retry_after, .. } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

/// An error and its sources on one line: `outer: inner: root`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_status() {
        let id = AccountId::parse("1").unwrap();
        let cases = [
            (ApiError::InvalidAccountId(InvalidAccountId::Empty), 400),
            (ApiError::InvalidPath("x".into()), 400),
            (ApiError::AccountNotFound(id), 404),
            (ApiError::RouteNotFound("/x".into()), 404),
            (ApiError::MethodNotAllowed("POST".into()), 405),
            (ApiError::UriTooLong(8), 414),
            (ApiError::PayloadTooLarge(8), 413),
            (ApiError::Overloaded, 503),
            (
                ApiError::StoreUnavailable(StoreError::Unavailable("x".into())),
                503,
            ),
            (
                ApiError::SharedStoreFailed {
                    reason: "connection refused".into(),
                    retry_after: 1,
                    cause: StoreError::Unavailable("x".into()),
                },
                503,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(error.status_code().as_u16(), status, "{error:?}");
        }
    }

    #[test]
    fn a_store_failure_does_not_leak_its_cause() {
        let error = ApiError::StoreUnavailable(StoreError::Unavailable(
            "/var/lib/secret/accounts.db is on fire".into(),
        ));
        assert_eq!(error.to_string(), "account store unavailable");
    }

    #[test]
    fn the_cause_chain_is_joined_on_one_line() {
        let error = StoreError::Open {
            path: "/x/accounts.db".into(),
            source: std::io::Error::other("permission denied"),
        };
        assert_eq!(
            chain(&error),
            "cannot open database file /x/accounts.db: permission denied"
        );
    }
}
