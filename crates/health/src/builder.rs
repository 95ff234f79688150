//! Configures and builds a [`Health`] registry ([`HealthBuilder`]) and says why it can refuse
//! ([`BuildError`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::registry::{Health, Registered};
use crate::{HealthCheck, Startup};

/// Default refresh interval: 1 s.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Default per-check timeout: 1 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why [`HealthBuilder::build`] refused a configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The refresh interval is zero.
    #[error("the health check interval must be greater than zero")]
    ZeroInterval,
    /// A timeout (the registry's or a check's own) is zero.
    #[error("the timeout of health check {0:?} must be greater than zero")]
    ZeroTimeout(String),
    /// The staleness bound would mark healthy results stale between two refreshes.
    #[error(
        "the staleness bound ({staleness:?}) must be longer than the interval plus the longest \
         check timeout ({minimum:?}), or results would turn stale between two refreshes"
    )]
    StalenessTooShort {
        /// The staleness bound asked for.
        staleness: Duration,
        /// Interval plus the longest timeout.
        minimum: Duration,
    },
    /// Two checks have the same name.
    #[error("two health checks are named {0:?}; names must be unique")]
    DuplicateName(String),
    /// A check has an empty name.
    #[error("a health check has an empty name")]
    EmptyName,
}

impl Health {
    /// Starts configuring a registry. (Here, not beside the registry, so that the registry
    /// knows nothing of its configuration.)
    #[must_use]
    pub fn builder() -> HealthBuilder {
        HealthBuilder::default()
    }
}

/// Builds a [`Health`] registry: `Health::builder().check(c).build()?`.
#[derive(Default)]
pub struct HealthBuilder {
    interval: Option<Duration>,
    timeout: Option<Duration>,
    staleness: Option<Duration>,
    checks: Vec<Arc<dyn HealthCheck>>,
    startup: Option<Startup>,
}

impl HealthBuilder {
    /// How often the background refresher runs every check. Default 1 s.
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// How long a check may take before it counts as `DOWN` ("timed out after …"), for checks
    /// that do not set their own. Default 1 s.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How old a check's result may get before it counts as `DOWN` ("stale"): a refresher that
    /// died or hangs must never leave a healthy answer behind. Default: three intervals plus
    /// the longest timeout (4 s with the defaults), which tolerates two missed rounds. Must be
    /// longer than one interval plus the longest timeout.
    #[must_use]
    pub fn staleness(mut self, staleness: Duration) -> Self {
        self.staleness = Some(staleness);
        self
    }

    /// Shares a start-up state the service created before its slow steps and completes itself
    /// (see [`Startup`]). Without one, the registry's own start-up completes when the first
    /// round of checks does.
    #[must_use]
    pub fn startup(mut self, startup: Startup) -> Self {
        self.startup = Some(startup);
        self
    }

    /// Adds a check.
    #[must_use]
    pub fn check(mut self, check: impl HealthCheck) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Adds a check that is already shared.
    #[must_use]
    pub fn check_arc(mut self, check: Arc<dyn HealthCheck>) -> Self {
        self.checks.push(check);
        self
    }

    /// Checks the configuration and builds the registry. No check runs yet: call
    /// [`Health::refresh_now`] and [`Health::spawn_refresher`].
    ///
    /// # Errors
    /// A zero interval or timeout, a staleness bound not longer than interval plus the longest
    /// timeout, or an empty or duplicate check name.
    pub fn build(self) -> Result<Health, BuildError> {
        let interval = self.interval.unwrap_or(DEFAULT_INTERVAL);
        if interval.is_zero() {
            return Err(BuildError::ZeroInterval);
        }
        let default_timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if default_timeout.is_zero() {
            return Err(BuildError::ZeroTimeout("(default)".to_owned()));
        }
        let mut names = HashSet::new();
        let mut checks = Vec::with_capacity(self.checks.len());
        for check in self.checks {
            let name = check.name().to_owned();
            if name.is_empty() {
                return Err(BuildError::EmptyName);
            }
            if !names.insert(name.clone()) {
                return Err(BuildError::DuplicateName(name));
            }
            let timeout = check.timeout().unwrap_or(default_timeout);
            if timeout.is_zero() {
                return Err(BuildError::ZeroTimeout(name));
            }
            checks.push(Registered {
                critical: check.critical(),
                probes: check.probes(),
                curability: check.curability(),
                measurement: check.measurement().to_owned(),
                name,
                timeout,
                check,
            });
        }
        let longest = checks
            .iter()
            .map(|c| c.timeout)
            .max()
            .unwrap_or(default_timeout);
        let minimum = interval + longest;
        let staleness = self.staleness.unwrap_or(interval * 3 + longest);
        if staleness <= minimum {
            return Err(BuildError::StalenessTooShort { staleness, minimum });
        }
        Ok(Health::new(checks, interval, staleness, self.startup))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CheckOutcome, check_fn};

    fn ok(name: &str) -> impl HealthCheck {
        check_fn(name, || async { CheckOutcome::up() })
    }

    #[test]
    fn defaults_are_one_second_and_a_staleness_of_four() {
        let h = HealthBuilder::default().check(ok("a")).build().unwrap();
        assert_eq!(h.interval(), Duration::from_secs(1));
        assert_eq!(h.staleness(), Duration::from_secs(4));
    }

    #[test]
    fn bad_configurations_are_refused_with_a_reason() {
        let zero = Duration::ZERO;
        let err = |b: HealthBuilder| b.build().err().unwrap();
        assert_eq!(
            err(HealthBuilder::default().interval(zero)),
            BuildError::ZeroInterval
        );
        assert!(matches!(
            err(HealthBuilder::default().timeout(zero)),
            BuildError::ZeroTimeout(_)
        ));
        assert_eq!(
            err(HealthBuilder::default().check(ok("a")).check(ok("a"))),
            BuildError::DuplicateName("a".to_owned())
        );
        assert_eq!(
            err(HealthBuilder::default().check(ok(""))),
            BuildError::EmptyName
        );
        let short = err(HealthBuilder::default().staleness(Duration::from_secs(2)));
        assert_eq!(
            short.to_string(),
            "the staleness bound (2s) must be longer than the interval plus the longest check \
             timeout (2s), or results would turn stale between two refreshes"
        );
    }

    #[test]
    fn a_check_with_a_longer_own_timeout_raises_the_default_staleness() {
        let slow =
            check_fn("slow", || async { CheckOutcome::up() }).timeout(Duration::from_secs(5));
        let h = HealthBuilder::default().check(slow).build().unwrap();
        assert_eq!(h.staleness(), Duration::from_secs(8));
    }
}
