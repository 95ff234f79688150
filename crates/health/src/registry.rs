//! The registry ([`Health`]): registered checks, their cached results, manual components, and
//! reports built from them without running anything.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::history::{History, Observation, Recorded, Transition};
use crate::report::{ComponentKind, ComponentReport, Report};
use crate::{CheckOutcome, Curability, HealthCheck, Probes, Scope, Startup, Status};

/// The health of a service: checks refreshed in the background, manual components set from
/// outside, and reports built from the latest results.
///
/// Cheap to clone (an [`Arc`]); clones share everything. Reading a report never runs a check
/// and never waits for one, so any number of probes costs each dependency at most one check
/// per refresh interval.
#[derive(Clone)]
pub struct Health {
    pub(crate) shared: Arc<Shared>,
}

/// A check as registered, with the properties the registry reads once at build time.
pub(crate) struct Registered {
    pub(crate) check: Arc<dyn HealthCheck>,
    pub(crate) name: String,
    pub(crate) critical: bool,
    pub(crate) probes: Probes,
    pub(crate) curability: Curability,
    pub(crate) timeout: Duration,
    pub(crate) measurement: String,
}

/// One finished run of a check.
#[derive(Clone, Debug)]
pub(crate) struct CheckResult {
    pub(crate) outcome: CheckOutcome,
    /// Wall-clock time, for display.
    pub(crate) checked_at: SystemTime,
    /// Monotonic time, for staleness (tokio's clock, so tests can pause it).
    pub(crate) finished: Instant,
    pub(crate) duration: Duration,
}

/// A component whose status is set from outside.
#[derive(Clone, Debug)]
pub(crate) struct Manual {
    status: Status,
    reason: String,
    detail: Option<String>,
    probes: Probes,
    set_at: SystemTime,
}

/// Everything a report is made from, swapped as a whole: readers clone two `Arc`s.
#[derive(Clone)]
pub(crate) struct Snapshot {
    pub(crate) generation: u64,
    /// One entry per registered check, in registration order; `None` until it first ran.
    pub(crate) results: Arc<[Option<CheckResult>]>,
    manual: Arc<BTreeMap<String, Manual>>,
}

pub(crate) struct Shared {
    pub(crate) checks: Box<[Registered]>,
    pub(crate) interval: Duration,
    pub(crate) staleness: Duration,
    state: RwLock<Snapshot>,
    /// Mirrors `state.generation`, so a probe can see that nothing changed without a lock.
    generation: AtomicU64,
    /// Held for a whole round, so two rounds never run at once.
    pub(crate) round: tokio::sync::Mutex<()>,
    /// Whether a round has completed.
    pub(crate) refreshed: AtomicBool,
    /// Status changes: ring, counts and the change signal.
    history: History,
    /// When the registry was built.
    created_at: SystemTime,
    /// Whether the service has finished starting.
    startup: Startup,
    /// Whether `startup` is the registry's own, completed by the first round.
    own_startup: bool,
}

impl Health {
    pub(crate) fn new(
        checks: Vec<Registered>,
        interval: Duration,
        staleness: Duration,
        startup: Option<Startup>,
    ) -> Health {
        let own_startup = startup.is_none();
        let results = checks.iter().map(|_| None).collect();
        let health = Health {
            shared: Arc::new(Shared {
                checks: checks.into_boxed_slice(),
                interval,
                staleness,
                state: RwLock::new(Snapshot {
                    generation: 0,
                    results,
                    manual: Arc::default(),
                }),
                generation: AtomicU64::new(0),
                round: tokio::sync::Mutex::new(()),
                refreshed: AtomicBool::new(false),
                history: History::new(),
                created_at: SystemTime::now(),
                startup: startup.unwrap_or_default(),
                own_startup,
            }),
        };
        // The baseline every later transition is measured against.
        health.observe().finish();
        health
    }

    /// The background refresh interval.
    #[must_use]
    pub fn interval(&self) -> Duration {
        self.shared.interval
    }

    /// The age from which a check's result counts as `DOWN` ("stale").
    #[must_use]
    pub fn staleness(&self) -> Duration {
        self.shared.staleness
    }

    /// The names of the registered checks, in registration order.
    pub fn check_names(&self) -> impl Iterator<Item = &str> {
        self.shared.checks.iter().map(|c| c.name.as_str())
    }

    /// Each registered check's name and timeout (its own, or the registry's default), in
    /// registration order: what a monitor compares check durations with.
    pub fn check_timeouts(&self) -> impl Iterator<Item = (&str, Duration)> {
        self.shared
            .checks
            .iter()
            .map(|c| (c.name.as_str(), c.timeout))
    }

    /// The health of a scope now, from the latest cached results. Never runs a check.
    ///
    /// A check that has not completed a run yet is `OUT_OF_SERVICE` ("not checked yet"): a
    /// service must not look ready before it has looked. A result at least
    /// [`staleness`](Self::staleness) old is `DOWN` ("stale: last result … old").
    #[must_use]
    pub fn report(&self, scope: Scope) -> Report {
        self.report_from(&self.snapshot(), scope, Instant::now())
    }

    /// Sets a manual component, effective on the very next report or probe: a lifecycle state
    /// (`OUT_OF_SERVICE` "draining" for readiness at shutdown), an operator's switch (`DOWN`
    /// "forced unhealthy"). Manual components never turn stale and are always critical.
    ///
    /// Setting a name again replaces it. A manual component named like a check hides that
    /// check in every report until it is cleared (a way to force a dependency down).
    pub fn set_manual(
        &self,
        name: impl Into<String>,
        status: Status,
        reason: impl Into<String>,
        probes: Probes,
    ) {
        self.set_manual_with_detail(name, status, reason, None, probes);
    }

    /// [`set_manual`](Self::set_manual) with an internal detail, shown like a check's (only at
    /// `details=always`): what the state was concluded from, e.g. the answers behind it.
    pub fn set_manual_with_detail(
        &self,
        name: impl Into<String>,
        status: Status,
        reason: impl Into<String>,
        detail: Option<String>,
        probes: Probes,
    ) {
        let name = name.into();
        let manual = Manual {
            status,
            reason: reason.into(),
            detail,
            probes,
            set_at: SystemTime::now(),
        };
        // A change of status is logged as a transition; this line is for the record of who
        // set what.
        tracing::debug!(component = %name, %status, reason = %manual.reason, "health component set");
        self.update(|snap| {
            Arc::make_mut(&mut snap.manual).insert(name, manual);
        });
        self.observe().finish();
    }

    /// Removes a manual component, effective on the very next report or probe. Returns whether
    /// it existed.
    pub fn clear_manual(&self, name: &str) -> bool {
        let mut existed = false;
        self.update(|snap| {
            if snap.manual.contains_key(name) {
                existed = Arc::make_mut(&mut snap.manual).remove(name).is_some();
            }
        });
        if existed {
            tracing::debug!(component = %name, "health component cleared");
            self.observe().finish();
        }
        existed
    }

    /// A receiver that wakes after every change of status of any component or scope: its
    /// value, a generation number, is bumped once per batch of changes (a round, a manual
    /// component set or cleared, a result turning stale). A change of reason alone does not
    /// bump it. For push consumers (a gRPC `Watch`, a status page) that must not poll.
    ///
    /// A result turning stale is noticed when something looks: the HTTP endpoints do at that
    /// moment whenever they are asked, and [`Health::report`] never records.
    #[must_use]
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.history.subscribe()
    }

    /// The last status changes of components and scopes, newest first, at most
    /// [`crate::TRANSITIONS_KEPT`]. The first state after the registry is built is the baseline:
    /// the first round's results show as transitions from `OUT_OF_SERVICE` ("not checked yet").
    #[must_use]
    pub fn transitions(&self) -> Vec<Transition> {
        self.shared.history.transitions()
    }

    /// How many transitions since the registry was built led each component or scope (by name:
    /// `overall`, `liveness`, `readiness` for scopes) to each status, sorted by name and
    /// status. Not bounded by the ring: for counters such as
    /// `health_transitions_total{component,status}`.
    #[must_use]
    pub fn transition_counts(&self) -> Vec<(String, Status, u64)> {
        self.shared.history.counts()
    }

    /// The last transition of a scope's aggregate status, if it ever changed.
    #[must_use]
    pub fn last_change(&self, scope: Scope) -> Option<Transition> {
        self.shared.history.last_change(scope)
    }

    /// The service's start-up state (`/health/started`): the one given to
    /// [`HealthBuilder::startup`](crate::HealthBuilder::startup), else the registry's own,
    /// complete after the first round.
    #[must_use]
    pub fn startup(&self) -> &Startup {
        &self.shared.startup
    }

    /// When the registry was built.
    #[must_use]
    pub fn created_at(&self) -> SystemTime {
        self.shared.created_at
    }

    /// Compares the current state with the last one seen and records the transitions, to be
    /// logged once no lock is held.
    fn observe(&self) -> Recorded<'_> {
        let snapshot = self.snapshot();
        let now = Instant::now();
        let reports = Scope::ALL.map(|scope| self.report_from(&snapshot, scope, now));
        self.observe_reports(snapshot.generation, now, &reports)
    }

    /// Records the transitions between the last state seen and these reports of the three
    /// scopes (in [`Scope::ALL`] order), made from `generation` at `now`; the caller finishes
    /// them (logs and signals) once it holds no lock.
    pub(crate) fn observe_reports(
        &self,
        generation: u64,
        now: Instant,
        reports: &[Report; 3],
    ) -> Recorded<'_> {
        let observation = Observation::from_reports(generation, now, reports);
        self.shared.history.record(observation)
    }

    /// A number that changes whenever results or manual components change.
    pub(crate) fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        self.shared
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Applies a change to the snapshot and bumps the generation.
    fn update(&self, change: impl FnOnce(&mut Snapshot)) {
        // Nothing that can panic runs while the lock is held, so a poisoned lock still holds
        // a consistent snapshot.
        let mut state = self
            .shared
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        change(&mut state);
        state.generation += 1;
        self.shared
            .generation
            .store(state.generation, Ordering::Release);
    }

    /// Publishes the results of a full round and records what changed, to be logged once the
    /// caller holds no lock (the round's).
    pub(crate) fn publish(&self, results: Vec<Option<CheckResult>>) -> Recorded<'_> {
        self.update(|snap| snap.results = results.into());
        self.shared.refreshed.store(true, Ordering::Release);
        let recorded = self.observe();
        if self.shared.own_startup {
            self.shared.startup.complete();
        }
        recorded
    }

    /// The report for a scope from a snapshot, at a given time.
    pub(crate) fn report_from(&self, snap: &Snapshot, scope: Scope, now: Instant) -> Report {
        let mut components = BTreeMap::new();
        for (reg, result) in self.shared.checks.iter().zip(snap.results.iter()) {
            if reg.probes.includes(scope) && !snap.manual.contains_key(&reg.name) {
                let c = self.check_component(reg, result.as_ref(), now);
                components.insert(reg.name.clone(), c);
            }
        }
        for (name, m) in snap.manual.iter() {
            if m.probes.includes(scope) {
                components.insert(name.clone(), manual_component(m));
            }
        }
        Report::for_scope(scope, components)
    }

    /// The first moment a result in the snapshot that is not stale at `now` turns stale;
    /// `None` if none will.
    #[cfg(any(feature = "axum", feature = "grpc"))]
    pub(crate) fn stale_deadline(&self, snap: &Snapshot, now: Instant) -> Option<Instant> {
        snap.results
            .iter()
            .flatten()
            .map(|r| r.finished + self.shared.staleness)
            .filter(|deadline| *deadline > now)
            .min()
    }

    fn check_component(
        &self,
        reg: &Registered,
        result: Option<&CheckResult>,
        now: Instant,
    ) -> ComponentReport {
        let mut c = ComponentReport {
            status: Status::OutOfService,
            reason: Some("not checked yet".to_owned()),
            detail: None,
            observed_value: None,
            observed_unit: None,
            measurement: reg.measurement.clone(),
            critical: reg.critical,
            curability: reg.curability,
            kind: ComponentKind::Check,
            checked_at: None,
            duration: None,
        };
        let Some(r) = result else { return c };
        let o = &r.outcome;
        c.status = o.status;
        c.reason.clone_from(&o.reason);
        c.detail.clone_from(&o.detail);
        c.observed_value.clone_from(&o.observed_value);
        c.observed_unit.clone_from(&o.observed_unit);
        c.checked_at = Some(r.checked_at);
        c.duration = Some(r.duration);
        let age = now.saturating_duration_since(r.finished);
        if age >= self.shared.staleness {
            c.status = Status::Down;
            // Whatever the check declares: no result means this process stopped checking.
            c.curability = Curability::Restart;
            c.reason = Some(format!("stale: last result {}s old", age.as_secs()));
            c.detail = Some(match &o.reason {
                Some(reason) => format!("last result was {}: {reason}", o.status),
                None => format!("last result was {}", o.status),
            });
        }
        c
    }
}

fn manual_component(m: &Manual) -> ComponentReport {
    ComponentReport {
        status: m.status,
        reason: Some(m.reason.clone()),
        detail: m.detail.clone(),
        observed_value: None,
        observed_unit: None,
        measurement: "status".to_owned(),
        critical: true,
        curability: Curability::Restart,
        kind: ComponentKind::Manual,
        checked_at: Some(m.set_at),
        duration: None,
    }
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("checks", &self.check_names().collect::<Vec<_>>())
            .field("interval", &self.shared.interval)
            .field("staleness", &self.shared.staleness)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}
