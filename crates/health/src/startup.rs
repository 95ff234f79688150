//! Start-up state ([`Startup`]): not started until the service says so, with the progress it
//! reports on the way ("seeding, 40%"); once complete, complete for good.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::Status;

/// The progress shown before anything was reported.
const STARTING: &str = "starting";

/// Whether a service has finished starting, and how far it got if not. What a Kubernetes
/// `startupProbe` asks (`/health/started`, `/startupz`): 503 until [`complete`](Self::complete),
/// then 200 for the life of the process.
///
/// Cheap to clone (an [`Arc`]); clones share the state, so the seeder can report progress
/// while a management listener answers probes. Create one before the slow steps and give it to
/// [`crate::HealthBuilder::startup`]; a registry built without one makes its own, complete
/// after the first round of checks.
#[derive(Clone, Default)]
pub struct Startup {
    inner: Arc<Inner>,
}

struct Inner {
    complete: AtomicBool,
    progress: Mutex<String>,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            complete: AtomicBool::new(false),
            progress: Mutex::new(STARTING.to_owned()),
        }
    }
}

impl Startup {
    /// A start-up in progress ("starting").
    #[must_use]
    pub fn new() -> Startup {
        Startup::default()
    }

    /// Says how far start-up got, e.g. `"seeding, 40%"`: the reason the startup endpoints give
    /// while they answer 503. Ignored once start-up is complete.
    pub fn progress(&self, progress: impl Into<String>) {
        if self.is_complete() {
            return;
        }
        let progress = progress.into();
        tracing::debug!(%progress, "start-up progress");
        *self
            .inner
            .progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = progress;
    }

    /// Marks start-up complete, for good: the startup endpoints answer 200 from now on.
    /// Calling it again does nothing.
    pub fn complete(&self) {
        if !self.inner.complete.swap(true, Ordering::AcqRel) {
            tracing::info!("start-up complete");
        }
    }

    /// Whether [`complete`](Self::complete) was called.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.inner.complete.load(Ordering::Acquire)
    }

    /// `UP` once complete; before that `OUT_OF_SERVICE` with the last progress as the reason.
    #[must_use]
    pub fn status(&self) -> (Status, Option<String>) {
        if self.is_complete() {
            return (Status::Up, None);
        }
        let progress = self
            .inner
            .progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // Completed while the progress was read: the answer must not go back to 503.
        if self.is_complete() {
            return (Status::Up, None);
        }
        (Status::OutOfService, Some(progress))
    }
}

impl fmt::Debug for Startup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (status, progress) = self.status();
        f.debug_struct("Startup")
            .field("status", &status)
            .field("progress", &progress)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_up_reports_progress_until_complete_and_never_goes_back() {
        let startup = Startup::new();
        assert_eq!(
            startup.status(),
            (Status::OutOfService, Some("starting".to_owned()))
        );
        let seeder = startup.clone();
        seeder.progress("seeding, 40%");
        assert_eq!(
            startup.status(),
            (Status::OutOfService, Some("seeding, 40%".to_owned()))
        );
        startup.complete();
        assert_eq!(startup.status(), (Status::Up, None));
        seeder.progress("seeding, 80%");
        startup.complete();
        assert!(seeder.is_complete());
        assert_eq!(seeder.status(), (Status::Up, None));
    }
}
