//! The health series of `/metrics`, read from the health registry's cache at each scrape:
//! scraping runs no check, and a component that went away (a cleared manual switch) drops out of
//! the gauges at once.
//!
//! - `health_check_status{component,status}`: 1 for the component's current status, 0 for the
//!   others (the usual "state set" encoding, so `== 0` alerts see every status).
//! - `health_check_duration_seconds{component}`: how long its last check took.
//! - `health_check_timeout_seconds{component}`: how long a check may take before it counts as
//!   `DOWN` ("timed out"), to compare the duration with.
//! - `health_check_curable_by_restart{component}`: 1 if restarting the replica can cure the
//!   component's failure, 0 if not (a database every replica shares): what lets an alert tell
//!   a fault of one replica from an outage of everyone's dependency.
//! - `health_status{scope,status}`: the aggregate of `/health`, liveness and readiness.
//! - `health_transitions_total{component,status}`: how many times each component or scope
//!   (`overall`, `liveness`, `readiness`) changed to each status since the start. Every status
//!   of every current component and scope is there from the start at 0, so `increase()` and
//!   `changes()` see the first transition too; a component that went away keeps its counts.

use std::collections::BTreeMap;

use health::{Health, Scope, Status};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

/// Every status a component or scope can have, for the state-set encoding.
pub const STATUSES: [Status; 5] = [
    Status::Up,
    Status::Unknown,
    Status::Degraded,
    Status::OutOfService,
    Status::Down,
];

/// Encodes the health series of one registry at each scrape.
#[derive(Debug)]
pub struct HealthSeries {
    health: Health,
}

impl HealthSeries {
    /// The series of `health`.
    pub fn new(health: Health) -> Self {
        Self { health }
    }
}

impl Collector for HealthSeries {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let overall = self.health.report(Scope::Overall);

        let mut family = encoder.encode_descriptor(
            "health_check_status",
            "1 for each health component's current status, 0 for its other statuses",
            None,
            MetricType::Gauge,
        )?;
        for (name, component) in &overall.components {
            for status in STATUSES {
                let labels = [("component", name.as_str()), ("status", status.as_str())];
                ConstGauge::new(i64::from(component.status == status))
                    .encode(family.encode_family(&labels)?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "health_check_duration_seconds",
            "How long each health component's last check took",
            None,
            MetricType::Gauge,
        )?;
        for (name, component) in &overall.components {
            if let Some(duration) = component.duration {
                ConstGauge::new(duration.as_secs_f64())
                    .encode(family.encode_family(&[("component", name.as_str())])?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "health_check_timeout_seconds",
            "How long each health check may take before it counts as DOWN (timed out)",
            None,
            MetricType::Gauge,
        )?;
        for (name, timeout) in self.health.check_timeouts() {
            ConstGauge::new(timeout.as_secs_f64())
                .encode(family.encode_family(&[("component", name)])?)?;
        }

        let mut family = encoder.encode_descriptor(
            "health_check_curable_by_restart",
            "1 if restarting the replica can cure each health component's failure, 0 if not \
             (a dependency every replica shares)",
            None,
            MetricType::Gauge,
        )?;
        for (name, component) in &overall.components {
            ConstGauge::new(i64::from(component.curability.by_restart()))
                .encode(family.encode_family(&[("component", name.as_str())])?)?;
        }

        let mut family = encoder.encode_descriptor(
            "health_status",
            "1 for the current aggregate status of each scope (overall, liveness, readiness)",
            None,
            MetricType::Gauge,
        )?;
        for (scope, current) in [
            ("overall", overall.status),
            ("liveness", self.health.report(Scope::Liveness).status),
            ("readiness", self.health.report(Scope::Readiness).status),
        ] {
            for status in STATUSES {
                let labels = [("scope", scope), ("status", status.as_str())];
                ConstGauge::new(i64::from(current == status))
                    .encode(family.encode_family(&labels)?)?;
            }
        }

        let mut counts: BTreeMap<(String, Status), u64> = self
            .health
            .transition_counts()
            .into_iter()
            .map(|(name, status, count)| ((name, status), count))
            .collect();
        let current = overall.components.keys().map(String::as_str);
        for name in current.chain(["overall", "liveness", "readiness"]) {
            for status in STATUSES {
                counts.entry((name.to_owned(), status)).or_insert(0);
            }
        }
        let mut family = encoder.encode_descriptor(
            "health_transitions",
            "Status changes of each health component or scope (overall, liveness, readiness) \
             since the start, by the status changed to",
            None,
            MetricType::Counter,
        )?;
        for ((name, status), count) in &counts {
            let labels = [("component", name.as_str()), ("status", status.as_str())];
            ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
