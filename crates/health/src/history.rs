//! Status changes over time: the [`Transition`]s of components and scopes, kept in a bounded
//! ring, counted since start, and signalled to subscribers.
//!
//! The registry hands every view it makes of its state (after each round, each manual change,
//! and each re-render of the HTTP answers, which is when a result turns stale) to
//! [`History::observe`], which compares it with the last one and records what changed. The
//! comparison is between *effective* statuses, the ones a probe answers with, so a check that
//! turns stale shows as a transition to `DOWN` as soon as anything looks.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::{Report, Scope, Status};

/// How many transitions [`crate::Health::transitions`] keeps (the newest).
pub const TRANSITIONS_KEPT: usize = 256;

/// The reason recorded when a manual component that hid nothing is cleared.
const CLEARED: &str = "cleared";

/// What changed status: one component, or the aggregate of a scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A check or manual component, by name.
    Component(String),
    /// The aggregate status of a scope.
    Scope(Scope),
}

impl Subject {
    /// The component's name, or the scope's (`overall`, `liveness`, `readiness`).
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Subject::Component(name) => name,
            Subject::Scope(scope) => scope.as_str(),
        }
    }
}

/// One change of status of a component or a scope.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transition {
    /// When the change was seen.
    pub at: SystemTime,
    /// What changed.
    pub subject: Subject,
    /// The status before.
    pub from: Status,
    /// The status after.
    pub to: Status,
    /// The public short reason of the new status (`"read failed"`; for a scope the summary,
    /// `"database: read failed"`); `None` when there is none, as usually for `UP`.
    pub reason: Option<String>,
}

impl Transition {
    /// Whether the new status is better than the old one (a recovery).
    #[must_use]
    pub fn is_recovery(&self) -> bool {
        self.to < self.from
    }
}

/// The state of every component and scope at one moment, as the registry saw it.
pub(crate) struct Observation {
    /// The registry's generation the view was made from.
    pub(crate) generation: u64,
    /// The (monotonic) moment it was made, which decides staleness.
    pub(crate) now: Instant,
    /// Every component: status, short reason, internal detail (for the log only).
    pub(crate) components: BTreeMap<String, (Status, Option<String>, Option<String>)>,
    /// The aggregate of each scope, in [`Scope::ALL`] order: status and summary reason.
    pub(crate) scopes: [(Status, Option<String>); 3],
}

impl Observation {
    /// Builds an observation from the reports of the three scopes, in [`Scope::ALL`] order.
    pub(crate) fn from_reports(generation: u64, now: Instant, reports: &[Report; 3]) -> Self {
        let components = reports[0]
            .components
            .iter()
            .map(|(name, c)| (name.clone(), (c.status, c.reason.clone(), c.detail.clone())))
            .collect();
        let scopes = [0, 1, 2].map(|i| (reports[i].status, reports[i].reason.clone()));
        Observation {
            generation,
            now,
            components,
            scopes,
        }
    }
}

/// The transitions recorded so far and the signal that wakes subscribers.
pub(crate) struct History {
    state: Mutex<State>,
    changes: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    /// The generation and moment of the newest observation taken, so that one made earlier but
    /// handed in later cannot record a change back to an older state.
    last: Option<(u64, Instant)>,
    components: BTreeMap<String, Status>,
    scopes: [Option<Status>; 3],
    ring: VecDeque<Transition>,
    /// The last transition of each scope, in [`Scope::ALL`] order: kept apart from the ring,
    /// which any number of component changes can flush.
    last_of_scope: [Option<Transition>; 3],
    counts: BTreeMap<(String, Status), u64>,
}

/// Transitions recorded under the history's lock and not yet logged or signalled: the caller
/// finishes them ([`Recorded::finish`]) once it holds no lock, so a slow log sink never holds
/// up whoever waits for that lock.
#[must_use = "finish() logs the transitions and wakes the subscribers"]
pub(crate) struct Recorded<'a> {
    history: &'a History,
    transitions: Vec<Transition>,
    details: Vec<Option<String>>,
}

impl Recorded<'_> {
    /// Logs the transitions and wakes the subscribers, if anything changed.
    pub(crate) fn finish(self) {
        if self.transitions.is_empty() {
            return;
        }
        for (transition, detail) in self.transitions.iter().zip(self.details) {
            log(transition, detail.as_deref());
        }
        self.history
            .changes
            .send_modify(|generation| *generation += 1);
    }
}

impl History {
    pub(crate) fn new() -> History {
        History {
            state: Mutex::new(State::default()),
            changes: watch::Sender::new(0),
        }
    }

    /// A receiver whose value is bumped after every observation that recorded a transition.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Records what changed since the previous observation and logs it. The first observation
    /// only sets the baseline. Observations older than one already taken are ignored.
    #[cfg(test)]
    pub(crate) fn observe(&self, observation: Observation) {
        self.record(observation).finish();
    }

    /// Records what changed since the previous observation, to be logged and signalled by
    /// [`Recorded::finish`] once the caller holds no lock. The first observation only sets the
    /// baseline. Observations older than one already taken are ignored.
    pub(crate) fn record(&self, observation: Observation) -> Recorded<'_> {
        let at = SystemTime::now();
        let mut details = Vec::new();
        let transitions = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.record(observation, at, &mut details)
        };
        Recorded {
            history: self,
            transitions,
            details,
        }
    }

    /// The newest transitions first, at most [`TRANSITIONS_KEPT`].
    pub(crate) fn transitions(&self) -> Vec<Transition> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.ring.iter().rev().cloned().collect()
    }

    /// Every (component or scope, new status) with how many transitions led to it.
    pub(crate) fn counts(&self) -> Vec<(String, Status, u64)> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .counts
            .iter()
            .map(|((name, status), n)| (name.clone(), *status, *n))
            .collect()
    }

    /// The last transition of a scope, if any, however many other changes came after it.
    pub(crate) fn last_change(&self, scope: Scope) -> Option<Transition> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let index = Scope::ALL.iter().position(|s| *s == scope)?;
        state.last_of_scope[index].clone()
    }
}

impl State {
    /// Compares an observation with the last state, records the differences (components first,
    /// then scopes) and returns them in that order, with each one's detail in `details`.
    fn record(
        &mut self,
        observation: Observation,
        at: SystemTime,
        details: &mut Vec<Option<String>>,
    ) -> Vec<Transition> {
        let stamp = (observation.generation, observation.now);
        let baseline = match self.last {
            Some(last) if stamp < last => return Vec::new(),
            Some(_) => false,
            None => true,
        };
        self.last = Some(stamp);
        let mut recorded = Vec::new();
        let mut change = |subject: Subject, from: Status, to: Status, reason: Option<String>| {
            recorded.push(Transition {
                at,
                subject,
                from,
                to,
                reason,
            });
        };

        // Components that went away: a cleared manual component no longer counts against any
        // scope, which is what `UP` means to a consumer.
        let gone: Vec<String> = self
            .components
            .keys()
            .filter(|name| !observation.components.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(from) = self.components.remove(&name)
                && from != Status::Up
                && !baseline
            {
                change(
                    Subject::Component(name),
                    from,
                    Status::Up,
                    Some(CLEARED.to_owned()),
                );
                details.push(None);
            }
        }
        for (name, (to, reason, detail)) in observation.components {
            // A component that appears (a manual one set) counted as nothing before: `UP`.
            let from = self
                .components
                .insert(name.clone(), to)
                .unwrap_or(Status::Up);
            if from != to && !baseline {
                change(Subject::Component(name), from, to, reason);
                details.push(detail);
            }
        }
        for (i, (to, reason)) in observation.scopes.into_iter().enumerate() {
            let from = self.scopes[i].replace(to);
            if let Some(from) = from
                && from != to
            {
                change(Subject::Scope(Scope::ALL[i]), from, to, reason);
                details.push(None);
            }
        }

        for t in &recorded {
            if let Subject::Scope(scope) = &t.subject
                && let Some(index) = Scope::ALL.iter().position(|s| s == scope)
            {
                self.last_of_scope[index] = Some(t.clone());
            }
            *self
                .counts
                .entry((t.subject.name().to_owned(), t.to))
                .or_default() += 1;
            if self.ring.len() == TRANSITIONS_KEPT {
                self.ring.pop_front();
            }
            self.ring.push_back(t.clone());
        }
        recorded
    }
}

fn log(t: &Transition, detail: Option<&str>) {
    let (kind, name) = match &t.subject {
        Subject::Component(name) => ("component", name.as_str()),
        Subject::Scope(scope) => ("scope", scope.as_str()),
    };
    let reason = t.reason.as_deref().unwrap_or("");
    let detail = detail.unwrap_or("");
    if t.is_recovery() {
        tracing::info!(kind, name, from = %t.from, to = %t.to, reason, "health {kind} {name} is {}", t.to);
    } else {
        tracing::warn!(kind, name, from = %t.from, to = %t.to, reason, detail, "health {kind} {name} is {}", t.to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(
        generation: u64,
        components: &[(&str, Status, Option<&str>)],
        overall: Status,
    ) -> Observation {
        Observation {
            generation,
            now: Instant::now(),
            components: components
                .iter()
                .map(|(n, s, r)| (n.to_string(), (*s, r.map(str::to_owned), None)))
                .collect(),
            scopes: [(overall, None), (Status::Up, None), (overall, None)],
        }
    }

    #[test]
    fn the_first_observation_is_the_baseline_and_records_nothing() {
        let history = History::new();
        let rx = history.subscribe();
        history.observe(observation(
            0,
            &[("db", Status::OutOfService, None)],
            Status::OutOfService,
        ));
        assert!(history.transitions().is_empty());
        assert_eq!(*rx.borrow(), 0);
    }

    #[test]
    fn a_change_records_the_component_and_the_scopes_newest_first_and_bumps_the_signal() {
        let history = History::new();
        let rx = history.subscribe();
        history.observe(observation(0, &[("db", Status::Up, None)], Status::Up));
        history.observe(observation(
            1,
            &[("db", Status::Down, Some("read failed"))],
            Status::Down,
        ));
        let t = history.transitions();
        let names: Vec<&str> = t.iter().map(|t| t.subject.name()).collect();
        assert_eq!(names, ["readiness", "overall", "db"]);
        assert_eq!(t[2].from, Status::Up);
        assert_eq!(t[2].to, Status::Down);
        assert_eq!(t[2].reason.as_deref(), Some("read failed"));
        assert!(!t[2].is_recovery());
        assert_eq!(*rx.borrow(), 1);

        // Same statuses again, another reason: nothing new.
        history.observe(observation(
            2,
            &[("db", Status::Down, Some("other"))],
            Status::Down,
        ));
        assert_eq!(history.transitions().len(), 3);
        assert_eq!(*rx.borrow(), 1);
    }

    #[test]
    fn an_older_observation_handed_in_late_is_ignored() {
        let history = History::new();
        history.observe(observation(0, &[("db", Status::Up, None)], Status::Up));
        history.observe(observation(2, &[("db", Status::Down, None)], Status::Down));
        history.observe(observation(1, &[("db", Status::Up, None)], Status::Up));
        assert_eq!(history.transitions()[0].to, Status::Down);
        assert_eq!(history.transitions().len(), 3);
    }

    #[test]
    fn a_component_that_appears_comes_from_up_and_one_that_goes_returns_to_up_as_cleared() {
        let history = History::new();
        history.observe(observation(0, &[], Status::Up));
        history.observe(observation(
            1,
            &[("forced", Status::Down, Some("forced unhealthy"))],
            Status::Down,
        ));
        history.observe(observation(2, &[], Status::Up));
        let t = history.transitions();
        let forced: Vec<&Transition> = t
            .iter()
            .filter(|t| t.subject == Subject::Component("forced".into()))
            .collect();
        assert_eq!(forced.len(), 2);
        assert_eq!((forced[1].from, forced[1].to), (Status::Up, Status::Down));
        assert_eq!((forced[0].from, forced[0].to), (Status::Down, Status::Up));
        assert_eq!(forced[0].reason.as_deref(), Some("cleared"));
        assert!(forced[0].is_recovery());
    }

    #[test]
    fn the_ring_keeps_the_newest_256_while_the_counts_keep_everything() {
        let history = History::new();
        let flaps = 1000u64;
        history.observe(observation(0, &[("db", Status::Up, None)], Status::Up));
        for g in 1..=flaps {
            let status = if g % 2 == 1 { Status::Down } else { Status::Up };
            history.observe(observation(g, &[("db", status, None)], status));
        }
        let t = history.transitions();
        assert_eq!(t.len(), TRANSITIONS_KEPT);
        // Newest first: the last observation (even: back to UP) leads.
        assert_eq!(t[0].to, Status::Up);
        assert!(t.windows(2).all(|w| w[0].at >= w[1].at));

        let counts = history.counts();
        let count = |name: &str, status: Status| {
            counts
                .iter()
                .find(|(n, s, _)| n == name && *s == status)
                .map_or(0, |(_, _, c)| *c)
        };
        assert_eq!(count("db", Status::Down), flaps / 2);
        assert_eq!(count("db", Status::Up), flaps / 2);
        assert_eq!(count("overall", Status::Down), flaps / 2);
        assert_eq!(count("readiness", Status::Up), flaps / 2);
        assert_eq!(count("liveness", Status::Up), 0);
        assert_eq!(*history.subscribe().borrow(), flaps);
    }

    #[test]
    fn the_last_change_of_a_scope_is_found_behind_newer_component_changes() {
        let history = History::new();
        history.observe(observation(0, &[("db", Status::Up, None)], Status::Up));
        history.observe(observation(1, &[("db", Status::Down, None)], Status::Down));
        history.observe(observation(
            2,
            &[("db", Status::Down, None), ("x", Status::Degraded, None)],
            Status::Down,
        ));
        let last = history.last_change(Scope::Overall).unwrap();
        assert_eq!((last.from, last.to), (Status::Up, Status::Down));
        assert!(history.last_change(Scope::Liveness).is_none());
    }

    #[test]
    fn the_last_change_of_a_scope_survives_any_number_of_component_changes_after_it() {
        let history = History::new();
        history.observe(observation(0, &[("db", Status::Up, None)], Status::Up));
        history.observe(observation(1, &[("db", Status::Down, None)], Status::Down));
        let went_down = history.last_change(Scope::Overall).unwrap();
        // A non-critical component flapping while the overall status stays DOWN.
        for g in 2..1000 {
            let flap = if g % 2 == 0 {
                Status::Degraded
            } else {
                Status::Up
            };
            history.observe(observation(
                g,
                &[("db", Status::Down, None), ("x", flap, None)],
                Status::Down,
            ));
        }
        assert!(
            history
                .transitions()
                .iter()
                .all(|t| t.subject != Subject::Scope(Scope::Overall)),
            "the ring still holds the overall change: the test shows nothing"
        );
        assert_eq!(history.last_change(Scope::Overall), Some(went_down));
    }

    #[test]
    fn recorded_transitions_are_signalled_only_once_finished() {
        let history = History::new();
        let rx = history.subscribe();
        history.observe(observation(0, &[("db", Status::Up, None)], Status::Up));
        let recorded = history.record(observation(1, &[("db", Status::Down, None)], Status::Down));
        assert_eq!(*rx.borrow(), 0);
        assert_eq!(history.transitions().len(), 3, "recorded at once");
        recorded.finish();
        assert_eq!(*rx.borrow(), 1);
    }
}
