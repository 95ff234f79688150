//! The testability switches: absent by default, and when on, they make the real health
//! endpoints and lookups fail and recover.

use reqwest::{Method, StatusCode};

use std::time::{Duration, Instant};

use accountservice::startup::Stopped;

use crate::helpers::{spawn_app, spawn_app_configured};

const METHODS: [Method; 6] = [
    Method::GET,
    Method::HEAD,
    Method::PUT,
    Method::POST,
    Method::DELETE,
    Method::PATCH,
];

#[tokio::test]
async fn switched_off_the_routes_do_not_exist_for_any_method() {
    let app = spawn_app().await;
    for path in [
        "/testability/healthy/false",
        "/testability/healthy/true",
        "/testability/database/down",
    ] {
        for method in METHODS {
            let response = app.request(method.clone(), path).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
        }
    }
    let (status, _) = app.get_json("/health").await;
    assert_eq!(status, 200, "a 404 must not have changed anything");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn forcing_unhealthy_fails_every_probe_with_the_reason_then_restores() {
    let app = spawn_app_configured(|s| s.testability = true).await;
    let (status, body) = app.get_json("/testability/healthy/false").await;
    assert_eq!((status, &body["healthy"]), (200, &false.into()));

    for path in [
        "/health",
        "/health/live",
        "/health/ready",
        "/livez",
        "/readyz",
    ] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, 503, "{path}");
        assert_eq!(body["status"], "DOWN", "{path}");
        assert_eq!(body["reason"], "testability: forced unhealthy", "{path}");
    }
    // Lookups still work: only the health answer is forced.
    assert_eq!(app.get_account("10000").await.status(), StatusCode::OK);

    let response = app.request(Method::PUT, "/testability/healthy/True").await;
    assert_eq!(response.status(), StatusCode::OK);
    for path in ["/health", "/health/live", "/health/ready"] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["status"], "UP", "{path}");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn post_works_like_get_and_put() {
    let app = spawn_app_configured(|s| s.testability = true).await;
    let response = app.request(Method::POST, "/testability/healthy/0").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.get_json("/health").await.0, 503);
    let response = app.request(Method::POST, "/testability/healthy/1").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.get_json("/health").await.0, 200);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_invalid_state_is_a_400_with_a_reason_and_changes_nothing() {
    let app = spawn_app_configured(|s| s.testability = true).await;
    for path in [
        "/testability/healthy/maybe",
        "/testability/healthy/yes",
        "/testability/database/sideways",
    ] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, 400, "{path}");
        assert!(
            body["error"].as_str().unwrap().contains("must be"),
            "{body}"
        );
    }
    assert_eq!(app.get_json("/health").await.0, 200);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_database_fault_fails_the_real_check_and_lookups_then_recovers() {
    let app = spawn_app_configured(|s| s.testability = true).await;
    let (status, _) = app.get_json("/testability/database/down").await;
    assert_eq!(status, 200);

    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "DOWN");
    assert_eq!(body["reason"], "database: read failed");
    assert_eq!(body["components"]["database"]["status"], "DOWN");
    let (status, _) = app.get_json("/health/ready").await;
    assert_eq!(status, 503);
    // The embedded file is the replica's own: a replacement with a fresh volume can cure it,
    // so the restart signal fails too.
    let (status, body) = app.get_json("/health/live").await;
    assert_eq!(status, 503);
    assert_eq!(body["reason"], "database: read failed");
    let (status, body) = app.get_json("/accounts/10000").await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "account store unavailable");

    let (status, _) = app.get_json("/testability/database/up").await;
    assert_eq!(status, 200);
    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.get_account("10000").await.status(), StatusCode::OK);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn without_the_switch_endpoint_a_database_fault_shows_within_one_interval() {
    // The registry refreshes every 100 ms in tests; flip the switch and only wait.
    let app = spawn_app_configured(|s| s.testability = true).await;
    app.get_json("/testability/database/down").await;
    app.get_json("/testability/healthy/true").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = app.get_json("/health").await;
        if status == 503 {
            assert_eq!(body["reason"], "database: read failed");
            break;
        }
        assert!(Instant::now() < deadline, "/health still {status}: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_stop_while_forced_unhealthy_drains_and_says_why_it_was_unhealthy() {
    let app = spawn_app_configured(|s| s.testability = true).await;
    app.get_json("/testability/healthy/false").await;
    let stopped = app.stop().await.expect("a clean drain");
    assert_eq!(
        stopped,
        Stopped::Unhealthy("testability: forced unhealthy".into())
    );
}

#[tokio::test]
async fn a_stop_while_the_database_is_down_names_the_database() {
    let app = spawn_app_configured(|s| s.testability = true).await;
    // The switch answers after the check ran again, so /health already says DOWN.
    app.get_json("/testability/database/down").await;
    assert_eq!(app.get_json("/health").await.0, 503);
    let stopped = app.stop().await.expect("a clean drain");
    assert_eq!(stopped, Stopped::Unhealthy("database: read failed".into()));
}

#[tokio::test]
async fn a_stop_after_recovering_is_a_healthy_stop() {
    let app = spawn_app_configured(|s| s.testability = true).await;
    app.get_json("/testability/healthy/false").await;
    app.get_json("/testability/healthy/true").await;
    assert_eq!(app.stop().await.expect("a clean drain"), Stopped::Healthy);
}
