//! Whether restarting the instance can cure a failing check ([`Curability`]), and so which
//! probes that failure may fail.

use std::fmt;

/// Whether restarting (or replacing) the instance can cure a failure of a check.
///
/// Every check declares it ([`crate::HealthCheck::curability`]), because the probes that act on
/// a failure differ in what they can do about it. A liveness probe (Docker's `HEALTHCHECK`,
/// Kubernetes' `livenessProbe`, gRPC `liveness`) restarts or replaces the instance; a readiness
/// probe takes it out of a balancer's rotation. Both help when the fault is the instance's own,
/// and both make things worse when it is not: restarting every replica does not bring a shared
/// database back, it only adds a fleet that is still starting when the database returns, and
/// taking every replica out of rotation leaves a balancer nothing to send requests to.
///
/// So, in a report of a scope ([`crate::Scope`]):
///
/// | failure of a check that is | `/health` (overall) | liveness | readiness |
/// |---|---|---|---|
/// | [`Restart`](Curability::Restart) | 503 | 503 if it takes part | 503 if it takes part |
/// | [`NotByRestart`](Curability::NotByRestart) | 503 | at most `DEGRADED` (200) | at most `DEGRADED` (200) |
///
/// "Failure" here is a `DOWN` the check itself reported (including "timed out" and "check
/// panicked"). What the registry concludes about the instance itself is never capped: a
/// result gone stale (the refresher stopped: this process is broken) fails every scope the
/// check takes part in, and "not checked yet" keeps readiness out until the first round.
///
/// A service that can prove a [`NotByRestart`](Curability::NotByRestart) fault is its own (its
/// peers reach the dependency, it cannot) says so with a manual component
/// ([`crate::Health::set_manual`]), which is always curable and fails the probes it names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Curability {
    /// A restart or a replacement can cure a failure: the fault lives in the instance (its
    /// embedded database file, its disk, its memory). Fails every probe the check takes part
    /// in, so that an orchestrator replaces the instance. The default.
    #[default]
    Restart,
    /// A restart cannot cure a failure: the dependency lives outside the instance, typically
    /// shared by every replica (a database server). `/health` still fails (the dependency
    /// cannot serve), but liveness and readiness only turn `DEGRADED`: nothing restarts, and
    /// the instance stays in rotation (fail open) to answer what it can.
    NotByRestart,
}

impl Curability {
    /// Whether a restart can cure a failure.
    #[must_use]
    pub fn by_restart(self) -> bool {
        self == Curability::Restart
    }

    /// `restart` or `notByRestart`, as written in health answers.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Curability::Restart => "restart",
            Curability::NotByRestart => "notByRestart",
        }
    }
}

impl fmt::Display for Curability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
