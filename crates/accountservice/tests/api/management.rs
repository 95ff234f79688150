//! The management port: which routes answer on which port with and without it, its
//! configuration errors, and its part in the shutdown.

use std::{net::SocketAddr, time::Instant};

use accountservice::startup::{Application, StartupError};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    SlowApp, TIMEOUT, TestApp, http_client, serve_with_slow_route, settings, spawn_app_configured,
};

/// Every operator route, with testability and a fleet (of one unreachable peer) switched on.
const OPERATOR_PATHS: [&str; 11] = [
    "/health/live",
    "/health/ready",
    "/livez",
    "/readyz",
    "/health/history",
    "/metrics",
    "/health/fleet",
    "/status",
    "/testability/healthy/true",
    "/testability/database/up",
    "/health",
];

/// A service with a management port, testability and a fleet view on.
async fn spawn_with_management() -> TestApp {
    spawn_app_configured(|s| {
        s.management_port = Some(0);
        s.testability = true;
        s.peers = Some("127.0.0.1:9".parse().expect("a peer list"));
    })
    .await
}

async fn status_of(app: &TestApp, address: SocketAddr, path: &str) -> StatusCode {
    app.client
        .get(format!("http://{address}{path}"))
        .send()
        .await
        .expect("request failed")
        .status()
}

#[tokio::test]
async fn with_a_management_port_the_public_port_keeps_accounts_openapi_and_health_only() {
    let app = spawn_with_management().await;
    let management = app.management.expect("a management port");
    assert_ne!(management, app.address);

    assert_eq!(app.get_account("10000").await.status(), StatusCode::OK);
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
    let head = app.request(reqwest::Method::HEAD, "/health").await;
    assert_eq!(head.status(), StatusCode::OK);
    let post = app.request(reqwest::Method::POST, "/health").await;
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    for path in &OPERATOR_PATHS[..OPERATOR_PATHS.len() - 1] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "public {path}");
        let body: Value = response.json().await.expect("a JSON 404");
        assert!(body["error"].is_string(), "public {path}: {body}");
    }

    // The public document lists exactly what the public port serves.
    let (status, document) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    let mut paths: Vec<&str> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/accounts/{accountId}", "/health", "/openapi.json"]);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn with_a_management_port_it_serves_every_operator_route_and_no_account() {
    let app = spawn_with_management().await;
    let management = app.management.unwrap();
    for path in OPERATOR_PATHS {
        assert_eq!(
            status_of(&app, management, path).await,
            StatusCode::OK,
            "management {path}"
        );
    }
    let metrics = app.get_management("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("health_status"),
        "{}",
        &metrics[..metrics.len().min(500)]
    );
    for path in ["/accounts/10000", "/openapi.json", "/nothing"] {
        assert_eq!(
            status_of(&app, management, path).await,
            StatusCode::NOT_FOUND,
            "management {path}"
        );
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_switch_flipped_on_the_management_port_shows_on_the_public_health() {
    let app = spawn_with_management().await;
    let forced = app.get_management("/testability/healthy/false").await;
    assert_eq!(forced.status(), StatusCode::OK);
    assert_eq!(app.get("/health").await.status(), 503);
    assert_eq!(app.get_management("/health/ready").await.status(), 503);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_management_port_everything_stays_on_one_port() {
    let app = spawn_app_configured(|s| {
        s.testability = true;
        s.peers = Some("127.0.0.1:9".parse().expect("a peer list"));
    })
    .await;
    assert_eq!(app.management, None);
    for path in OPERATOR_PATHS {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "{path}");
    }
    assert_eq!(app.get_account("10000").await.status(), StatusCode::OK);
    let (_, document) = app.get_json("/openapi.json").await;
    assert!(document["paths"]["/metrics"].is_object());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_management_port_equal_to_the_public_port_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = settings(&dir.path().join("accounts.db"));
    settings.port = port;
    settings.management_port = Some(port);
    match Application::build(&settings).await {
        Err(error @ StartupError::SamePort { .. }) => {
            assert_eq!(
                error.to_string(),
                format!("the management port must differ from the public port ({port})")
            );
        }
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("the same port twice was accepted"),
    }
    assert!(!settings.db_path.exists(), "the database was opened");
}

#[tokio::test]
async fn a_management_port_in_use_is_refused_before_anything_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_address = taken.local_addr().unwrap();
    let mut settings = settings(&dir.path().join("accounts.db"));
    settings.management_port = Some(taken_address.port());
    match Application::build(&settings).await {
        Err(StartupError::Bind { address, .. }) => assert_eq!(address, taken_address),
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("a port in use was accepted"),
    }
    assert!(!settings.db_path.exists(), "the database was opened");
}

#[tokio::test]
async fn a_public_port_in_use_is_refused_before_the_management_port_serves() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut settings = settings(&dir.path().join("accounts.db"));
    settings.port = taken.local_addr().unwrap().port();
    settings.management_port = Some(0);
    assert!(matches!(
        Application::build(&settings).await,
        Err(StartupError::Bind { .. })
    ));
    assert!(!settings.db_path.exists(), "the database was opened");
}

#[tokio::test]
async fn the_management_port_answers_draining_until_the_public_port_has_drained() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(&dir.path().join("accounts.db"));
    settings.management_port = Some(0);
    // A public route that answers only when released holds the drain open.
    let slow = serve_with_slow_route(&settings).await;
    let client = http_client();
    let request = slow.slow_request(&client).await;
    let SlowApp {
        address,
        management,
        stop,
        mut server,
        release,
        ..
    } = slow;
    let management = management.expect("a management port");
    stop.send(()).unwrap();

    // While the public port drains, the management port says so.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let response = client
            .get(format!("http://{management}/health/ready"))
            .send()
            .await
            .expect("the management port stopped answering during the drain");
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        if status == StatusCode::SERVICE_UNAVAILABLE && body.to_string().contains("draining") {
            break;
        }
        assert!(Instant::now() < deadline, "never draining: {status} {body}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let live = client
        .get(format!("http://{management}/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK, "alive while draining");
    assert!(!server.is_finished(), "stopped before the drain ended");

    release.notify_one();
    let answer = request.await.unwrap().unwrap();
    assert_eq!(answer.text().await.unwrap(), "done");
    tokio::time::timeout(TIMEOUT, &mut server)
        .await
        .expect("the drain did not end")
        .unwrap()
        .unwrap();
    // Both listeners are closed, and the database with them.
    assert!(tokio::net::TcpStream::connect(management).await.is_err());
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
    accountservice::store::RedbStore::open(&settings.db_path, std::time::Duration::ZERO).unwrap();
}
