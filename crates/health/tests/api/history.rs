//! `GET /health/history` through the router: identity, current status and since when, the
//! transitions newest first and bounded, and what `--health-details never` hides.

use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::http::{Method, StatusCode};
use health::http::{Details, HttpOptions, Identity, router};
use health::{CheckOutcome, Health, Probes, Status};
use serde_json::{Value, json};
use tokio::time::advance;

use crate::helpers::{Switch, call, get};

struct App {
    health: Health,
    router: Router,
    database: Switch,
}

fn options(details: Details) -> HttpOptions {
    HttpOptions {
        details,
        service_id: "accountservice".into(),
        version: "1.2.3".into(),
        identity: Identity {
            instance: "10.0.1.5".into(),
            address: Some("10.0.1.5:6767".into()),
            started_at: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            slot: Some(2),
        },
        ..HttpOptions::default()
    }
}

async fn start(details: Details) -> App {
    let database = Switch::up();
    let health = Health::builder()
        .check(database.check("database"))
        .build()
        .unwrap();
    health.refresh_now().await;
    App {
        router: router(health.clone(), options(details)),
        health,
        database,
    }
}

async fn history(app: &App) -> Value {
    let answer = get(&app.router, "/health/history").await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "always 200: a record, not a probe"
    );
    assert_eq!(answer.header("content-type"), "application/json");
    assert_eq!(answer.header("cache-control"), "no-store");
    answer.json()
}

fn is_rfc3339_utc(s: &str) -> bool {
    // 2026-12-02T13:00:00.123Z
    s.len() == 24 && s.as_bytes()[10] == b'T' && s.ends_with('Z')
}

#[tokio::test(start_paused = true)]
async fn the_history_says_who_the_replica_is_and_lists_its_changes_newest_first() {
    let app = start(Details::Components).await;
    app.database
        .set(CheckOutcome::down("read failed").with_detail("I/O error on /var/db"));
    app.health.refresh_now().await;

    let body = history(&app).await;
    assert_eq!(body["instance"], "10.0.1.5");
    assert_eq!(body["address"], "10.0.1.5:6767");
    assert_eq!(body["version"], "1.2.3");
    assert_eq!(body["startedAt"], "2023-11-14T22:13:20.000Z");
    assert_eq!(body["slot"], 2);
    assert_eq!(body["status"], "DOWN");
    assert_eq!(body["reason"], "database: read failed");
    let transitions = body["transitions"].as_array().unwrap();
    // Three out of "not checked yet", three into DOWN (database, overall, readiness).
    assert_eq!(transitions.len(), 6);
    let first_three: Vec<Value> = transitions[..3]
        .iter()
        .map(|t| {
            let mut t = t.clone();
            let at = t.as_object_mut().unwrap().remove("at").unwrap();
            assert!(is_rfc3339_utc(at.as_str().unwrap()), "{at}");
            t
        })
        .collect();
    assert_eq!(
        first_three,
        [
            json!({"scope": "readiness", "from": "UP", "to": "DOWN", "reason": "database: read failed"}),
            json!({"scope": "overall", "from": "UP", "to": "DOWN", "reason": "database: read failed"}),
            json!({"component": "database", "from": "UP", "to": "DOWN", "reason": "read failed"}),
        ]
    );
    assert_eq!(transitions[5]["component"], "database");
    assert_eq!(transitions[5]["from"], "OUT_OF_SERVICE");
    assert_eq!(transitions[5]["reason"], Value::Null);
    assert_eq!(
        body["since"], transitions[1]["at"],
        "since the overall change"
    );
    assert!(
        !body.to_string().contains("I/O error"),
        "internal details never show"
    );
}

#[tokio::test(start_paused = true)]
async fn with_details_never_only_the_scopes_changes_show() {
    let app = start(Details::Never).await;
    app.database.set(CheckOutcome::down("read failed"));
    app.health.refresh_now().await;

    let body = history(&app).await;
    // The same reason /health gives at this level.
    let health = get(&app.router, "/health").await.json();
    assert_eq!(body["reason"], health["reason"]);
    let transitions = body["transitions"].as_array().unwrap();
    assert!(!transitions.is_empty());
    assert!(
        transitions
            .iter()
            .all(|t| t.get("scope").is_some() && t.get("component").is_none()),
        "{transitions:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_never_changed_is_up_since_it_started() {
    let health = Health::builder().build().unwrap();
    let app: Router = router(health, options(Details::Components));
    let body = get(&app, "/health/history").await.json();
    assert_eq!(body["status"], "UP");
    assert_eq!(body["reason"], Value::Null);
    assert_eq!(body["since"], body["startedAt"]);
    assert_eq!(body["transitions"], json!([]));
}

#[tokio::test(start_paused = true)]
async fn without_an_identity_the_service_id_names_the_replica_and_the_address_is_null() {
    let health = Health::builder().build().unwrap();
    let before = std::time::SystemTime::now();
    let app: Router = router(
        health.clone(),
        HttpOptions {
            service_id: "svc".into(),
            ..HttpOptions::default()
        },
    );
    let body = get(&app, "/health/history").await.json();
    assert_eq!(body["instance"], "svc");
    assert_eq!(body["address"], Value::Null);
    assert!(body.get("slot").is_none(), "no slot, no field: {body}");
    assert!(is_rfc3339_utc(body["startedAt"].as_str().unwrap()));
    assert!(health.created_at() <= before);
}

#[tokio::test(start_paused = true)]
async fn the_history_holds_at_most_256_transitions_however_long_it_flaps() {
    let app = start(Details::Components).await;
    for i in 0..200 {
        let status = if i % 2 == 0 { Status::Down } else { Status::Up };
        app.health
            .set_manual("switch", status, "flapping", Probes::READINESS);
    }
    let body = history(&app).await;
    assert_eq!(body["transitions"].as_array().unwrap().len(), 256);
    assert_eq!(body["transitions"][0]["scope"], "readiness");
    assert_eq!(body["transitions"][0]["to"], "UP");
}

#[tokio::test(start_paused = true)]
async fn since_is_the_last_overall_change_however_many_component_changes_came_after_it() {
    let app = start(Details::Components).await;
    app.database.set(CheckOutcome::down("read failed"));
    app.health.refresh_now().await;
    let went_down = history(&app).await;
    assert_eq!(went_down["status"], "DOWN");
    let since = went_down["since"].clone();
    assert_ne!(since, went_down["startedAt"]);
    // Another component flaps while the overall status stays DOWN: enough changes to push the
    // overall one out of the ring.
    for i in 0..300 {
        let status = if i % 2 == 0 {
            Status::Degraded
        } else {
            Status::OutOfService
        };
        app.health
            .set_manual("flappy", status, "flapping", Probes::LIVENESS);
    }
    let body = history(&app).await;
    assert_eq!(body["status"], "DOWN");
    let transitions = body["transitions"].as_array().unwrap();
    assert!(
        transitions.iter().all(|t| t["scope"] != "overall"),
        "the overall change is still in the ring: the test shows nothing"
    );
    assert_eq!(body["since"], since, "{body}");
}

#[tokio::test(start_paused = true)]
async fn asking_for_the_history_records_a_result_that_turned_stale() {
    let app = start(Details::Components).await;
    advance(app.health.staleness()).await;
    let body = history(&app).await;
    assert_eq!(body["status"], "DOWN");
    assert_eq!(body["transitions"][2]["component"], "database");
    assert_eq!(
        body["transitions"][2]["reason"],
        "stale: last result 4s old"
    );
}

#[tokio::test(start_paused = true)]
async fn head_answers_the_history_headers_without_a_body() {
    let app = start(Details::Components).await;
    let head = call(&app.router, Method::HEAD, "/health/history", None).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("cache-control"), "no-store");
    assert!(head.body.is_empty());
}
