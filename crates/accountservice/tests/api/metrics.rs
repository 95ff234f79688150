//! `/metrics`: Prometheus text with request counts by route and the health components, or
//! OpenMetrics when the scraper asks for it.

use reqwest::header;

use crate::helpers::{spawn_app, spawn_app_configured};

#[tokio::test]
async fn requests_and_health_checks_are_counted_by_route_template() {
    let app = spawn_app().await;
    app.get_account("10000").await;
    app.get_account("10001").await;
    app.get("/nope").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    for expected in [
        "# TYPE http_requests_total counter\n",
        r#"http_requests_total{method="GET",route="/accounts/{account_id}",status="200"} 2"#,
        r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"health_check_status{component="database",status="UP"} 1"#,
        r#"health_check_status{component="database",status="DOWN"} 0"#,
        r#"health_status{scope="readiness",status="UP"} 1"#,
        "health_check_duration_seconds{component=\"database\"}",
        "health_check_timeout_seconds{component=\"database\"} 1",
        // The embedded file is the replica's own: a restart can cure its failure.
        r#"health_check_curable_by_restart{component="database"} 1"#,
        "\nprocess_start_time_seconds ",
        "\nprocess_open_fds ",
        "accountservice_build_info{version=",
        // The first round: from OUT_OF_SERVICE ("not checked yet") to UP.
        r#"health_transitions_total{component="database",status="UP"} 1"#,
        r#"health_transitions_total{component="database",status="DOWN"} 0"#,
        r#"health_transitions_total{component="readiness",status="UP"} 1"#,
    ] {
        assert!(text.contains(expected), "missing {expected}\n{text}");
    }
    assert!(!text.contains("# EOF"), "{text}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_scraper_that_prefers_openmetrics_gets_openmetrics() {
    let app = spawn_app().await;
    app.get_account("10000").await;
    // What Prometheus 2 sends.
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                  version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let response = app
        .client
        .get(format!("http://{}/metrics", app.address))
        .header(header::ACCEPT, accept)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert_eq!(response.headers()[header::VARY], "accept");
    let text = response.text().await.unwrap();
    assert!(text.contains("# TYPE http_requests counter\n"), "{text}");
    assert!(
        text.contains(
            r#"http_requests_total{method="GET",route="/accounts/{account_id}",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn health_transitions_are_counted_by_component_and_new_status() {
    let app = spawn_app_configured(|s| s.testability = true).await;
    app.get("/testability/healthy/false").await;
    app.get("/testability/healthy/true").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    for expected in [
        r#"health_transitions_total{component="overall",status="DOWN"} 1"#,
        // The first round, then the recovery.
        r#"health_transitions_total{component="overall",status="UP"} 2"#,
        r#"health_transitions_total{component="testability",status="DOWN"} 1"#,
        r#"health_transitions_total{component="database",status="DOWN"} 0"#,
    ] {
        assert!(text.contains(expected), "missing {expected}\n{text}");
    }
    app.stop().await.unwrap();
}
