//! `GET /health/history` of the running service: its identity, and the transitions an operator's
//! switch leaves behind.

use health::http::Details;
use serde_json::Value;

use crate::helpers::spawn_app_configured;

#[tokio::test]
async fn the_history_names_the_replica_and_records_a_forced_failure_and_its_recovery() {
    let app = spawn_app_configured(|s| s.testability = true).await;
    let (_, account) = app.get_json("/accounts/10000").await;

    let (status, before) = app.get_json("/health/history").await;
    assert_eq!(status, 200);
    assert_eq!(before["instance"], account["servedBy"], "{before}");
    assert_eq!(before["address"], app.address.to_string());
    assert_eq!(before["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(before["status"], "UP");
    // The first round took the database out of "not checked yet" before the listener opened.
    let first = before["transitions"].as_array().unwrap();
    assert!(
        first
            .iter()
            .any(|t| t["component"] == "database" && t["from"] == "OUT_OF_SERVICE"),
        "{before}"
    );
    assert!(before["startedAt"].as_str().unwrap() <= before["since"].as_str().unwrap());

    app.get_json("/testability/healthy/false").await;
    let (_, down) = app.get_json("/health/history").await;
    assert_eq!(down["status"], "DOWN");
    assert_eq!(down["reason"], "testability: forced unhealthy");
    let newest: Vec<(&Value, &Value, &Value)> = down["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .take(4)
        .map(|t| {
            (
                &t["to"],
                &t["reason"],
                t.get("component").unwrap_or(&t["scope"]),
            )
        })
        .collect();
    assert_eq!(
        newest,
        [
            (
                &"DOWN".into(),
                &"testability: forced unhealthy".into(),
                &"readiness".into()
            ),
            (
                &"DOWN".into(),
                &"testability: forced unhealthy".into(),
                &"liveness".into()
            ),
            (
                &"DOWN".into(),
                &"testability: forced unhealthy".into(),
                &"overall".into()
            ),
            (
                &"DOWN".into(),
                &"forced unhealthy".into(),
                &"testability".into()
            ),
        ]
    );
    assert_eq!(down["since"], down["transitions"][2]["at"]);

    app.get_json("/testability/healthy/true").await;
    let (_, up) = app.get_json("/health/history").await;
    assert_eq!(up["status"], "UP");
    assert_eq!(up["transitions"][3]["component"], "testability");
    assert_eq!(up["transitions"][3]["to"], "UP");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn with_details_never_the_history_names_no_component() {
    let app = spawn_app_configured(|s| {
        s.testability = true;
        s.health_details = Details::Never;
    })
    .await;
    app.get_json("/testability/healthy/false").await;
    let (status, body) = app.get_json("/health/history").await;
    assert_eq!(status, 200);
    let (_, health) = app.get_json("/health").await;
    assert_eq!(body["reason"], health["reason"]);
    let transitions = body["transitions"].as_array().unwrap();
    assert!(!transitions.is_empty());
    assert!(
        transitions.iter().all(|t| t.get("component").is_none()),
        "{body}"
    );
    app.stop().await.unwrap();
}
