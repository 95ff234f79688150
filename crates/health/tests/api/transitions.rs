//! Transitions: what the registry records when statuses change, the signal that wakes
//! subscribers, and the cumulative counts. Under tokio's paused clock; no real sleeps.

use std::time::Duration;

use health::http::{HttpOptions, router};
use health::{CheckOutcome, Health, Probes, Scope, Status, Subject, Transition};
use tokio::time::advance;

use crate::helpers::{Switch, get};

fn names(transitions: &[Transition]) -> Vec<(String, Status, Status)> {
    transitions
        .iter()
        .map(|t| (t.subject.name().to_owned(), t.from, t.to))
        .collect()
}

fn count(health: &Health, name: &str, status: Status) -> u64 {
    health
        .transition_counts()
        .into_iter()
        .find(|(n, s, _)| n == name && *s == status)
        .map_or(0, |(_, _, c)| c)
}

#[tokio::test(start_paused = true)]
async fn the_first_round_records_each_check_and_scope_leaving_not_checked_yet() {
    let database = Switch::up();
    let health = Health::builder()
        .check(database.check("database").probes(Probes::READINESS))
        .build()
        .unwrap();
    assert!(health.transitions().is_empty(), "building records nothing");

    health.refresh_now().await;

    let t = health.transitions();
    assert_eq!(
        names(&t),
        [
            ("readiness".to_owned(), Status::OutOfService, Status::Up),
            ("overall".to_owned(), Status::OutOfService, Status::Up),
            ("database".to_owned(), Status::OutOfService, Status::Up),
        ],
        "newest first; liveness has no component and was UP all along"
    );
    assert_eq!(t[2].subject, Subject::Component("database".into()));
    assert_eq!(t[1].subject, Subject::Scope(Scope::Overall));
    assert!(t.iter().all(Transition::is_recovery));
    assert_eq!(health.last_change(Scope::Overall).unwrap().to, Status::Up);
}

#[tokio::test(start_paused = true)]
async fn a_failing_check_records_its_reason_and_the_scope_summary() {
    let database = Switch::up();
    let health = Health::builder()
        .check(database.check("database"))
        .build()
        .unwrap();
    health.refresh_now().await;
    let mut changes = health.subscribe();
    changes.mark_unchanged();

    database.set(CheckOutcome::down("read failed").with_detail("I/O error at /var/db"));
    health.refresh_now().await;

    assert!(changes.has_changed().unwrap(), "subscribers are woken");
    let t = health.transitions();
    let database_down = t.iter().find(|t| t.subject.name() == "database").unwrap();
    assert_eq!(
        (database_down.from, database_down.to),
        (Status::Up, Status::Down)
    );
    assert_eq!(database_down.reason.as_deref(), Some("read failed"));
    let overall = health.last_change(Scope::Overall).unwrap();
    assert_eq!((overall.from, overall.to), (Status::Up, Status::Down));
    assert_eq!(overall.reason.as_deref(), Some("database: read failed"));
    assert!(
        t.iter()
            .all(|t| t.reason.as_deref().is_none_or(|r| !r.contains("I/O error"))),
        "the internal detail is never recorded"
    );
    assert_eq!(count(&health, "database", Status::Down), 1);
    assert_eq!(count(&health, "database", Status::Up), 1);
}

#[tokio::test(start_paused = true)]
async fn rounds_that_change_nothing_record_nothing_and_wake_nobody() {
    let database = Switch::up();
    let health = Health::builder()
        .check(database.check("database"))
        .build()
        .unwrap();
    health.refresh_now().await;
    let recorded = health.transitions().len();
    let mut changes = health.subscribe();
    changes.mark_unchanged();

    for _ in 0..5 {
        health.refresh_now().await;
    }
    // A new reason with the same status is not a transition either.
    database.set(CheckOutcome::up().with_reason("fine again"));
    health.refresh_now().await;

    assert_eq!(health.transitions().len(), recorded);
    assert!(!changes.has_changed().unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_waits_without_polling_until_a_manual_component_is_set() {
    let health = Health::builder().build().unwrap();
    let mut changes = health.subscribe();
    let waiter = tokio::spawn(async move {
        changes.changed().await.unwrap();
        *changes.borrow_and_update()
    });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());

    health.set_manual(
        "lifecycle",
        Status::OutOfService,
        "draining",
        Probes::READINESS,
    );

    let generation = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the subscriber wakes")
        .unwrap();
    assert_eq!(generation, 1);
    assert_eq!(
        names(&health.transitions()),
        [
            ("readiness".to_owned(), Status::Up, Status::OutOfService),
            ("overall".to_owned(), Status::Up, Status::OutOfService),
            ("lifecycle".to_owned(), Status::Up, Status::OutOfService),
        ]
    );

    assert!(health.clear_manual("lifecycle"));
    let cleared = &health.transitions()[2];
    assert_eq!(cleared.subject.name(), "lifecycle");
    assert_eq!(
        (cleared.from, cleared.to),
        (Status::OutOfService, Status::Up)
    );
    assert_eq!(cleared.reason.as_deref(), Some("cleared"));
    assert_eq!(*health.subscribe().borrow(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_result_turning_stale_is_recorded_when_the_endpoint_is_asked() {
    let database = Switch::up();
    let health = Health::builder()
        .check(database.check("database"))
        .build()
        .unwrap();
    health.refresh_now().await;
    let app: axum::Router = router(health.clone(), HttpOptions::default());
    assert_eq!(get(&app, "/health").await.status, 200);

    advance(health.staleness()).await;
    assert_eq!(get(&app, "/health").await.status, 503);

    let stale = health
        .transitions()
        .into_iter()
        .find(|t| t.subject.name() == "database")
        .unwrap();
    assert_eq!((stale.from, stale.to), (Status::Up, Status::Down));
    assert_eq!(stale.reason.as_deref(), Some("stale: last result 4s old"));
}

#[tokio::test(start_paused = true)]
async fn a_flapping_check_keeps_the_newest_transitions_and_counts_them_all() {
    let database = Switch::up();
    let health = Health::builder()
        .check(database.check("database"))
        .build()
        .unwrap();
    health.refresh_now().await; // 3 transitions out of "not checked yet"
    let flaps = 300;
    for i in 0..flaps {
        database.set(if i % 2 == 0 {
            CheckOutcome::down("read failed")
        } else {
            CheckOutcome::up()
        });
        health.refresh_now().await;
    }
    assert_eq!(health.transitions().len(), health::TRANSITIONS_KEPT);
    assert_eq!(count(&health, "database", Status::Down), flaps / 2);
    assert_eq!(count(&health, "database", Status::Up), flaps / 2 + 1);
    assert_eq!(count(&health, "overall", Status::Down), flaps / 2);
    assert_eq!(count(&health, "liveness", Status::Up), 0);
}
