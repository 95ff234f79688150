//! What a failure a restart cannot cure does to each scope, over HTTP and gRPC's scope names:
//! `/health` fails, the restart signal (liveness) and readiness do not, and a failure a restart
//! can cure fails every probe the check takes part in.

use axum::Router;
use axum::http::StatusCode;
use health::http::{Details, HttpOptions, router};
use health::{CheckOutcome, Curability, Health, Probes, Scope, Status};
use tokio::time::advance;

use crate::helpers::{Switch, get};

struct App {
    health: Health,
    router: Router,
    database: Switch,
}

/// A `database` check in both probes, declaring `curability`.
async fn start(curability: Curability) -> App {
    let database = Switch::up();
    let health = Health::builder()
        .check(
            database
                .check("database")
                .probes(Probes::ALL)
                .curability(curability),
        )
        .build()
        .unwrap();
    health.refresh_now().await;
    let options = HttpOptions {
        details: Details::Always,
        ..HttpOptions::default()
    };
    let router = router(health.clone(), options);
    App {
        health,
        router,
        database,
    }
}

impl App {
    async fn database_fails(&self) {
        self.database.set(CheckOutcome::down("connection refused"));
        self.health.refresh_now().await;
    }

    async fn codes(&self) -> [StatusCode; 5] {
        let mut codes = [StatusCode::OK; 5];
        for (code, path) in codes.iter_mut().zip([
            "/health",
            "/health/live",
            "/livez",
            "/health/ready",
            "/readyz",
        ]) {
            *code = get(&self.router, path).await.status;
        }
        codes
    }
}

const FAIL: StatusCode = StatusCode::SERVICE_UNAVAILABLE;
const PASS: StatusCode = StatusCode::OK;

#[tokio::test(start_paused = true)]
async fn a_failure_a_restart_can_cure_fails_health_liveness_and_readiness() {
    let app = start(Curability::Restart).await;
    assert_eq!(app.codes().await, [PASS; 5]);
    app.database_fails().await;
    assert_eq!(app.codes().await, [FAIL; 5]);
    let live = get(&app.router, "/health/live").await.json();
    assert_eq!(live["reason"], "database: connection refused");
}

#[tokio::test(start_paused = true)]
async fn a_failure_a_restart_cannot_cure_fails_health_but_neither_liveness_nor_readiness() {
    let app = start(Curability::NotByRestart).await;
    app.database_fails().await;
    assert_eq!(app.codes().await, [FAIL, PASS, PASS, PASS, PASS]);

    let overall = get(&app.router, "/health").await.json();
    assert_eq!(overall["status"], "DOWN");
    assert_eq!(overall["reason"], "database: connection refused");
    for path in ["/health/live", "/health/ready"] {
        let body = get(&app.router, path).await.json();
        assert_eq!(body["status"], "DEGRADED", "{path}");
        assert_eq!(body["reason"], "database: connection refused", "{path}");
        assert_eq!(body["components"]["database"]["status"], "DOWN", "{path}");
    }
    // The same reports behind gRPC's `liveness` and `readiness` service names.
    assert_eq!(app.health.report(Scope::Liveness).status, Status::Degraded);
    assert_eq!(app.health.report(Scope::Readiness).http_status(), 200);
    assert_eq!(app.health.report(Scope::Overall).http_status(), 503);
}

#[tokio::test(start_paused = true)]
async fn the_details_say_whether_a_restart_can_cure_each_component() {
    let app = start(Curability::NotByRestart).await;
    app.health
        .set_manual("lifecycle", Status::Up, "serving", Probes::READINESS);
    let body = get(&app.router, "/health").await.json();
    let components = &body["components"];
    assert_eq!(components["database"]["details"]["curableByRestart"], false);
    assert_eq!(components["lifecycle"]["details"]["curableByRestart"], true);

    let app = start(Curability::Restart).await;
    let body = get(&app.router, "/health").await.json();
    assert_eq!(
        body["components"]["database"]["details"]["curableByRestart"],
        true
    );
}

#[tokio::test(start_paused = true)]
async fn a_stale_result_fails_liveness_whatever_the_check_declares() {
    let app = start(Curability::NotByRestart).await;
    // No refresher runs: the result ages until it is stale, which is this process's fault.
    advance(app.health.staleness()).await;
    assert_eq!(app.codes().await, [FAIL; 5]);
    let live = get(&app.router, "/health/live").await.json();
    assert_eq!(
        live["components"]["database"]["details"]["curableByRestart"],
        true
    );
}

#[tokio::test(start_paused = true)]
async fn readiness_stays_out_until_a_check_a_restart_cannot_cure_has_run() {
    let database = Switch::up();
    let health = Health::builder()
        .check(
            database
                .check("database")
                .probes(Probes::ALL)
                .curability(Curability::NotByRestart),
        )
        .build()
        .unwrap();
    let router = router(health.clone(), HttpOptions::default());
    assert_eq!(get(&router, "/health/ready").await.status, FAIL);
    health.refresh_now().await;
    assert_eq!(get(&router, "/health/ready").await.status, PASS);
}

#[tokio::test(start_paused = true)]
async fn a_manual_component_fails_the_probes_it_names_beside_a_failure_no_restart_cures() {
    // How a service that proved the fault is its own takes itself out: readiness first, then
    // the restart signal.
    let app = start(Curability::NotByRestart).await;
    app.database_fails().await;
    app.health
        .set_manual("outage", Status::Down, "local fault", Probes::READINESS);
    assert_eq!(app.codes().await, [FAIL, PASS, PASS, FAIL, FAIL]);
    app.health
        .set_manual("outage", Status::Down, "local fault", Probes::ALL);
    assert_eq!(app.codes().await, [FAIL; 5]);
    app.health.clear_manual("outage");
    assert_eq!(app.codes().await, [FAIL, PASS, PASS, PASS, PASS]);
}

#[tokio::test(start_paused = true)]
async fn excluding_a_component_keeps_the_scope_s_rule() {
    let app = start(Curability::NotByRestart).await;
    app.database_fails().await;
    app.health
        .set_manual("cache", Status::Up, "warm", Probes::READINESS);
    let answer = get(&app.router, "/health/ready?exclude=cache").await;
    assert_eq!(answer.status, PASS);
    assert_eq!(answer.json()["status"], "DEGRADED");
}

#[tokio::test(start_paused = true)]
async fn the_history_lists_each_component_with_whether_a_restart_can_cure_it() {
    let app = start(Curability::NotByRestart).await;
    app.database_fails().await;
    app.health
        .set_manual("outage", Status::Degraded, "shared outage", Probes::ALL);
    let body = get(&app.router, "/health/history").await.json();
    assert_eq!(
        body["components"],
        serde_json::json!({
            "database": {"status": "DOWN", "curableByRestart": false},
            "outage": {"status": "DEGRADED", "curableByRestart": true},
        })
    );

    let never = router(
        app.health.clone(),
        HttpOptions {
            details: Details::Never,
            ..HttpOptions::default()
        },
    );
    let body = get(&never, "/health/history").await.json();
    assert!(body.get("components").is_none(), "{body}");
}
