//! The HTTP endpoints through `tower::ServiceExt::oneshot`: paths, methods, status codes,
//! headers, both formats and every details level.

use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::http::{Method, StatusCode};
use health::http::{Details, HttpOptions, Identity, router};
use health::{CheckOutcome, Health, Probes, Status};
use serde_json::json;
use tokio::time::advance;

use crate::helpers::{Answer, HEALTH_JSON, Switch, call, get};

const PATHS: [&str; 5] = [
    "/health",
    "/health/live",
    "/health/ready",
    "/livez",
    "/readyz",
];

struct App {
    health: Health,
    router: Router,
    database: Switch,
}

fn healthy_database() -> CheckOutcome {
    CheckOutcome::up().with_observed(1.5, "ms")
}

fn failing_database() -> CheckOutcome {
    CheckOutcome::down("read failed").with_detail("open /var/lib/accounts.db: I/O error")
}

async fn start(details: Details) -> App {
    let database = Switch::new(healthy_database());
    let health = Health::builder()
        .check(database.check("database").measurement("responseTime"))
        .build()
        .unwrap();
    health.refresh_now().await;
    let router = router(
        health.clone(),
        HttpOptions {
            details,
            service_id: "accountservice".into(),
            version: "1.2.3".into(),
            description: Some("accounts".into()),
            identity: Identity {
                instance: "replica-1".into(),
                address: Some("10.0.1.5:6767".into()),
                started_at: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
                slot: None,
            },
        },
    );
    App {
        health,
        router,
        database,
    }
}

impl App {
    async fn database_fails(&self) {
        self.database.set(failing_database());
        self.health.refresh_now().await;
    }
}

fn assert_json_headers(answer: &Answer, content_type: &str) {
    assert_eq!(answer.header("content-type"), content_type);
    assert_eq!(answer.header("cache-control"), "no-store");
    assert_eq!(answer.header("vary"), "accept");
}

#[tokio::test(start_paused = true)]
async fn every_endpoint_answers_get_with_json_that_no_one_caches() {
    let app = start(Details::Components).await;
    for path in PATHS {
        let answer = get(&app.router, path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_json_headers(&answer, "application/json");
        assert_eq!(answer.json()["status"], "UP", "{path}");
    }
}

#[tokio::test(start_paused = true)]
async fn head_answers_the_same_status_and_headers_without_a_body() {
    let app = start(Details::Components).await;
    app.health
        .set_manual("testability", Status::Down, "forced unhealthy", Probes::ALL);
    for path in PATHS {
        for accept in [None, Some(HEALTH_JSON)] {
            let got = call(&app.router, Method::GET, path, accept).await;
            let head = call(&app.router, Method::HEAD, path, accept).await;
            assert_eq!(head.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
            assert_eq!(head.status, got.status);
            assert_eq!(head.header("content-type"), got.header("content-type"));
            assert_eq!(head.header("cache-control"), "no-store");
            assert!(head.body.is_empty(), "{path}: HEAD has no body");
            assert!(!got.body.is_empty());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn other_methods_and_paths_are_not_health_endpoints() {
    let app = start(Details::Components).await;
    assert_eq!(
        call(&app.router, Method::POST, "/health", None)
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        get(&app.router, "/healthz").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(start_paused = true)]
async fn details_never_answers_exactly_status_up_when_healthy() {
    let app = start(Details::Never).await;
    for path in PATHS {
        assert_eq!(
            get(&app.router, path).await.text(),
            r#"{"status":"UP"}"#,
            "{path}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn details_never_adds_only_a_short_true_reason_when_unhealthy() {
    let app = start(Details::Never).await;
    app.database_fails().await;
    let answer = get(&app.router, "/health").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.text(),
        r#"{"status":"DOWN","reason":"database: read failed"}"#
    );
}

#[tokio::test(start_paused = true)]
async fn details_components_shows_each_component_without_internals() {
    let app = start(Details::Components).await;
    assert_eq!(
        get(&app.router, "/health").await.text(),
        r#"{"status":"UP","components":{"database":{"status":"UP"}}}"#
    );

    app.database_fails().await;
    let answer = get(&app.router, "/health").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.json(),
        json!({
            "status": "DOWN",
            "reason": "database: read failed",
            "components": {"database": {"status": "DOWN", "reason": "read failed"}}
        })
    );
    assert!(
        !answer.text().contains("/var/lib"),
        "no internal detail leaks"
    );
}

#[tokio::test(start_paused = true)]
async fn details_always_adds_detail_observed_values_durations_and_timestamps() {
    let app = start(Details::Always).await;
    app.database
        .set(healthy_database().with_detail("redb 4, 100 accounts"));
    app.health.refresh_now().await;

    let body = get(&app.router, "/health").await.json();
    let details = &body["components"]["database"]["details"];
    assert_eq!(body["components"]["database"]["status"], "UP");
    assert_eq!(details["critical"], true);
    assert_eq!(details["kind"], "check");
    assert_eq!(details["detail"], "redb 4, 100 accounts");
    assert_eq!(details["observedValue"], 1.5);
    assert_eq!(details["observedUnit"], "ms");
    assert!(details["durationMs"].is_number());
    let checked_at = details["checkedAt"].as_str().unwrap();
    assert!(
        checked_at.ends_with('Z') && checked_at.len() == 24,
        "{checked_at}"
    );

    app.database_fails().await;
    let body = get(&app.router, "/health").await.json();
    assert_eq!(
        body["components"]["database"]["details"]["detail"],
        "open /var/lib/accounts.db: I/O error"
    );
    assert_eq!(
        body["reason"], "database: read failed",
        "the summary stays short"
    );
}

#[tokio::test(start_paused = true)]
async fn liveness_ignores_dependencies_and_readiness_follows_them() {
    let app = start(Details::Components).await;
    app.database_fails().await;
    for (path, status) in [
        ("/health", StatusCode::SERVICE_UNAVAILABLE),
        ("/health/ready", StatusCode::SERVICE_UNAVAILABLE),
        ("/readyz", StatusCode::SERVICE_UNAVAILABLE),
        ("/health/live", StatusCode::OK),
        ("/livez", StatusCode::OK),
    ] {
        assert_eq!(get(&app.router, path).await.status, status, "{path}");
    }
    assert_eq!(
        get(&app.router, "/livez").await.text(),
        r#"{"status":"UP"}"#
    );
}

#[tokio::test(start_paused = true)]
async fn a_forced_unhealthy_switch_fails_every_endpoint_on_the_next_probe_and_restores() {
    let app = start(Details::Components).await;
    let _ = get(&app.router, "/health").await; // render the healthy answers first

    app.health
        .set_manual("testability", Status::Down, "forced unhealthy", Probes::ALL);
    for path in PATHS {
        let answer = get(&app.router, path).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(
            answer.json()["reason"],
            "testability: forced unhealthy",
            "{path}"
        );
        assert_eq!(answer.json()["components"]["testability"]["status"], "DOWN");
    }

    app.health.clear_manual("testability");
    for path in PATHS {
        assert_eq!(
            get(&app.router, path).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn draining_fails_readiness_and_health_but_not_liveness() {
    let app = start(Details::Components).await;
    app.health.set_manual(
        "lifecycle",
        Status::OutOfService,
        "draining",
        Probes::READINESS,
    );

    let ready = get(&app.router, "/health/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["status"], "OUT_OF_SERVICE");
    assert_eq!(ready.json()["reason"], "lifecycle: draining");
    assert_eq!(
        get(&app.router, "/health").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(&app.router, "/health/live").await.status,
        StatusCode::OK
    );
}

#[tokio::test(start_paused = true)]
async fn a_non_critical_failure_answers_200_degraded_and_warn() {
    let cache = Switch::new(CheckOutcome::down("connection refused"));
    let health = Health::builder()
        .check(cache.check("cache").non_critical())
        .build()
        .unwrap();
    health.refresh_now().await;
    let router = router(health, HttpOptions::default());

    let answer = get(&router, "/health").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["status"], "DEGRADED");
    assert_eq!(answer.json()["components"]["cache"]["status"], "DOWN");

    let answer = call(&router, Method::GET, "/health", Some(HEALTH_JSON)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["status"], "warn");
    assert_eq!(answer.json()["checks"]["cache:status"][0]["status"], "fail");
}

#[tokio::test(start_paused = true)]
async fn health_json_is_answered_when_asked_for_at_every_details_level() {
    // never: the status, and the reason as `output` when failing.
    let app = start(Details::Never).await;
    let answer = call(&app.router, Method::GET, "/health", Some(HEALTH_JSON)).await;
    assert_json_headers(&answer, HEALTH_JSON);
    assert_eq!(answer.text(), r#"{"status":"pass"}"#);
    app.database_fails().await;
    let answer = call(&app.router, Method::GET, "/health", Some(HEALTH_JSON)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.text(),
        r#"{"status":"fail","output":"database: read failed"}"#
    );

    // components: service identity and each check's status, no internals.
    let app = start(Details::Components).await;
    let answer = call(&app.router, Method::GET, "/health/ready", Some(HEALTH_JSON)).await;
    assert_eq!(
        answer.json(),
        json!({
            "status": "pass",
            "version": "1.2.3",
            "serviceId": "accountservice",
            "description": "accounts",
            "checks": {"database:responseTime": [{"status": "pass"}]}
        })
    );
    app.database_fails().await;
    let answer = call(&app.router, Method::GET, "/health/ready", Some(HEALTH_JSON)).await;
    assert_eq!(answer.json()["status"], "fail");
    assert_eq!(answer.json()["output"], "database: read failed");
    assert_eq!(
        answer.json()["checks"]["database:responseTime"],
        json!([{"status": "fail", "output": "read failed"}])
    );

    // always: observed values, time, and the detail in the output.
    let app = start(Details::Always).await;
    let answer = call(&app.router, Method::GET, "/health", Some(HEALTH_JSON)).await;
    let check = &answer.json()["checks"]["database:responseTime"][0];
    assert_eq!(check["status"], "pass");
    assert_eq!(check["observedValue"], 1.5);
    assert_eq!(check["observedUnit"], "ms");
    assert!(check["time"].as_str().unwrap().ends_with('Z'));
    assert!(
        check.get("output").is_none(),
        "a passing check has no output"
    );
    app.database_fails().await;
    let answer = call(&app.router, Method::GET, "/health", Some(HEALTH_JSON)).await;
    assert_eq!(
        answer.json()["checks"]["database:responseTime"][0]["output"],
        "read failed: open /var/lib/accounts.db: I/O error"
    );
}

#[tokio::test(start_paused = true)]
async fn plain_json_is_the_default_for_every_other_accept_header() {
    let app = start(Details::Components).await;
    for accept in [
        "*/*",
        "application/json",
        "text/html",
        "application/json, application/health+json;q=0.5",
    ] {
        let answer = call(&app.router, Method::GET, "/health", Some(accept)).await;
        assert_eq!(
            answer.header("content-type"),
            "application/json",
            "{accept}"
        );
        assert_eq!(answer.json()["status"], "UP");
    }
}

#[tokio::test(start_paused = true)]
async fn a_cached_answer_turns_503_when_its_result_turns_stale() {
    let app = start(Details::Components).await;
    assert_eq!(get(&app.router, "/health").await.status, StatusCode::OK);

    // No refresher runs: nothing is published, only time passes.
    advance(app.health.staleness() - Duration::from_millis(1)).await;
    assert_eq!(get(&app.router, "/health").await.status, StatusCode::OK);
    advance(Duration::from_millis(1)).await;
    let answer = get(&app.router, "/health").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.json()["reason"],
        "database: stale: last result 4s old"
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_round_shows_on_the_next_probe() {
    let app = start(Details::Components).await;
    assert_eq!(get(&app.router, "/readyz").await.status, StatusCode::OK);
    app.database_fails().await;
    assert_eq!(
        get(&app.router, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    app.database.set(healthy_database());
    app.health.refresh_now().await;
    assert_eq!(get(&app.router, "/readyz").await.status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn probes_before_the_first_round_answer_503_not_checked_yet() {
    let health = Health::builder()
        .check(Switch::up().check("database"))
        .build()
        .unwrap();
    let router = router(health, HttpOptions::default());
    let answer = get(&router, "/health/ready").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json()["status"], "OUT_OF_SERVICE");
    assert_eq!(answer.json()["reason"], "database: not checked yet");
}
