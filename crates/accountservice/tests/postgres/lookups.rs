//! Lookups over PostgreSQL answer exactly as over the redb file, on the same data.

use crate::{
    app::{self, database, shared, spawn_over},
    pg::PASSWORD,
};

/// Paths whose answers both backends must give byte for byte.
const PATHS: &[&str] = &[
    "/accounts/10000",
    "/accounts/10042",
    "/accounts/10099",
    "/accounts/10100",
    "/accounts/99999",
    "/accounts/abc",
    "/accounts/%FF",
    "/accounts/100%0A42",
    "/accounts/'%20OR%201=1--",
    "/accounts/1111111111111111111111111111111111111111111111111111111111111111111",
];

#[tokio::test]
async fn lookups_and_errors_equal_the_redb_backends_on_the_same_data() {
    let server = shared();
    let db = server.create_database("lookups");
    let postgres = spawn_over(&server.url(&db), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let redb = app::spawn(app::settings(dir.path(), None, &[]), dir).await;
    for path in PATHS {
        let over_postgres = postgres.get(path).await;
        let over_redb = redb.get(path).await;
        assert_eq!(over_postgres, over_redb, "{path}");
    }
    assert_eq!(postgres.get("/accounts/10042").await.0, 200);
    postgres.stop().await;
    redb.stop().await;
}

#[tokio::test]
async fn health_names_the_backend_and_the_pool_and_never_the_password() {
    let server = shared();
    let db = server.create_database("health");
    let app = spawn_over(&server.url(&db), &[]).await;
    let (status, body) = app.health().await;
    assert_eq!(status, 200, "{body}");
    let component = database(&body);
    assert_eq!(component["status"], "UP", "{body}");
    let detail = component.to_string();
    assert!(
        detail.contains("postgresql postgres://postgres:***@127.0.0.1:"),
        "{detail}"
    );
    assert!(
        detail.contains("pool size 1 of 16, idle 1, waiting 0"),
        "{detail}"
    );
    for path in ["/health", "/metrics", "/health/history", "/readyz"] {
        let (_, body) = app.get(path).await;
        assert!(
            !body.contains(PASSWORD),
            "{path} shows the password: {body}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn seeding_twice_keeps_existing_rows_and_writes_only_the_missing() {
    let server = shared();
    let db = server.create_database("reseed");
    let first = spawn_over(&server.url(&db), &["--seed-accounts", "50"]).await;
    first.stop().await;
    server.psql(
        &db,
        "UPDATE accounts SET name = 'Renamed' WHERE id = '10042'",
    );
    let second = spawn_over(&server.url(&db), &["--seed-accounts", "100"]).await;
    assert_eq!(server.psql(&db, "SELECT count(*) FROM accounts"), "100");
    let (status, body) = second.get("/accounts/10042").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"name\":\"Renamed\""), "{body}");
    assert_eq!(
        server.psql(&db, "SELECT count(*) FROM accountservice_schema"),
        "1"
    );
    second.stop().await;
}

#[tokio::test]
async fn metrics_show_the_pool_by_state_its_waits_durations_and_errors_by_cause() {
    let server = shared();
    let db = server.create_database("metrics");
    let app = spawn_over(&server.url(&db), &[]).await;
    for id in ["10001", "10002", "99999"] {
        app.get(&format!("/accounts/{id}")).await;
    }
    let (status, text) = app.get("/metrics").await;
    assert_eq!(status, 200);
    for series in [
        "accountservice_db_pool_connections{state=\"idle\"} ",
        "accountservice_db_pool_connections{state=\"busy\"} ",
        "accountservice_db_pool_max_connections 16",
        "accountservice_db_pool_waiting 0",
        "accountservice_db_pool_waits_total ",
        "accountservice_db_acquire_duration_seconds_count ",
        "accountservice_db_query_duration_seconds_count ",
    ] {
        assert!(text.contains(series), "no {series} in:\n{text}");
    }
    // A failure is counted by its cause: the table is gone.
    server.psql(&db, "ALTER TABLE accounts RENAME TO gone");
    assert_eq!(app.get("/accounts/10001").await.0, 503);
    let (_, text) = app.get("/metrics").await;
    assert!(
        text.contains("accountservice_db_errors_total{cause=\"schema missing\"} "),
        "{text}"
    );
    server.psql(&db, "ALTER TABLE gone RENAME TO accounts");
    app.stop().await;
}
