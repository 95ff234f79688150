//! Start-up and shutdown of `Application`: seeding, restarts, locks, binding, draining.

use std::{net::TcpListener, time::Duration, time::Instant};

use accountservice::{
    domain::{Account, AccountId},
    startup::{Application, StartupError, Stopped},
    store::{AccountStore as _, RedbStore, Store, StoreError},
};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    SlowApp, TIMEOUT, http_client, serve_with_slow_route, settings, spawn_app, spawn_app_with,
};

#[tokio::test]
async fn shutdown_of_a_healthy_instance_returns_healthy_and_closes_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("accounts.db");
    let app = spawn_app_with(settings(&db_path)).await;
    assert_eq!(app.get_account("10000").await.status(), StatusCode::OK);
    let address = app.address;
    assert_eq!(app.stop().await.unwrap(), Stopped::Healthy);
    // The lock is released: the file opens at once.
    RedbStore::open(&db_path, Duration::ZERO).unwrap();
    // And nothing listens any more.
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
}

#[tokio::test]
async fn a_keep_alive_client_does_not_hold_up_shutdown() {
    let app = spawn_app().await;
    // reqwest keeps the connection open in its pool after this request.
    assert_eq!(app.get_account("10000").await.status(), StatusCode::OK);
    let started = Instant::now();
    app.stop().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_restart_keeps_data_and_seeds_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.db");
    spawn_app_with(settings(&path)).await.stop().await.unwrap();

    let mut more = settings(&path);
    more.seed_accounts = 150;
    let app = spawn_app_with(more).await;
    assert_eq!(app.get_account("10149").await.status(), StatusCode::OK);
    app.stop().await.unwrap();

    let store = RedbStore::open(&path, Duration::ZERO).unwrap();
    assert_eq!(store.check().unwrap(), 150);
}

#[tokio::test]
async fn seeding_never_overwrites_an_account_already_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.db");
    let store = RedbStore::open(&path, Duration::ZERO).unwrap();
    let renamed = Account {
        id: "10042".into(),
        name: "Grace Hopper".into(),
    };
    store.seed(std::slice::from_ref(&renamed)).unwrap();
    store.close().unwrap();

    let app = spawn_app_with(settings(&path)).await;
    let json: Value = app.get_account("10042").await.json().await.unwrap();
    assert_eq!(json["name"], "Grace Hopper");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn seed_zero_starts_with_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut empty = settings(&dir.path().join("accounts.db"));
    empty.seed_accounts = 0;
    let app = spawn_app_with(empty).await;
    assert_eq!(
        app.get_account("10000").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_account("10000").await.status(),
        StatusCode::NOT_FOUND
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_second_application_on_the_same_file_fails_fast() {
    let app = spawn_app().await;
    let started = Instant::now();
    let result = Application::build(&settings(&app.db_path)).await;
    assert!(
        matches!(
            result,
            Err(StartupError::Store(StoreError::AlreadyOpen { .. }))
        ),
        "{:?}",
        result.err()
    );
    assert!(started.elapsed() < TIMEOUT);
    // The first instance is unaffected.
    assert_eq!(app.get_account("10000").await.status(), StatusCode::OK);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_port_in_use_is_a_bind_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut clash = settings(&dir.path().join("accounts.db"));
    clash.port = taken.local_addr().unwrap().port();
    let error = Application::build(&clash).await.err().unwrap();
    assert!(matches!(error, StartupError::Bind { .. }), "{error:?}");
    assert!(error.to_string().starts_with("cannot listen on 127.0.0.1:"));
}

#[tokio::test]
async fn application_state_exposes_the_store_for_health_checks() {
    let dir = tempfile::tempdir().unwrap();
    let application = Application::build(&settings(&dir.path().join("accounts.db")))
        .await
        .unwrap();
    let state = application.state();
    let Store::Embedded(store) = &state.store else {
        panic!("without --database-url the store is the embedded one");
    };
    assert_eq!(store.check().unwrap(), 100);
    let id = AccountId::parse("10001").unwrap();
    assert_eq!(state.store.get(&id).await.unwrap(), Some(Account::fake(1)));
}

#[tokio::test]
async fn an_in_flight_request_completes_during_the_drain() {
    let dir = tempfile::tempdir().unwrap();
    let slow = serve_with_slow_route(&settings(&dir.path().join("accounts.db"))).await;
    let request = slow.slow_request(&http_client()).await;
    let SlowApp {
        address,
        stop,
        mut server,
        release,
        ..
    } = slow;

    stop.send(()).unwrap();
    // Draining: the server waits for the request instead of returning.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut server)
            .await
            .is_err(),
        "the server stopped with a request in flight"
    );
    // New connections are no longer accepted.
    assert!(tokio::net::TcpStream::connect(address).await.is_err());

    release.notify_one();
    let response = request.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "done");
    tokio::time::timeout(TIMEOUT, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_drain_gives_up_after_the_shutdown_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut short = settings(&dir.path().join("accounts.db"));
    short.shutdown_timeout = Some(Duration::from_millis(300));
    let slow = serve_with_slow_route(&short).await;
    let _stuck = slow.slow_request(&http_client()).await;
    let SlowApp { stop, server, .. } = slow;

    let begun = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(TIMEOUT, server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let took = begun.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}
