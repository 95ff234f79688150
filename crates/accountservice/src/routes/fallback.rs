//! Answers for requests no route takes: unknown paths (404) and wrong methods (405), as JSON.

use axum::http::{Method, Uri};

use crate::error::ApiError;

/// Any path without a route: 404 with a JSON body naming the path.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(uri.path().to_owned())
}

/// A known path asked with a method it does not support: 405 with a JSON body. axum adds the
/// `Allow` header listing the supported methods.
pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::{
        body::Body,
        http::{Request, StatusCode, header},
    };
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use crate::{router::router, state::AppState, store::MockAccountStore};

    async fn send(
        request: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        // The mock has no expectations: any store call would fail the test.
        let app = router(AppState::new(Arc::new(MockAccountStore::new()), "test"));
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn an_unknown_path_is_a_json_404_naming_the_path() {
        let request = Request::get("/nope/here").body(Body::empty()).unwrap();
        let (status, headers, body) = send(request).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(body["error"], "no route for /nope/here");
    }

    #[tokio::test]
    async fn accounts_without_an_id_is_an_unknown_path() {
        let request = Request::get("/accounts/").body(Body::empty()).unwrap();
        let (status, _, _) = send(request).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_wrong_method_is_a_json_405_with_allow() {
        let request = Request::post("/accounts/10000")
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = send(request).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(headers[header::ALLOW], "GET,HEAD");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(body["error"], "method POST not allowed on this path");
    }
}
