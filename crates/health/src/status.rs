//! The health status of a component or of a whole service, and how statuses combine.

use std::fmt;

use serde::Serialize;

/// The health of one component, or of a whole scope after aggregation.
///
/// The variants are declared from best to worst, so the derived [`Ord`] *is* the severity
/// used by aggregation: `Up < Unknown < Degraded < OutOfService < Down`, and the worst status
/// wins (see [`Status::worst`]).
///
/// Why this order (it differs from Spring Boot, which ranks `UNKNOWN` below `UP`):
/// - `DOWN` first: something the service needs is broken.
/// - `OUT_OF_SERVICE` next: deliberately not serving (starting, draining, forced); also a 503,
///   but a real failure is the more useful thing to report.
/// - `DEGRADED` above `UNKNOWN`: a non-critical component that is known to be failing says
///   more than one whose state nobody knows.
/// - `UNKNOWN` above `UP`: a status nobody can vouch for must not hide behind `UP`; it still
///   answers 200 because it is not a known failure.
///
/// Serialized (and displayed) as `UP`, `UNKNOWN`, `DEGRADED`, `OUT_OF_SERVICE`, `DOWN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(
    as = HealthStatus,
    // The doc above is written for Rust readers; an API reader needs the order and the codes.
    description = "A health status, worst first: `DOWN > OUT_OF_SERVICE > DEGRADED > UNKNOWN > UP`."
))]
pub enum Status {
    /// Working.
    Up,
    /// Not known to be working or failing.
    Unknown,
    /// Working with reduced function; what a non-critical component that is down makes of
    /// the aggregate. `warn` in `application/health+json`.
    Degraded,
    /// Deliberately not serving: starting, draining or forced out. Answers 503.
    OutOfService,
    /// Failing. Answers 503.
    Down,
}

impl Status {
    /// The worse of two statuses (the one that wins aggregation).
    #[must_use]
    pub fn worst(self, other: Status) -> Status {
        self.max(other)
    }

    /// The HTTP status code a probe answers with: 503 for [`Status::Down`] and
    /// [`Status::OutOfService`], 200 for everything else.
    #[must_use]
    pub fn http_status(self) -> u16 {
        if self.is_failure() { 503 } else { 200 }
    }

    /// Whether this status makes a probe fail (`DOWN` or `OUT_OF_SERVICE`).
    #[must_use]
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Down | Status::OutOfService)
    }

    /// The status as written in JSON: `UP`, `UNKNOWN`, `DEGRADED`, `OUT_OF_SERVICE`, `DOWN`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "UP",
            Status::Unknown => "UNKNOWN",
            Status::Degraded => "DEGRADED",
            Status::OutOfService => "OUT_OF_SERVICE",
            Status::Down => "DOWN",
        }
    }

    /// The status in `application/health+json` (draft-inadarei-api-health-check):
    /// `pass` for `UP`, `fail` for `DOWN` and `OUT_OF_SERVICE`, `warn` for the rest.
    #[must_use]
    pub fn health_json(self) -> &'static str {
        match self {
            Status::Up => "pass",
            Status::Down | Status::OutOfService => "fail",
            Status::Degraded | Status::Unknown => "warn",
        }
    }

    /// What this component's status weighs in an aggregate: a non-critical component can at
    /// worst make it [`Status::Degraded`], never a 503.
    #[must_use]
    pub fn contribution(self, critical: bool) -> Status {
        if !critical && self.is_failure() {
            Status::Degraded
        } else {
            self
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Status; 5] = [
        Status::Up,
        Status::Unknown,
        Status::Degraded,
        Status::OutOfService,
        Status::Down,
    ];

    #[test]
    fn aggregation_order_is_down_out_of_service_degraded_unknown_up() {
        let mut sorted = ALL;
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(
            sorted,
            [
                Status::Down,
                Status::OutOfService,
                Status::Degraded,
                Status::Unknown,
                Status::Up
            ]
        );
    }

    #[test]
    fn the_worst_status_wins_whatever_the_order_of_the_operands() {
        for a in ALL {
            for b in ALL {
                let w = a.worst(b);
                assert_eq!(w, b.worst(a));
                assert!(w >= a && w >= b);
                assert!(w == a || w == b);
            }
        }
        assert_eq!(Status::Up.worst(Status::Unknown), Status::Unknown);
        assert_eq!(Status::Degraded.worst(Status::Unknown), Status::Degraded);
        assert_eq!(
            Status::Degraded.worst(Status::OutOfService),
            Status::OutOfService
        );
        assert_eq!(Status::Down.worst(Status::OutOfService), Status::Down);
    }

    #[test]
    fn only_down_and_out_of_service_answer_503() {
        let codes: Vec<u16> = ALL.iter().map(|s| s.http_status()).collect();
        assert_eq!(codes, [200, 200, 200, 503, 503]);
    }

    #[test]
    fn a_non_critical_failure_only_degrades_the_aggregate() {
        assert_eq!(Status::Down.contribution(false), Status::Degraded);
        assert_eq!(Status::OutOfService.contribution(false), Status::Degraded);
        assert_eq!(Status::Unknown.contribution(false), Status::Unknown);
        assert_eq!(Status::Down.contribution(true), Status::Down);
    }

    #[test]
    fn statuses_serialize_as_spring_boot_names_and_draft_states() {
        let json = serde_json::to_string(&ALL).unwrap();
        assert_eq!(
            json,
            r#"["UP","UNKNOWN","DEGRADED","OUT_OF_SERVICE","DOWN"]"#
        );
        for s in ALL {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        let draft: Vec<&str> = ALL.iter().map(|s| s.health_json()).collect();
        assert_eq!(draft, ["pass", "warn", "warn", "fail", "fail"]);
    }
}
