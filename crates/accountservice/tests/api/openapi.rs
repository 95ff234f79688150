//! `/openapi.json`: served, valid JSON, and every documented operation is really routed.

use reqwest::Method;

use crate::helpers::spawn_app_configured;

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = spawn_app_configured(|s| {
        s.testability = true;
        // A fleet of one peer that refuses connections: the view still answers at once.
        s.peers = Some("127.0.0.1:9".parse().expect("a peer list"));
    })
    .await;
    let (status, document) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 16, "{paths:?}");
    for (path, operations) in paths {
        // Fill path parameters with a value every route accepts.
        let concrete = path
            .replace("{accountId}", "10042")
            .replace("{component}", "database")
            .replace(
                "{state}",
                if path.contains("database") {
                    "up"
                } else {
                    "true"
                },
            );
        for method in operations.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app.request(method.clone(), &concrete).await;
            assert_eq!(
                response.status(),
                200,
                "documented {method} {path} is not routed"
            );
        }
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn without_testability_or_peers_their_operations_are_not_documented() {
    let app = spawn_app_configured(|_| {}).await;
    let (_, document) = app.get_json("/openapi.json").await;
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.keys().all(|path| !path.starts_with("/testability")));
    assert!(!paths.contains_key("/health/fleet"), "{paths:?}");
    assert!(!paths.contains_key("/status"), "{paths:?}");
    assert!(paths.contains_key("/accounts/{accountId}"));
    app.stop().await.unwrap();
}
