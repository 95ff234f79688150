//! The registry under tokio's paused clock: timeouts, concurrency, caching, staleness,
//! panics, manual components and the refresher's life cycle. No real sleeps.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use health::{CheckOutcome, Health, Probes, Scope, Status, check_fn};
use tokio::sync::oneshot;
use tokio::time::{Instant, advance, sleep};

use axum::http::StatusCode;

use crate::helpers::{Switch, get};

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn a_check_that_never_returns_is_down_when_its_timeout_expires() {
    let fast = Switch::up();
    let health = Health::builder()
        .check(check_fn("hangs", std::future::pending::<CheckOutcome>))
        .check(fast.check("fast"))
        .build()
        .unwrap();

    let started = Instant::now();
    health.refresh_now().await;

    assert_eq!(
        started.elapsed(),
        SECOND,
        "the round ends at the 1 s default timeout"
    );
    let report = health.report(Scope::Overall);
    let hung = &report.components["hangs"];
    assert_eq!(hung.status, Status::Down);
    assert_eq!(hung.reason.as_deref(), Some("timed out after 1s"));
    assert_eq!(report.components["fast"].status, Status::Up);
    assert_eq!(report.status, Status::Down);
    assert_eq!(report.reason.as_deref(), Some("hangs: timed out after 1s"));
}

#[tokio::test(start_paused = true)]
async fn each_check_runs_under_its_own_timeout() {
    let health = Health::builder()
        .timeout(Duration::from_secs(2))
        .check(
            check_fn("short", std::future::pending::<CheckOutcome>)
                .timeout(Duration::from_millis(250)),
        )
        .build()
        .unwrap();

    let started = Instant::now();
    health.refresh_now().await;

    assert_eq!(started.elapsed(), Duration::from_millis(250));
    let report = health.report(Scope::Overall);
    assert_eq!(
        report.components["short"].reason.as_deref(),
        Some("timed out after 250ms")
    );
}

#[tokio::test(start_paused = true)]
async fn checks_run_concurrently_so_a_round_takes_as_long_as_the_slowest() {
    let slow = |name: &str| {
        check_fn(name, || async {
            sleep(Duration::from_millis(600)).await;
            CheckOutcome::up().with_observed(600, "ms")
        })
    };
    let health = Health::builder()
        .check(slow("a"))
        .check(slow("b"))
        .check(slow("c"))
        .build()
        .unwrap();

    let started = Instant::now();
    health.refresh_now().await;

    assert_eq!(started.elapsed(), Duration::from_millis(600));
    let report = health.report(Scope::Overall);
    assert_eq!(report.status, Status::Up);
    assert_eq!(
        report.components["b"].duration,
        Some(Duration::from_millis(600))
    );
    assert_eq!(report.components["b"].observed_value, Some(600.into()));
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_probes_a_second_cost_each_dependency_one_check_per_interval() {
    let database = Switch::up();
    let health = Health::builder()
        .check(database.check("database"))
        .build()
        .unwrap();
    health.refresh_now().await;
    let refresher = health.spawn_refresher(std::future::pending());
    let router = health::http::router(health.clone(), health::http::HttpOptions::default());

    let started = Instant::now();
    let mut probes = tokio::task::JoinSet::new();
    while started.elapsed() < Duration::from_millis(5_500) {
        for path in [
            "/health",
            "/readyz",
            "/livez",
            "/health/ready",
            "/health/live",
        ] {
            for _ in 0..2 {
                let router = router.clone();
                probes.spawn(async move { get(&router, path).await.status });
            }
        }
        sleep(Duration::from_millis(10)).await;
    }
    let mut answered = 0;
    while let Some(status) = probes.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
        answered += 1;
    }

    assert_eq!(answered, 5_500);
    // One round from refresh_now, then one per tick at 1, 2, 3, 4 and 5 s.
    assert_eq!(database.runs(), 6);
    refresher.abort();
}

#[tokio::test(start_paused = true)]
async fn a_stopped_refresher_leaves_results_that_turn_stale_and_down() {
    let database = Switch::up();
    let health = Health::builder()
        .check(database.check("database"))
        .build()
        .unwrap();
    assert_eq!(health.staleness(), Duration::from_secs(4));
    health.refresh_now().await;
    let (stop, stopped) = oneshot::channel::<()>();
    let refresher = health.spawn_refresher(async move {
        let _ = stopped.await;
    });
    let _ = stop.send(());
    refresher.await.unwrap();

    advance(Duration::from_millis(3_999)).await;
    assert_eq!(health.report(Scope::Readiness).status, Status::Up);

    advance(Duration::from_millis(1)).await;
    let report = health.report(Scope::Readiness);
    assert_eq!(report.status, Status::Down);
    let database_report = &report.components["database"];
    assert_eq!(
        database_report.reason.as_deref(),
        Some("stale: last result 4s old")
    );
    assert_eq!(
        database_report.detail.as_deref(),
        Some("last result was UP")
    );
    assert_eq!(report.http_status(), 503);
    assert_eq!(database.runs(), 1, "the stopped refresher ran nothing");
}

#[tokio::test(start_paused = true)]
async fn a_running_refresher_keeps_results_fresh_and_follows_changes() {
    let database = Switch::up();
    let health = Health::builder()
        .check(database.check("database"))
        .build()
        .unwrap();
    health.refresh_now().await;
    let refresher = health.spawn_refresher(std::future::pending());

    for _ in 0..10 {
        sleep(SECOND).await;
        assert_eq!(health.report(Scope::Overall).status, Status::Up);
    }
    database.set(CheckOutcome::down("read failed").with_detail("disk I/O error"));
    sleep(Duration::from_millis(1_001)).await;
    let report = health.report(Scope::Overall);
    assert_eq!(report.status, Status::Down);
    assert_eq!(report.reason.as_deref(), Some("database: read failed"));
    assert_eq!(
        report.components["database"].detail.as_deref(),
        Some("disk I/O error")
    );

    database.set(CheckOutcome::up());
    sleep(SECOND).await;
    assert_eq!(health.report(Scope::Overall).status, Status::Up);
    refresher.abort();
}

#[tokio::test(start_paused = true)]
async fn a_panicking_check_is_down_and_the_refresher_keeps_running() {
    let panicked = Arc::new(AtomicBool::new(false));
    let once = Arc::clone(&panicked);
    let check = check_fn("flaky", move || {
        let first = !once.swap(true, Ordering::SeqCst);
        async move {
            assert!(!first, "boom on the first run");
            CheckOutcome::up()
        }
    });
    let health = Health::builder().check(check).build().unwrap();

    health.refresh_now().await;
    let report = health.report(Scope::Overall);
    let flaky = &report.components["flaky"];
    assert_eq!(flaky.status, Status::Down);
    assert_eq!(flaky.reason.as_deref(), Some("check panicked"));
    assert_eq!(flaky.detail.as_deref(), Some("boom on the first run"));

    let refresher = health.spawn_refresher(std::future::pending());
    sleep(Duration::from_millis(1_500)).await;
    assert_eq!(health.report(Scope::Overall).status, Status::Up);
    assert!(!refresher.is_finished());
    refresher.abort();
}

#[tokio::test(start_paused = true)]
async fn a_check_that_has_not_run_yet_is_out_of_service_not_healthy() {
    let health = Health::builder()
        .check(Switch::up().check("database"))
        .build()
        .unwrap();

    let report = health.report(Scope::Readiness);
    assert_eq!(report.status, Status::OutOfService);
    assert_eq!(report.http_status(), 503);
    assert_eq!(report.reason.as_deref(), Some("database: not checked yet"));
    assert_eq!(report.components["database"].checked_at, None);
    // Liveness holds no dependency: the process answers.
    assert_eq!(health.report(Scope::Liveness).status, Status::Up);
}

#[tokio::test(start_paused = true)]
async fn the_refresher_runs_at_once_when_nothing_has_run_and_stops_on_shutdown() {
    let database = Switch::up();
    let health = Health::builder()
        .check(database.check("database"))
        .build()
        .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let refresher = health.spawn_refresher(async move {
        let _ = stopped.await;
    });

    sleep(Duration::from_millis(1)).await;
    assert_eq!(database.runs(), 1, "first round at once");
    assert_eq!(health.report(Scope::Readiness).status, Status::Up);

    sleep(Duration::from_millis(2_500)).await;
    assert_eq!(database.runs(), 3);
    let _ = stop.send(());
    tokio::time::timeout(SECOND, refresher)
        .await
        .unwrap()
        .unwrap();
    sleep(Duration::from_secs(3)).await;
    assert_eq!(database.runs(), 3, "no round after shutdown");
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_a_round_in_progress() {
    let health = Health::builder()
        .timeout(Duration::from_secs(10))
        .staleness(Duration::from_secs(60))
        .check(check_fn("hangs", std::future::pending::<CheckOutcome>))
        .build()
        .unwrap();
    let refresher = health.spawn_refresher(sleep(Duration::from_millis(500)));

    let started = Instant::now();
    tokio::time::timeout(SECOND, refresher)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(500));
}

#[tokio::test(start_paused = true)]
async fn manual_components_take_effect_on_the_very_next_report() {
    let health = Health::builder()
        .check(Switch::up().check("database"))
        .build()
        .unwrap();
    health.refresh_now().await;

    health.set_manual(
        "testability",
        Status::Down,
        "forced unhealthy",
        Probes::LIVENESS | Probes::READINESS,
    );
    for scope in Scope::ALL {
        let report = health.report(scope);
        assert_eq!(report.status, Status::Down, "{scope:?}");
        assert_eq!(
            report.reason.as_deref(),
            Some("testability: forced unhealthy")
        );
    }

    assert!(health.clear_manual("testability"));
    assert!(!health.clear_manual("testability"));
    assert_eq!(health.report(Scope::Liveness).status, Status::Up);

    health.set_manual(
        "lifecycle",
        Status::OutOfService,
        "draining",
        Probes::READINESS,
    );
    assert_eq!(health.report(Scope::Liveness).status, Status::Up);
    let ready = health.report(Scope::Readiness);
    assert_eq!(ready.status, Status::OutOfService);
    assert_eq!(ready.reason.as_deref(), Some("lifecycle: draining"));
    assert_eq!(health.report(Scope::Overall).http_status(), 503);
}

#[tokio::test(start_paused = true)]
async fn manual_components_never_turn_stale() {
    let health = Health::builder().build().unwrap();
    health.set_manual("lifecycle", Status::Up, "serving", Probes::READINESS);
    advance(Duration::from_secs(3_600)).await;
    let report = health.report(Scope::Readiness);
    assert_eq!(report.status, Status::Up);
    assert_eq!(
        report.components["lifecycle"].reason.as_deref(),
        Some("serving")
    );
}

#[tokio::test(start_paused = true)]
async fn a_manual_component_named_like_a_check_hides_it_until_cleared() {
    let health = Health::builder()
        .check(Switch::up().check("database"))
        .build()
        .unwrap();
    health.refresh_now().await;

    health.set_manual("database", Status::Down, "forced down", Probes::READINESS);
    let report = health.report(Scope::Readiness);
    assert_eq!(report.components.len(), 1);
    assert_eq!(
        report.components["database"].reason.as_deref(),
        Some("forced down")
    );

    health.clear_manual("database");
    assert_eq!(health.report(Scope::Readiness).status, Status::Up);
}

#[tokio::test(start_paused = true)]
async fn a_non_critical_component_that_is_down_degrades_the_service_but_answers_200() {
    let cache = Switch::new(CheckOutcome::down("connection refused"));
    let health = Health::builder()
        .check(Switch::up().check("database"))
        .check(cache.check("cache").non_critical())
        .build()
        .unwrap();
    health.refresh_now().await;

    let report = health.report(Scope::Readiness);
    assert_eq!(report.status, Status::Degraded);
    assert_eq!(report.http_status(), 200);
    assert_eq!(report.components["cache"].status, Status::Down);
    assert!(!report.components["cache"].critical);
    assert_eq!(report.reason.as_deref(), Some("cache: connection refused"));
}

#[tokio::test(start_paused = true)]
async fn components_appear_only_in_the_scopes_of_their_probes() {
    let health = Health::builder()
        .check(Switch::up().check("database"))
        .check(Switch::up().check("process").probes(Probes::LIVENESS))
        .check(Switch::up().check("disk").probes(Probes::NONE))
        .check(Switch::up().check("both").probes(Probes::ALL))
        .build()
        .unwrap();
    health.refresh_now().await;

    let names = |scope| {
        health
            .report(scope)
            .components
            .into_keys()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(Scope::Overall),
        ["both", "database", "disk", "process"]
    );
    assert_eq!(names(Scope::Liveness), ["both", "process"]);
    assert_eq!(names(Scope::Readiness), ["both", "database"]);
}
