//! No lock is held while the registry logs: a probe, a report, the history and a new round,
//! asked from another thread while a transition is being logged, all answer at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use axum::Router;
use health::http::{HttpOptions, router};
use health::{CheckOutcome, Health, Scope};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::{Layer, Registry};

use crate::helpers::{Switch, get};

/// On every event, asks the registry everything a probe or the refresher asks, from another
/// thread, and counts the events during which that did not answer within a bound.
struct ProbeWhileLogging {
    health: Health,
    router: Router,
    events: Arc<AtomicUsize>,
    blocked: Arc<AtomicUsize>,
}

impl<S: tracing::Subscriber> Layer<S> for ProbeWhileLogging {
    fn on_event(&self, _: &tracing::Event<'_>, _: Context<'_, S>) {
        self.events.fetch_add(1, Ordering::SeqCst);
        let (health, router) = (self.health.clone(), self.router.clone());
        let (answered, answer) = mpsc::channel();
        // Another thread has no subscriber of its own: what it logs comes nowhere near here.
        thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                get(&router, "/health").await;
                get(&router, "/health/history").await;
                let _ = health.report(Scope::Overall);
                let _ = health.transitions();
                let _ = health.last_change(Scope::Overall);
                health.refresh_now().await;
            });
            let _ = answered.send(());
        });
        if answer.recv_timeout(Duration::from_secs(5)).is_err() {
            self.blocked.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test]
async fn everything_a_probe_asks_answers_while_a_transition_is_being_logged() {
    let database = Switch::up();
    let health = Health::builder()
        .interval(Duration::from_millis(10))
        .timeout(Duration::from_millis(10))
        .staleness(Duration::from_millis(50))
        .check(database.check("database"))
        .build()
        .unwrap();
    health.refresh_now().await;
    let router = router(health.clone(), HttpOptions::default());
    get(&router, "/health").await;
    let events = Arc::new(AtomicUsize::new(0));
    let blocked = Arc::new(AtomicUsize::new(0));
    let subscriber = Registry::default().with(ProbeWhileLogging {
        health: health.clone(),
        router: router.clone(),
        events: events.clone(),
        blocked: blocked.clone(),
    });
    let _guard = tracing::subscriber::set_default(subscriber);

    // Changes seen first by a round (logged after the round's lock is let go) ...
    database.set(CheckOutcome::down("read failed"));
    health.refresh_now().await;
    database.set(CheckOutcome::up());
    health.refresh_now().await;
    let by_rounds = events.load(Ordering::SeqCst);
    assert!(by_rounds > 0, "nothing was logged");

    // ... and a result turning stale, seen first by a probe (logged after the render lock is
    // let go). Polled: the result turns stale once its age passes the bound.
    let deadline = Instant::now() + Duration::from_secs(10);
    while events.load(Ordering::SeqCst) == by_rounds {
        assert!(Instant::now() < deadline, "the result never turned stale");
        tokio::time::sleep(Duration::from_millis(20)).await;
        get(&router, "/health").await;
    }
    assert_eq!(
        blocked.load(Ordering::SeqCst),
        0,
        "of {} lines logged, some held a lock a probe needed",
        events.load(Ordering::SeqCst)
    );
}
