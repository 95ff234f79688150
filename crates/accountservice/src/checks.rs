//! The service's health checks and the registry that runs them (see the `health` crate).
//!
//! One check, `database`: a real read of the accounts table, timed: a read transaction on the
//! redb file, or a query through the PostgreSQL pool, whose details name the backend and the
//! pool's state. The original service tested `db != nil`, which can never fail; this one fails
//! when reads fail.
//!
//! It takes part in every probe, and declares whether a restart can cure its failure from the
//! store behind it ([`Store::is_shared`]): an embedded file of the replica's own can be (the
//! restart signals fail, and the orchestrator replaces the replica, as the original's
//! `HEALTHCHECK` did); a database every replica shares cannot (only `/health` fails, and the
//! replica asks its peers whether the fault is its alone: `crate::outage`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use health::{
    BoxFuture, BuildError, CheckOutcome, Curability, Health, HealthCheck, Probes, Startup,
};

use crate::{
    config::Settings,
    error::chain,
    store::{AccountStore, PgStore, Store},
};

/// Builds the registry for `settings` over the store the HTTP layer reads from, sharing the
/// service's start-up state (which the service completes, not the first round).
pub fn registry(
    store: Store,
    settings: &Settings,
    startup: &Startup,
) -> Result<Health, BuildError> {
    Health::builder()
        .startup(startup.clone())
        .interval(settings.health_interval)
        .timeout(settings.health_timeout)
        .check(DatabaseCheck::new(store))
        .build()
}

/// Reads the accounts table through the store and reports how long the read took
/// (`database:responseTime` in ms).
///
/// An embedded store is read in `spawn_blocking` because storage calls can block (a stalled
/// disk); the registry then gives up at its timeout and reports `DOWN` "timed out". A blocking
/// call cannot be cancelled, so while one is still running no other is started: a stuck disk
/// costs one thread, not one per interval. PostgreSQL is asked on the async worker: the pool
/// bounds every wait and a timed-out query is simply dropped.
pub struct DatabaseCheck {
    store: Store,
    curability: Curability,
    in_flight: Arc<AtomicBool>,
}

/// The name of the check, as `/health` and the fleet show it.
pub const DATABASE: &str = "database";

impl DatabaseCheck {
    /// A check over `store` (a [`Store`], or any `Arc` of an `AccountStore`), curable by
    /// restart unless the store is shared by every replica.
    pub fn new(store: impl Into<Store>) -> Self {
        let store = store.into();
        let curability = if store.is_shared() {
            Curability::NotByRestart
        } else {
            Curability::Restart
        };
        Self {
            store,
            curability,
            in_flight: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The redb path: a read transaction on a blocking thread.
    async fn check_embedded(&self, store: &Arc<dyn AccountStore>) -> CheckOutcome {
        if self.in_flight.swap(true, Ordering::AcqRel) {
            return CheckOutcome::down("read still blocked")
                .with_detail("the previous read has not returned");
        }
        let guard = InFlight(self.in_flight.clone());
        let store = store.clone();
        let started = Instant::now();
        let read = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            store.check()
        })
        .await;
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        match read {
            Ok(Ok(_accounts)) => CheckOutcome::up().with_observed(round_ms(millis), "ms"),
            Ok(Err(error)) => {
                // A short reason that says what is wrong without internals: "file removed",
                // "storage error, restart needed"; any other failure is a failed read.
                CheckOutcome::down(error.summary())
                    .with_detail(chain(&error))
                    .with_observed(round_ms(millis), "ms")
            }
            Err(error) => CheckOutcome::down("read failed").with_detail(error.to_string()),
        }
    }

    /// The PostgreSQL path: a query through the pool; the details name the backend, the URL
    /// (password redacted) and the pool's state after the query.
    async fn check_postgres(
        store: &PgStore,
        fault: Option<&crate::store::FaultSwitch>,
    ) -> CheckOutcome {
        let started = Instant::now();
        let result = match crate::store::serving::postgres_fault(fault, store).await {
            Ok(()) => store.check().await,
            Err(error) => Err(error),
        };
        let millis = round_ms(started.elapsed().as_secs_f64() * 1000.0);
        let about = format!("postgresql {}; {}", store.shown_url(), store.state());
        match result {
            Ok(()) => CheckOutcome::up()
                .with_detail(about)
                .with_observed(millis, "ms"),
            Err(error) => CheckOutcome::down(error.summary())
                .with_detail(format!("{about}; {}", chain(&error)))
                .with_observed(millis, "ms"),
        }
    }
}

/// Clears the in-flight flag when the blocking read ends, however it ends.
struct InFlight(Arc<AtomicBool>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl HealthCheck for DatabaseCheck {
    fn name(&self) -> &str {
        DATABASE
    }

    /// Readiness and liveness alike; [`Curability`] decides what a failure does to each.
    fn probes(&self) -> Probes {
        Probes::ALL
    }

    fn curability(&self) -> Curability {
        self.curability
    }

    fn measurement(&self) -> &str {
        "responseTime"
    }

    fn check(&self) -> BoxFuture<'_, CheckOutcome> {
        Box::pin(async move {
            match &self.store {
                Store::Embedded(store) => self.check_embedded(store).await,
                Store::Postgres { store, fault } => {
                    Self::check_postgres(store, fault.as_deref()).await
                }
            }
        })
    }
}

/// Milliseconds to three decimals: microseconds are the resolution worth showing.
fn round_ms(millis: f64) -> f64 {
    (millis * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use health::Status;

    use super::*;
    use crate::store::{MockAccountStore, StoreError};

    #[tokio::test]
    async fn a_successful_read_is_up_with_its_response_time() {
        let mut store = MockAccountStore::new();
        store.expect_is_shared().return_const(false);
        store.expect_check().times(1).returning(|| Ok(100));
        let outcome = DatabaseCheck::new(Arc::new(store)).check().await;
        assert_eq!(outcome.status, Status::Up);
        assert_eq!(outcome.observed_unit.as_deref(), Some("ms"));
        assert!(outcome.observed_value.is_some());
    }

    #[tokio::test]
    async fn a_failed_read_is_down_with_a_short_reason_and_the_cause_as_detail() {
        let mut store = MockAccountStore::new();
        store.expect_is_shared().return_const(false);
        store
            .expect_check()
            .times(1)
            .returning(|| Err(StoreError::Unavailable("disk on fire".into())));
        let outcome = DatabaseCheck::new(Arc::new(store)).check().await;
        assert_eq!(outcome.status, Status::Down);
        assert_eq!(outcome.reason.as_deref(), Some("read failed"));
        assert!(outcome.detail.unwrap().contains("disk on fire"));
    }

    #[test]
    fn a_store_of_the_replica_s_own_is_curable_by_restart_and_a_shared_one_is_not() {
        for (shared, curability) in [
            (false, Curability::Restart),
            (true, Curability::NotByRestart),
        ] {
            let mut store = MockAccountStore::new();
            store.expect_is_shared().return_const(shared);
            let check = DatabaseCheck::new(Arc::new(store));
            assert_eq!(check.curability(), curability);
            assert_eq!(check.probes(), Probes::ALL);
        }
    }

    #[tokio::test]
    async fn a_blocked_read_is_not_started_twice() {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = std::sync::Mutex::new(released);
        let mut store = MockAccountStore::new();
        store.expect_is_shared().return_const(false);
        // Exactly one read reaches the store while it is blocked.
        store.expect_check().times(1).returning(move || {
            let _ = released.lock().unwrap().recv();
            Ok(1)
        });
        let check = Arc::new(DatabaseCheck::new(Arc::new(store)));
        let first = tokio::spawn({
            let check = check.clone();
            async move { check.check().await }
        });
        // Wait until the first read holds the flag.
        while !check.in_flight.load(Ordering::Acquire) {
            tokio::task::yield_now().await;
        }
        let second = check.check().await;
        assert_eq!(second.status, Status::Down);
        assert_eq!(second.reason.as_deref(), Some("read still blocked"));
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().status, Status::Up);
        assert!(!check.in_flight.load(Ordering::Acquire));
    }
}
