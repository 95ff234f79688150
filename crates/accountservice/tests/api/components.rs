//! The start-up probe, one component's endpoint and `?exclude=` on the running service.

use reqwest::{StatusCode, header};
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_configured};

#[tokio::test]
async fn a_serving_instance_has_finished_starting() {
    let app = spawn_app().await;
    for path in ["/health/started", "/startupz"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(response.text().await.unwrap(), r#"{"status":"UP"}"#);
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_database_component_has_its_own_path_and_unknown_ones_are_404_json() {
    let app = spawn_app_configured(|s| s.testability = true).await;
    assert_eq!(
        app.get_json("/health/database").await,
        (200, json!({"status": "UP"}))
    );

    app.get_json("/testability/database/down").await;
    let (status, body) = app.get_json("/health/database").await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "DOWN");
    assert_eq!(body["reason"], "read failed");

    let (status, body) = app.get_json("/health/nosuch").await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error": "no health component named \"nosuch\""})
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_operator_can_exclude_a_known_bad_component_and_is_told_what_matched() {
    let app = spawn_app_configured(|s| s.testability = true).await;
    app.get_json("/testability/healthy/false").await;
    assert_eq!(app.get_json("/readyz").await.0, 503);

    let (status, body) = app
        .get_json("/readyz?exclude=testability&exclude=lifecycle")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "UP");
    assert_eq!(body["excluded"], json!(["testability"]));
    assert_eq!(
        body["notExcluded"],
        json!({"lifecycle": "no such component"})
    );
    app.stop().await.unwrap();
}
