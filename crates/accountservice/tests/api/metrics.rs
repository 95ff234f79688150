//! `/metrics`: Prometheus text with request counts by route and the health components.

use reqwest::header;

use crate::helpers::spawn_app;

#[tokio::test]
async fn requests_and_health_checks_are_counted_by_route_template() {
    let app = spawn_app().await;
    app.get_account("10000").await;
    app.get_account("10001").await;
    app.get("/nope").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    for expected in [
        r#"http_requests_total{method="GET",route="/accounts/{account_id}",status="200"} 2"#,
        r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"health_check_status{component="database",status="UP"} 1"#,
        r#"health_check_status{component="database",status="DOWN"} 0"#,
        r#"health_status{scope="readiness",status="UP"} 1"#,
        "health_check_duration_seconds{component=\"database\"}",
    ] {
        assert!(text.contains(expected), "missing {expected}\n{text}");
    }
    app.stop().await.unwrap();
}
