//! The start-up endpoints, one component's endpoint, and `?exclude=` on the scope endpoints,
//! through the router.

use axum::Router;
use axum::http::{Method, StatusCode};
use health::http::{CHECK_AGE, Details, HttpOptions, router, startup_router};
use health::{CheckOutcome, Health, Probes, Startup, Status};
use serde_json::json;

use crate::helpers::{HEALTH_JSON, Switch, call, get};

struct App {
    health: Health,
    router: Router,
    database: Switch,
    cache: Switch,
}

/// A critical readiness `database` and a non-critical `cache`, both UP after one round.
async fn start(details: Details) -> App {
    let database = Switch::up();
    let cache = Switch::up();
    let health = Health::builder()
        .check(database.check("database"))
        .check(cache.check("cache").non_critical().probes(Probes::LIVENESS))
        .build()
        .unwrap();
    health.refresh_now().await;
    let router = router(
        health.clone(),
        HttpOptions {
            details,
            ..HttpOptions::default()
        },
    );
    App {
        health,
        router,
        database,
        cache,
    }
}

#[tokio::test(start_paused = true)]
async fn startup_answers_503_with_the_progress_until_complete_then_200_for_good() {
    let startup = Startup::new();
    let health = Health::builder()
        .startup(startup.clone())
        .check(Switch::up().check("database"))
        .build()
        .unwrap();
    let app: Router = router(health.clone(), HttpOptions::default());
    for path in ["/health/started", "/startupz"] {
        let answer = get(&app, path).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(answer.header("cache-control"), "no-store");
        assert_eq!(
            answer.json(),
            json!({"status": "OUT_OF_SERVICE", "reason": "starting"})
        );
    }
    startup.progress("seeding, 40%");
    assert_eq!(
        get(&app, "/health/started").await.json()["reason"],
        "seeding, 40%"
    );
    // A round of checks does not complete a start-up the service owns.
    health.refresh_now().await;
    assert_eq!(get(&app, "/startupz").await.status, 503);

    startup.complete();
    let answer = get(&app, "/health/started").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), r#"{"status":"UP"}"#);

    // Never back: not on a failing dependency, not on a late progress report.
    health.set_manual("forced", Status::Down, "forced unhealthy", Probes::ALL);
    startup.progress("seeding, 80%");
    assert_eq!(get(&app, "/health").await.status, 503);
    assert_eq!(get(&app, "/startupz").await.status, 200);
    let head = call(&app, Method::HEAD, "/startupz", None).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_registry_without_a_startup_of_its_own_is_started_after_its_first_round() {
    let health = Health::builder()
        .check(Switch::up().check("database"))
        .build()
        .unwrap();
    let app: Router = router(health.clone(), HttpOptions::default());
    assert_eq!(get(&app, "/health/started").await.status, 503);
    health.refresh_now().await;
    assert_eq!(get(&app, "/health/started").await.status, 200);
}

#[tokio::test(start_paused = true)]
async fn the_startup_router_answers_before_any_registry_exists() {
    let startup = Startup::new();
    let app: Router = startup_router(startup.clone());
    startup.progress("seeding, 10%");
    let answer = get(&app, "/startupz").await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.json()["reason"], "seeding, 10%");
    startup.complete();
    assert_eq!(get(&app, "/health/started").await.status, 200);
    assert_eq!(
        get(&app, "/health").await.status,
        404,
        "nothing else is mounted"
    );
}

#[tokio::test(start_paused = true)]
async fn one_component_answers_its_own_status_and_reason() {
    let app = start(Details::Components).await;
    let answer = get(&app.router, "/health/database").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), "application/json");
    assert_eq!(answer.header("cache-control"), "no-store");
    assert_eq!(answer.json(), json!({"status": "UP"}));

    app.database
        .set(CheckOutcome::down("read failed").with_detail("I/O error"));
    app.cache.set(CheckOutcome::down("connection refused"));
    app.health.refresh_now().await;
    let answer = get(&app.router, "/health/database").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.json(),
        json!({"status": "DOWN", "reason": "read failed"})
    );
    // Its own status decides, even for a component that only degrades the aggregate.
    let cache = get(&app.router, "/health/cache").await;
    assert_eq!(cache.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(cache.json()["reason"], "connection refused");

    // Manual components are components too.
    app.health.set_manual(
        "lifecycle",
        Status::OutOfService,
        "draining",
        Probes::READINESS,
    );
    let lifecycle = get(&app.router, "/health/lifecycle").await;
    assert_eq!(lifecycle.status, 503);
    assert_eq!(lifecycle.json()["reason"], "draining");
}

#[tokio::test]
async fn a_check_s_answer_says_how_long_ago_the_check_began_and_a_manual_one_does_not() {
    let database = Switch::up();
    let health = Health::builder()
        .check(database.check("database"))
        .build()
        .unwrap();
    let app: Router = router(health.clone(), HttpOptions::default());
    let answer = get(&app, "/health/database").await;
    assert_eq!(answer.status, 503, "not checked yet");
    assert!(answer.headers.get(CHECK_AGE).is_none(), "no check, no age");

    let before = std::time::Instant::now();
    health.refresh_now().await;
    let answer = get(&app, "/health/database").await;
    assert_eq!(answer.status, 200);
    let age: f64 = answer.header(CHECK_AGE).parse().expect("seconds");
    // Written to the millisecond: at most half of one more than the time since the round.
    let bound = before.elapsed().as_secs_f64() + 0.0005;
    assert!(
        (0.0..=bound).contains(&age),
        "{age} s, not within {bound} s"
    );
    assert_eq!(
        answer
            .header(CHECK_AGE)
            .split_once('.')
            .map(|(_, ms)| ms.len()),
        Some(3)
    );

    health.set_manual("lifecycle", Status::Up, "serving", Probes::NONE);
    let manual = get(&app, "/health/lifecycle").await;
    assert_eq!(manual.status, 200);
    assert!(
        manual.headers.get(CHECK_AGE).is_none(),
        "a manual component is no check"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unknown_component_is_a_json_404_naming_it() {
    let app = start(Details::Components).await;
    let answer = get(&app.router, "/health/nosuch").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.header("content-type"), "application/json");
    assert_eq!(
        answer.json(),
        json!({"error": "no health component named \"nosuch\""})
    );
    // The fixed paths are not components.
    assert_eq!(
        get(&app.router, "/health/live").await.json()["status"],
        "UP"
    );
}

#[tokio::test(start_paused = true)]
async fn details_always_adds_the_components_details_and_never_hides_components() {
    let always = start(Details::Always).await;
    always
        .database
        .set(CheckOutcome::down("read failed").with_detail("I/O error"));
    always.health.refresh_now().await;
    let body = get(&always.router, "/health/database").await.json();
    assert_eq!(body["details"]["detail"], "I/O error");

    let never = start(Details::Never).await;
    let answer = get(&never.router, "/health/database").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(
        answer.json()["error"],
        "health components are not shown at this details level"
    );
}

#[tokio::test(start_paused = true)]
async fn excluding_a_failing_component_keeps_the_scope_up_and_says_so() {
    let app = start(Details::Components).await;
    app.database.set(CheckOutcome::down("read failed"));
    app.health.refresh_now().await;
    assert_eq!(get(&app.router, "/readyz").await.status, 503);

    let answer = get(&app.router, "/readyz?exclude=database").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("cache-control"), "no-store");
    assert_eq!(
        answer.json(),
        json!({"status": "UP", "excluded": ["database"]})
    );

    // The cached answer without the parameter is untouched.
    assert_eq!(get(&app.router, "/health/ready").await.status, 503);
}

#[tokio::test(start_paused = true)]
async fn a_name_that_matches_nothing_is_named_as_not_excluded() {
    let app = start(Details::Components).await;
    app.database.set(CheckOutcome::down("read failed"));
    app.health.refresh_now().await;

    let answer = get(
        &app.router,
        "/health/ready?exclude=nosuch&exclude=cache&exclude=database&exclude=database",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({
            "status": "UP",
            "excluded": ["database"],
            "notExcluded": {"cache": "not in this scope", "nosuch": "no such component"}
        })
    );

    let only_unknown = get(&app.router, "/health?exclude=databse").await;
    assert_eq!(only_unknown.status, 503, "a typo excludes nothing");
    assert_eq!(
        only_unknown.json()["notExcluded"],
        json!({"databse": "no such component"})
    );
}

#[tokio::test(start_paused = true)]
async fn exclusions_are_notes_in_health_json_and_apply_at_every_details_level() {
    let app = start(Details::Never).await;
    app.cache.set(CheckOutcome::down("connection refused"));
    app.health.refresh_now().await;
    let plain = get(&app.router, "/health").await.json();
    assert_eq!(plain["status"], "DEGRADED");

    let answer = call(
        &app.router,
        Method::GET,
        "/health?exclude=cache&exclude=x",
        Some(HEALTH_JSON),
    )
    .await;
    assert_eq!(answer.header("content-type"), HEALTH_JSON);
    assert_eq!(
        answer.json(),
        json!({"status": "pass", "notes": ["excluded: cache", "not excluded: x (no such component)"]})
    );
    let head = call(&app.router, Method::HEAD, "/livez?exclude=cache", None).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}
