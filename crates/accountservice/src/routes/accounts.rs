//! `GET /accounts/{accountId}`: one account as JSON, with the name of the instance serving it.

use axum::{
    Json,
    extract::{Path, State, rejection::PathRejection},
    response::{IntoResponse as _, Response},
};
use serde::Serialize;

use crate::{domain::AccountId, error::ApiError, state::AppState};

/// The answer body: `{"id":"10000","name":"Person_0","servedBy":"10.0.0.5"}`.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(utoipa::ToSchema), schema(as = Account))]
pub struct AccountBody<'a> {
    /// The account's id.
    pub id: &'a str,
    /// The account holder's name.
    pub name: &'a str,
    /// The instance that answered: its first non-loopback address, else its hostname.
    #[serde(rename = "servedBy")]
    pub served_by: &'a str,
}

/// Looks the account up and answers 200, 400 (invalid id), 404 (unknown id) or 503 (store
/// failure).
///
/// With the embedded store, the read runs inline on the async worker, not in `spawn_blocking`: a warm point read
/// including the JSON decode is far cheaper than the hand-off to the blocking pool and back
/// (`cargo bench -p accountservice --bench store` prints both). A read never waits for a lock (redb readers do not block on the writer, and the
/// service writes only while seeding, before it listens); a cold read is a `pread` of a 4 KiB
/// page, normally from the OS page cache. If the database ever outgrows memory, or a check
/// needs a long scan, that call belongs in `spawn_blocking`. With PostgreSQL the lookup awaits
/// the pool and the network, each wait bounded (`store::postgres`), so a database that cannot
/// answer is a 503 within those bounds, never a hung request.
#[cfg_attr(test, utoipa::path(
    get,
    path = "/accounts/{accountId}",
    tag = "accounts",
    params(
        ("accountId" = String, Path,
            description = "The account's id, e.g. 10042 (seeded ids are 10000 upwards). Any id of \
                           1 to 64 bytes without control characters is looked up; this \
                           description admits printable ASCII only.",
            min_length = 1, max_length = 64, pattern = "^[!-~]+$", example = "10042"),
    ),
    responses(
        (status = 200, description = "The account", body = AccountBody<'_>),
        (status = 400, description = "Not a valid account id", body = crate::error::ErrorBody),
        (status = 404, description = "No account has this id", body = crate::error::ErrorBody),
        (status = 503, description = "The store is unavailable (a database every replica shares: \
            with Retry-After and the cause, `database unavailable: connection refused`); or in a \
            shared outage (every replica fails to reach it: answered at once, with Retry-After and \
            the reason); or too many requests are in progress (then with Retry-After)",
            body = crate::error::ErrorBody),
    )
))]
pub async fn get_account(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(raw) = path.map_err(|rejection| ApiError::InvalidPath(rejection.body_text()))?;
    let id = AccountId::parse(&raw)?;
    // During a shared outage no lookup waits on the store to fail: one atomic load otherwise.
    if let Some((reason, retry_after)) = state.outage.as_ref().and_then(|o| o.store_outage()) {
        return Err(ApiError::SharedOutage {
            reason,
            retry_after,
        });
    }
    let account = match state.store.get(&id).await {
        Ok(found) => found.ok_or(ApiError::AccountNotFound(id))?,
        // A database every replica shares: whether its failure is this replica's or everyone's
        // is not known yet (or it is this replica's), and another replica or a moment later may
        // serve, so the client is told why and when to retry, as in a shared outage. An
        // embedded store's failure answers as it always has.
        Err(cause) if state.store.is_shared() => {
            return Err(ApiError::SharedStoreFailed {
                reason: cause.summary().to_owned(),
                retry_after: state.outage.as_ref().map_or(1, |o| o.retry_after()),
                cause,
            });
        }
        Err(cause) => return Err(cause.into()),
    };
    let body = AccountBody {
        id: &account.id,
        name: &account.name,
        served_by: &state.served_by,
    };
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use axum::{
        body::Body,
        http::{Request, StatusCode, header},
    };
    use http_body_util::BodyExt as _;
    use mockall::predicate::eq;
    use tower::ServiceExt as _;

    use crate::{
        domain::Account,
        router::router,
        state::AppState,
        store::{MockAccountStore, StoreError},
    };

    async fn get(store: MockAccountStore, uri: &str) -> (StatusCode, Option<String>, String) {
        let app = router(AppState::new(Arc::new(store), "10.1.2.3"));
        let request = Request::get(uri).body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|value| value.to_str().unwrap().to_owned());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            content_type,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    fn id(raw: &str) -> crate::domain::AccountId {
        crate::domain::AccountId::parse(raw).unwrap()
    }

    #[tokio::test]
    async fn a_stored_account_is_returned_with_served_by() {
        let mut store = MockAccountStore::new();
        store
            .expect_get()
            .with(eq(id("10042")))
            .times(1)
            .returning(|_| Ok(Some(Account::fake(42))));
        let (status, content_type, body) = get(store, "/accounts/10042").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        assert_eq!(
            body,
            r#"{"id":"10042","name":"Person_42","servedBy":"10.1.2.3"}"#
        );
    }

    #[tokio::test]
    async fn an_unknown_id_is_a_404_naming_the_id() {
        let mut store = MockAccountStore::new();
        store.expect_get().times(1).returning(|_| Ok(None));
        let (status, content_type, body) = get(store, "/accounts/99999").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        assert_eq!(body, r#"{"error":"account 99999 not found"}"#);
    }

    #[tokio::test]
    async fn an_invalid_id_is_a_400_and_never_reaches_the_store() {
        let too_long = format!("/accounts/{}", "1".repeat(65));
        for uri in [too_long.as_str(), "/accounts/100%0A42", "/accounts/%00"] {
            // No expectations: a store call would panic the handler.
            let (status, content_type, body) = get(MockAccountStore::new(), uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(content_type.as_deref(), Some("application/json"));
            assert!(
                body.starts_with(r#"{"error":"invalid account id: "#),
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn a_path_that_is_not_utf8_is_a_400() {
        let (status, _, body) = get(MockAccountStore::new(), "/accounts/%FF").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body.starts_with(r#"{"error":"invalid request path"#),
            "{body}"
        );
    }

    #[tokio::test]
    async fn in_a_shared_outage_a_lookup_answers_503_at_once_with_the_reason_and_retry_after() {
        use health::{CheckOutcome, Curability, Health, check_fn};

        use crate::outage::{Answer, Outage, PeerAnswer, Verdict};

        let health = Health::builder()
            .check(
                check_fn("database", || async { CheckOutcome::up() })
                    .curability(Curability::NotByRestart),
            )
            .build()
            .unwrap();
        let outage = Arc::new(Outage::new(&health, "database", Duration::from_secs(2)));
        let answers: Vec<PeerAnswer> = (0..2)
            .map(|i| PeerAnswer {
                peer: format!("10.0.1.{i}:6768"),
                answer: Answer::CannotReach("connection refused".into()),
            })
            .collect();
        outage.judged(
            "database",
            Verdict::judge(&answers),
            answers,
            tokio::time::Instant::now(),
        );
        // No expectations: the store is never asked.
        let state =
            AppState::new(Arc::new(MockAccountStore::new()), "10.1.2.3").with_outage(outage);
        let request = Request::get("/accounts/10000").body(Body::empty()).unwrap();
        let response = router(state).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            &bytes[..],
            br#"{"error":"shared outage: 3 of 3 replicas cannot reach the database"}"#
        );
    }

    #[tokio::test]
    async fn a_store_failure_is_a_503_without_internals() {
        let mut store = MockAccountStore::new();
        store
            .expect_get()
            .times(1)
            .returning(|_| Err(StoreError::Unavailable("/secret/path broke".into())));
        store.expect_is_shared().return_const(false);
        let (status, content_type, body) = get(store, "/accounts/10000").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        assert_eq!(body, r#"{"error":"account store unavailable"}"#);
    }

    #[tokio::test]
    async fn a_shared_store_s_failure_before_any_verdict_is_a_503_with_the_cause_and_retry_after() {
        let mut store = MockAccountStore::new();
        store.expect_get().times(1).returning(|_| {
            Err(StoreError::Postgres {
                operation: "read",
                cause: "connection refused".into(),
                source: None,
            })
        });
        store.expect_is_shared().return_const(true);
        let app = router(AppState::new(Arc::new(store), "10.1.2.3"));
        let request = Request::get("/accounts/10000").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            &bytes[..],
            br#"{"error":"database unavailable: connection refused"}"#
        );
    }
}
