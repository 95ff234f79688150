//! What a health check is ([`HealthCheck`]) and what one run of it returns ([`CheckOutcome`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::{Curability, Probes, Status};

/// A boxed, sendable future: what [`HealthCheck::check`] returns, so the trait stays object
/// safe and checks of different types live in one registry.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One dependency or aspect of a service whose health can be tested, e.g. a database.
///
/// The registry ([`crate::Health`]) reads `name`, `critical`, `probes`, `curability`,
/// `timeout` and `measurement` once, when it is built; it calls [`check`](HealthCheck::check) in the
/// background, at most once per refresh interval, never from a probe.
///
/// `check` must not block the thread: wrap blocking I/O (a synchronous database, a file
/// system call) in [`tokio::task::spawn_blocking`]. The registry cancels a check at its
/// timeout and reports it `DOWN`; a blocking call cannot be cancelled and keeps its thread.
///
/// ```
/// use health::{BoxFuture, CheckOutcome, HealthCheck};
///
/// struct Disk;
///
/// impl HealthCheck for Disk {
///     fn name(&self) -> &str {
///         "disk"
///     }
///     fn critical(&self) -> bool {
///         false // a full disk degrades the service but does not stop it answering
///     }
///     fn check(&self) -> BoxFuture<'_, CheckOutcome> {
///         Box::pin(async {
///             let free_percent = 42.0; // measure it here
///             CheckOutcome::up().with_observed(free_percent, "percent")
///         })
///     }
/// }
/// ```
pub trait HealthCheck: Send + Sync + 'static {
    /// The component's name, e.g. `"database"`: the key in reports and the first half of the
    /// `component:measurement` key in `application/health+json`. Unique in a registry.
    fn name(&self) -> &str;

    /// Whether the service is broken when this component is. A non-critical component that is
    /// `DOWN` (or `OUT_OF_SERVICE`) makes the aggregate `DEGRADED` (still 200), not `DOWN`.
    /// Default: `true`.
    fn critical(&self) -> bool {
        true
    }

    /// The probes this component takes part in. Default: [`Probes::READINESS`] (a dependency
    /// decides whether to send traffic here, not whether to restart the process).
    fn probes(&self) -> Probes {
        Probes::READINESS
    }

    /// Whether restarting the instance can cure a failure of this check. Default:
    /// [`Curability::Restart`]. Declare [`Curability::NotByRestart`] for a dependency outside
    /// the instance (a database server every replica shares): its failure then fails `/health`
    /// but neither liveness nor readiness (see [`Curability`] for why).
    fn curability(&self) -> Curability {
        Curability::Restart
    }

    /// This check's own timeout; `None` (the default) uses the registry's
    /// ([`crate::HealthBuilder::timeout`], 1 s unless set).
    fn timeout(&self) -> Option<Duration> {
        None
    }

    /// What the observed value measures, the second half of the `component:measurement` key in
    /// `application/health+json`, e.g. `"responseTime"`. Default: `"status"`.
    fn measurement(&self) -> &str {
        "status"
    }

    /// Run the check once.
    fn check(&self) -> BoxFuture<'_, CheckOutcome>;
}

/// What one run of a check found.
///
/// Built with [`CheckOutcome::up`], [`CheckOutcome::down`] or [`CheckOutcome::new`] and the
/// `with_*` methods; the fields are public to read.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CheckOutcome {
    /// The component's status.
    pub status: Status,
    /// A short reason, safe to show to anyone who can reach the endpoint: `"read failed"`,
    /// not an error text with paths in it. Shown from `details=components` on, and named in
    /// the top-level reason when the component is not `UP`.
    pub reason: Option<String>,
    /// Internal detail (error text, file paths): shown only with `details=always`.
    pub detail: Option<String>,
    /// A measured value, e.g. a response time in milliseconds.
    pub observed_value: Option<serde_json::Value>,
    /// The unit of [`observed_value`](Self::observed_value), e.g. `"ms"`.
    pub observed_unit: Option<String>,
}

impl CheckOutcome {
    /// An outcome with the given status and nothing else.
    #[must_use]
    pub fn new(status: Status) -> Self {
        CheckOutcome {
            status,
            reason: None,
            detail: None,
            observed_value: None,
            observed_unit: None,
        }
    }

    /// `UP`.
    #[must_use]
    pub fn up() -> Self {
        Self::new(Status::Up)
    }

    /// `DOWN` with a short, public reason.
    #[must_use]
    pub fn down(reason: impl Into<String>) -> Self {
        Self::new(Status::Down).with_reason(reason)
    }

    /// Sets the short, public reason.
    #[must_use]
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Sets the internal detail, shown only with `details=always`.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the observed value and its unit.
    #[must_use]
    pub fn with_observed(
        mut self,
        value: impl Into<serde_json::Value>,
        unit: impl Into<String>,
    ) -> Self {
        self.observed_value = Some(value.into());
        self.observed_unit = Some(unit.into());
        self
    }
}

/// Makes a [`HealthCheck`] from a name and an async closure; see [`check_fn`].
pub struct FnCheck<F> {
    name: String,
    critical: bool,
    probes: Probes,
    curability: Curability,
    timeout: Option<Duration>,
    measurement: String,
    f: F,
}

/// A check from a closure returning a future, for small checks and tests:
///
/// ```
/// use health::{check_fn, CheckOutcome, Probes};
///
/// let cache = check_fn("cache", || async { CheckOutcome::up() })
///     .non_critical()
///     .probes(Probes::NONE);
/// ```
///
/// Defaults as in [`HealthCheck`]: critical, readiness only, curable by restart, the registry's
/// timeout, measurement `"status"`.
pub fn check_fn<F, Fut>(name: impl Into<String>, f: F) -> FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CheckOutcome> + Send + 'static,
{
    FnCheck {
        name: name.into(),
        critical: true,
        probes: Probes::READINESS,
        curability: Curability::Restart,
        timeout: None,
        measurement: "status".to_owned(),
        f,
    }
}

impl<F> FnCheck<F> {
    /// Marks the check non-critical (see [`HealthCheck::critical`]).
    #[must_use]
    pub fn non_critical(mut self) -> Self {
        self.critical = false;
        self
    }

    /// Sets the probes the check takes part in (see [`HealthCheck::probes`]).
    #[must_use]
    pub fn probes(mut self, probes: Probes) -> Self {
        self.probes = probes;
        self
    }

    /// Declares whether a restart can cure a failure (see [`HealthCheck::curability`]).
    #[must_use]
    pub fn curability(mut self, curability: Curability) -> Self {
        self.curability = curability;
        self
    }

    /// Sets the check's own timeout (see [`HealthCheck::timeout`]).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the measurement name (see [`HealthCheck::measurement`]).
    #[must_use]
    pub fn measurement(mut self, measurement: impl Into<String>) -> Self {
        self.measurement = measurement.into();
        self
    }
}

impl<F, Fut> HealthCheck for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CheckOutcome> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }
    fn critical(&self) -> bool {
        self.critical
    }
    fn probes(&self) -> Probes {
        self.probes
    }
    fn curability(&self) -> Curability {
        self.curability
    }
    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
    fn measurement(&self) -> &str {
        &self.measurement
    }
    fn check(&self) -> BoxFuture<'_, CheckOutcome> {
        Box::pin((self.f)())
    }
}
