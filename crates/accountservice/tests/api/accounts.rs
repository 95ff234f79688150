//! `GET /accounts/{accountId}` and the JSON error answers, over a real socket.

use reqwest::{StatusCode, header};
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_seeded_account_is_served_as_json_with_served_by() {
    let app = spawn_app().await;
    let response = app.get_account("10042").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let length: usize = response.headers()[header::CONTENT_LENGTH]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), length);
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["id"], "10042");
    assert_eq!(json["name"], "Person_42");
    assert!(!json["servedBy"].as_str().unwrap().is_empty());
    let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_first_and_last_seeded_accounts_exist_and_the_next_does_not() {
    let app = spawn_app().await;
    assert_eq!(app.get_account("10000").await.status(), StatusCode::OK);
    assert_eq!(app.get_account("10099").await.status(), StatusCode::OK);
    assert_eq!(
        app.get_account("10100").await.status(),
        StatusCode::NOT_FOUND
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_unknown_account_is_a_json_404_naming_the_id() {
    let app = spawn_app().await;
    let response = app.get_account("424242").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["error"], "account 424242 not found");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_invalid_account_id_is_a_json_400() {
    let app = spawn_app().await;
    let response = app.get_account(&"9".repeat(65)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let json: Value = response.json().await.unwrap();
    assert_eq!(
        json["error"],
        "invalid account id: account id is 65 bytes long, the limit is 64"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_unknown_path_is_a_json_404() {
    let app = spawn_app().await;
    // (`/health/{component}` takes one segment under /health; two are no route.)
    let response = app.get("/health/nope/deeper").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["error"], "no route for /health/nope/deeper");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_with_allow() {
    let app = spawn_app().await;
    let response = app
        .client
        .delete(app.url("/accounts/10000"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[header::ALLOW], "GET,HEAD");
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["error"], "method DELETE not allowed on this path");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let app = spawn_app().await;
    let response = app
        .client
        .head(app.url("/accounts/10000"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    assert!(response.bytes().await.unwrap().is_empty());
    app.stop().await.unwrap();
}
