//! The health endpoints of the running service: formats, details levels, probes, draining.

use std::time::Duration;

use reqwest::{Method, StatusCode, header};

use crate::helpers::{spawn_app, spawn_app_configured};

#[tokio::test]
async fn a_healthy_service_answers_up_with_its_database_component() {
    let app = spawn_app().await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "UP");
    assert_eq!(body["components"]["database"]["status"], "UP");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn with_details_never_a_healthy_answer_is_exactly_the_seeds() {
    let app = spawn_app_configured(|s| s.health_details = health::http::Details::Never).await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), r#"{"status":"UP"}"#);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn with_details_always_the_database_read_time_is_shown() {
    let app = spawn_app_configured(|s| s.health_details = health::http::Details::Always).await;
    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 200);
    let database = &body["components"]["database"];
    assert_eq!(database["status"], "UP");
    assert!(database.to_string().contains("ms"), "{body}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn every_probe_path_answers_get_and_head() {
    let app = spawn_app().await;
    for path in [
        "/health",
        "/health/live",
        "/livez",
        "/health/ready",
        "/readyz",
    ] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body["status"], "UP", "{path}");
        let head = app.request(Method::HEAD, path).await;
        assert_eq!(head.status(), StatusCode::OK, "HEAD {path}");
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path}");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_embedded_database_takes_part_in_liveness_as_a_fault_a_restart_can_cure() {
    let app = spawn_app_configured(|s| s.health_details = health::http::Details::Always).await;
    for path in ["/health", "/health/live", "/health/ready"] {
        let (_, body) = app.get_json(path).await;
        let database = &body["components"]["database"];
        assert_eq!(database["status"], "UP", "{path}: {body}");
        assert_eq!(
            database["details"]["curableByRestart"], true,
            "{path}: {body}"
        );
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn health_json_is_answered_in_the_ietf_draft_format() {
    let app = spawn_app_configured(|s| s.health_details = health::http::Details::Always).await;
    let response = app
        .get_accepting("/health", "application/health+json")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/health+json"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "pass");
    assert_eq!(body["serviceId"], "accountservice");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let check = &body["checks"]["database:responseTime"][0];
    assert_eq!(check["status"], "pass", "{body}");
    assert!(check.get("time").is_some(), "{body}");
    assert_eq!(check["observedUnit"], "ms", "{body}");
    assert!(check["observedValue"].is_number(), "{body}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn at_shutdown_readiness_fails_at_once_while_requests_are_still_served() {
    let mut app = spawn_app_configured(|s| s.pre_stop_delay = Duration::from_secs(2)).await;
    app.begin_shutdown();
    // The draining state is set as soon as the shutdown future completes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let body = loop {
        let (status, body) = app.get_json("/health/ready").await;
        if status == 503 {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(body["status"], "OUT_OF_SERVICE");
    assert_eq!(body["reason"], "lifecycle: draining");
    let (status, overall) = app.get_json("/health").await;
    assert_eq!(status, 503);
    assert_eq!(overall["status"], "OUT_OF_SERVICE");
    // Liveness stays up: the process is fine, it is only leaving.
    let (status, _) = app.get_json("/health/live").await;
    assert_eq!(status, 200);
    // Lookups are still served during the pre-stop delay.
    let response = app.get_account("10001").await;
    assert_eq!(response.status(), StatusCode::OK);
    app.stop().await.unwrap();
}
