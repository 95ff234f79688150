//! Running the checks: one concurrent round under per-check timeouts
//! ([`Health::refresh_now`]) and the background task that repeats it
//! ([`Health::spawn_refresher`]).

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};

use crate::registry::CheckResult;
use crate::{CheckOutcome, Health, Status};

impl Health {
    /// Runs every check once, concurrently, each under its own timeout, and publishes the
    /// results. Returns when all have finished or timed out, so after at most the longest
    /// timeout.
    ///
    /// A service awaits this before it accepts traffic, so its first answer is truthful. A
    /// round that is already running (the refresher's) is waited for first: two rounds never
    /// overlap. Dropping the future cancels the round's checks.
    ///
    /// Outcomes: a check that times out is `DOWN` "timed out after …"; one that panics is
    /// `DOWN` "check panicked" (the panic message in the detail), and the refresher goes on.
    pub async fn refresh_now(&self) {
        let (recorded, panics) = {
            let _round = self.shared.round.lock().await;
            let (results, panics) = self.run_round().await;
            (self.publish(results), panics)
        };
        // Logged once the round's lock is released: a slow log sink must not hold up the next
        // round, or a caller waiting for this one.
        for (check, message) in panics {
            tracing::error!(check = %check, panic = %message, "health check panicked");
        }
        recorded.finish();
    }

    /// Spawns the background refresher: a round every [`interval`](Self::interval) (the
    /// first at once if no round has completed yet, else one interval from now) until
    /// `shutdown` completes. A round that overruns the interval delays the next one instead of
    /// starting another at once.
    ///
    /// `shutdown` is any future, e.g. a `tokio_util` `CancellationToken::cancelled_owned()`,
    /// a `oneshot::Receiver` mapped to `()`, or `std::future::pending()` to run for the life of
    /// the runtime. A round in progress at shutdown is cancelled.
    ///
    /// Must be called inside a tokio runtime.
    pub fn spawn_refresher<F>(&self, shutdown: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let health = self.clone();
        tokio::spawn(async move { health.run_refresher(shutdown).await })
    }

    async fn run_refresher<F: Future<Output = ()>>(self, shutdown: F) {
        tokio::pin!(shutdown);
        let interval = self.shared.interval;
        let start = if self.shared.refreshed.load(Ordering::Acquire) {
            Instant::now() + interval
        } else {
            Instant::now()
        };
        let mut ticker = tokio::time::interval_at(start, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tracing::debug!(?interval, "health refresher started");
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = ticker.tick() => {}
            }
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = self.refresh_now() => {}
            }
        }
        tracing::debug!("health refresher stopped");
    }

    /// Runs every check once, concurrently. Each check runs in its own task, which contains a
    /// panic, and under its own timeout; the whole round is also bounded by the longest timeout,
    /// so a check that blocks its thread (and so cannot be cancelled) cannot stall the round.
    /// Returns the results, and the name and message of each check that panicked.
    async fn run_round(&self) -> (Vec<Option<CheckResult>>, Vec<(String, String)>) {
        let checks = &self.shared.checks;
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        let mut index_of = HashMap::with_capacity(checks.len());
        for (i, reg) in checks.iter().enumerate() {
            let check = Arc::clone(&reg.check);
            let limit = reg.timeout;
            let task = tasks.spawn(async move {
                let begun = Instant::now();
                let outcome = tokio::time::timeout(limit, check.check()).await.ok();
                (i, outcome, begun.elapsed())
            });
            index_of.insert(task.id(), i);
        }
        let mut results: Vec<Option<CheckResult>> = vec![None; checks.len()];
        let mut panics = Vec::new();
        let longest = checks.iter().map(|c| c.timeout).max().unwrap_or_default();
        let collect = async {
            while let Some(joined) = tasks.join_next_with_id().await {
                let (i, outcome, duration) = match joined {
                    Ok((_, (i, Some(outcome), duration))) => (i, outcome, duration),
                    Ok((_, (i, None, duration))) => (i, timed_out(checks[i].timeout), duration),
                    Err(err) => {
                        let Some(&i) = index_of.get(&err.id()) else {
                            continue;
                        };
                        let outcome = if err.is_panic() {
                            let message = panic_message(err.into_panic());
                            panics.push((checks[i].name.clone(), message.clone()));
                            CheckOutcome::down("check panicked").with_detail(message)
                        } else {
                            CheckOutcome::down("check cancelled")
                        };
                        (i, outcome, started.elapsed())
                    }
                };
                results[i] = Some(finished(outcome, duration));
            }
        };
        // Every task ends by its own timeout; this bound only matters when a check blocks its
        // thread instead of awaiting.
        let _ = tokio::time::timeout_at(started + longest, collect).await;
        drop(tasks); // aborts whatever still runs
        for (i, slot) in results.iter_mut().enumerate() {
            if slot.is_none() {
                let timeout = checks[i].timeout;
                *slot = Some(finished(timed_out(timeout), started.elapsed()));
            }
        }
        (results, panics)
    }
}

fn finished(outcome: CheckOutcome, duration: Duration) -> CheckResult {
    CheckResult {
        outcome,
        checked_at: SystemTime::now(),
        finished: Instant::now(),
        duration,
    }
}

fn timed_out(limit: Duration) -> CheckOutcome {
    CheckOutcome::new(Status::Down).with_reason(format!("timed out after {limit:?}"))
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_owned(),
            Err(_) => "(no message)".to_owned(),
        },
    }
}
