//! A point-in-time view of a service's health ([`Report`]) and of each component in it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::{Curability, Scope, Status};

/// The health of a scope at one moment: the aggregate status, why it is not `UP`, and every
/// component in the scope. Made by [`crate::Health::report`] from cached results.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Report {
    /// The scope the report covers.
    pub scope: Scope,
    /// The worst [`ComponentReport::contribution`] of the components in this scope, `UP` when
    /// there are none.
    pub status: Status,
    /// When `status` is not `UP`: every component that is not `UP`, worst first, as
    /// `"name: reason"`, joined by `"; "`, e.g. `"testability: forced unhealthy"`.
    /// Short reasons only: never a component's internal detail.
    pub reason: Option<String>,
    /// The components in the scope, by name.
    pub components: BTreeMap<String, ComponentReport>,
}

impl Report {
    /// Builds a report of the overall scope from components: aggregates their statuses (worst
    /// wins) and writes the summary reason. Same as
    /// [`for_scope`](Self::for_scope)`(Scope::Overall, components)`.
    #[must_use]
    pub fn from_components(components: BTreeMap<String, ComponentReport>) -> Report {
        Report::for_scope(Scope::Overall, components)
    }

    /// Builds a report of `scope` from components: aggregates what each weighs in that scope
    /// ([`ComponentReport::contribution_in`], worst wins) and writes the summary reason.
    #[must_use]
    pub fn for_scope(scope: Scope, components: BTreeMap<String, ComponentReport>) -> Report {
        let status = components
            .values()
            .map(|c| c.contribution_in(scope))
            .fold(Status::Up, Status::worst);
        let reason = (status != Status::Up).then(|| summary_reason(scope, &components));
        Report {
            scope,
            status,
            reason,
            components,
        }
    }

    /// 503 when the status is `DOWN` or `OUT_OF_SERVICE`, else 200.
    #[must_use]
    pub fn http_status(&self) -> u16 {
        self.status.http_status()
    }
}

fn summary_reason(scope: Scope, components: &BTreeMap<String, ComponentReport>) -> String {
    let mut failing: Vec<(&String, &ComponentReport)> = components
        .iter()
        .filter(|(_, c)| c.status != Status::Up)
        .collect();
    // Worst first, so the first name is the one that made the answer what it is; the sort is
    // stable, so equal statuses stay in name order.
    failing.sort_by_key(|(_, c)| std::cmp::Reverse(c.contribution_in(scope)));
    let mut out = String::new();
    for (name, c) in failing {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(name);
        out.push_str(": ");
        match &c.reason {
            Some(r) => out.push_str(r),
            None => out.push_str(c.status.as_str()),
        }
    }
    out
}

/// Where a component's status comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComponentKind {
    /// A [`crate::HealthCheck`] run in the background.
    Check,
    /// Set from outside with [`crate::Health::set_manual`].
    Manual,
}

/// One component in a [`Report`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ComponentReport {
    /// The component's own status. A check that has not run yet is `OUT_OF_SERVICE`
    /// ("not checked yet"); a stale result is `DOWN` ("stale: …").
    pub status: Status,
    /// Short, public reason.
    pub reason: Option<String>,
    /// Internal detail (only rendered with `details=always`).
    pub detail: Option<String>,
    /// Observed value, if the check measured one.
    pub observed_value: Option<serde_json::Value>,
    /// Unit of the observed value.
    pub observed_unit: Option<String>,
    /// What the observed value measures (see [`crate::HealthCheck::measurement`]).
    pub measurement: String,
    /// Whether the component can make the aggregate fail.
    pub critical: bool,
    /// Whether a restart can cure its failure: what its check declares
    /// ([`crate::HealthCheck::curability`]); [`Curability::Restart`] for a manual component and
    /// for a result gone stale (then the refresher, in this process, is what failed).
    pub curability: Curability,
    /// A background check or a manual component.
    pub kind: ComponentKind,
    /// When the result was produced (when a manual component was set); `None` before a check
    /// first ran.
    pub checked_at: Option<SystemTime>,
    /// How long the check took; `None` for manual components and checks that have not run.
    pub duration: Option<Duration>,
}

impl ComponentReport {
    /// When the check behind this result began (it ended at `checked_at`, after `duration`);
    /// `None` for a manual component and for a check that has not run yet.
    #[must_use]
    pub fn check_began(&self) -> Option<SystemTime> {
        if self.kind != ComponentKind::Check {
            return None;
        }
        self.checked_at?
            .checked_sub(self.duration.unwrap_or_default())
    }

    /// What this component weighs in the overall aggregate: its status, capped at `DEGRADED`
    /// when it is not critical.
    #[must_use]
    pub fn contribution(&self) -> Status {
        self.status.contribution(self.critical)
    }

    /// What this component weighs in the aggregate of `scope`: as in
    /// [`contribution`](Self::contribution), and in liveness and readiness a `DOWN` that a
    /// restart cannot cure ([`Curability::NotByRestart`]) is capped at `DEGRADED` too: those
    /// scopes restart the instance or take it out of rotation, and neither cures it.
    #[must_use]
    pub fn contribution_in(&self, scope: Scope) -> Status {
        let contribution = self.contribution();
        let uncurable = self.curability == Curability::NotByRestart && self.status == Status::Down;
        if uncurable && scope != Scope::Overall {
            contribution.min(Status::Degraded)
        } else {
            contribution
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(status: Status, critical: bool, reason: Option<&str>) -> ComponentReport {
        ComponentReport {
            status,
            reason: reason.map(str::to_owned),
            detail: Some("internal".to_owned()),
            observed_value: None,
            observed_unit: None,
            measurement: "status".to_owned(),
            critical,
            curability: Curability::Restart,
            kind: ComponentKind::Check,
            checked_at: None,
            duration: None,
        }
    }

    fn report(parts: &[(&str, Status, bool, Option<&str>)]) -> Report {
        Report::from_components(
            parts
                .iter()
                .map(|(n, s, c, r)| (n.to_string(), component(*s, *c, *r)))
                .collect(),
        )
    }

    #[test]
    fn an_empty_scope_is_up() {
        let r = report(&[]);
        assert_eq!(r.status, Status::Up);
        assert_eq!(r.reason, None);
        assert_eq!(r.http_status(), 200);
    }

    #[test]
    fn the_worst_component_decides_the_aggregate() {
        use Status::*;
        let cases = [
            (vec![Up, Up], Up),
            (vec![Up, Unknown], Unknown),
            (vec![Unknown, Degraded], Degraded),
            (vec![Degraded, OutOfService, Up], OutOfService),
            (vec![OutOfService, Down, Degraded], Down),
        ];
        for (statuses, expected) in cases {
            let names: Vec<String> = (0..statuses.len()).map(|i| format!("c{i}")).collect();
            let parts: Vec<_> = names
                .iter()
                .zip(&statuses)
                .map(|(n, s)| (n.as_str(), *s, true, None))
                .collect();
            assert_eq!(report(&parts).status, expected, "{statuses:?}");
        }
    }

    #[test]
    fn a_non_critical_component_that_is_down_degrades_but_answers_200() {
        let r = report(&[
            ("database", Status::Up, true, None),
            ("cache", Status::Down, false, Some("connection refused")),
        ]);
        assert_eq!(r.status, Status::Degraded);
        assert_eq!(r.http_status(), 200);
        assert_eq!(r.components["cache"].status, Status::Down);
        assert_eq!(r.reason.as_deref(), Some("cache: connection refused"));
    }

    #[test]
    fn the_reason_names_every_failing_component_worst_first_without_details() {
        let r = report(&[
            ("a-cache", Status::Down, false, Some("refused")),
            ("database", Status::Down, true, Some("read failed")),
            ("lifecycle", Status::OutOfService, true, Some("draining")),
            ("ok", Status::Up, true, Some("fine")),
            ("z", Status::Unknown, true, None),
        ]);
        assert_eq!(r.status, Status::Down);
        assert_eq!(r.http_status(), 503);
        assert_eq!(
            r.reason.as_deref(),
            Some("database: read failed; lifecycle: draining; a-cache: refused; z: UNKNOWN")
        );
    }
}
