//! The verdicts in `/metrics`, read from [`Outage`] at each scrape. Labels are bounded: the
//! checks a restart cannot cure (fixed at start), three verdicts, three kinds of answer.
//!
//! - `outage_verdict{component,verdict}`: 1 for the current verdict (`none`, `local`,
//!   `shared`), 0 for the others;
//! - `outage_peer_answers{component,answer}`: how the peers asked last answered (`reaches`,
//!   `cannot_reach`, `no_answer`);
//! - `outage_peers_asked_total{component}`: peers asked since the start;
//! - `outage_verdict_changed_timestamp_seconds{component}`: when the verdict last changed.

use std::{sync::Arc, time::UNIX_EPOCH};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

use super::{Answer, Outage};

/// Encodes the verdicts of one [`Outage`] at each scrape.
#[derive(Debug)]
pub struct OutageSeries {
    outage: Arc<Outage>,
}

impl OutageSeries {
    /// The series of `outage`.
    pub fn new(outage: Arc<Outage>) -> Self {
        Self { outage }
    }
}

impl Collector for OutageSeries {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let records = self.outage.records();

        let mut family = encoder.encode_descriptor(
            "outage_verdict",
            "1 for the current verdict on each failing check of a shared dependency (none, local, \
             shared), 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for (name, record) in &records {
            let current = record.verdict.map_or("none", |v| v.label());
            for verdict in ["none", "local", "shared"] {
                let labels = [("component", name.as_str()), ("verdict", verdict)];
                ConstGauge::new(i64::from(current == verdict))
                    .encode(family.encode_family(&labels)?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "outage_peer_answers",
            "How the peers asked last answered whether they reach the dependency",
            None,
            MetricType::Gauge,
        )?;
        for (name, record) in &records {
            let count = |wanted: fn(&Answer) -> bool| {
                record.answers.iter().filter(|a| wanted(&a.answer)).count() as i64
            };
            for (answer, n) in [
                ("reaches", count(|a| *a == Answer::Reaches)),
                (
                    "cannot_reach",
                    count(|a| matches!(a, Answer::CannotReach(_))),
                ),
                ("no_answer", count(|a| matches!(a, Answer::NoAnswer(_)))),
            ] {
                let labels = [("component", name.as_str()), ("answer", answer)];
                ConstGauge::new(n).encode(family.encode_family(&labels)?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "outage_peers_asked",
            "Peers asked whether they reach a shared dependency, since the start",
            None,
            MetricType::Counter,
        )?;
        for (name, record) in &records {
            ConstCounter::new(record.asked)
                .encode(family.encode_family(&[("component", name.as_str())])?)?;
        }

        let mut family = encoder.encode_descriptor(
            "outage_verdict_changed_timestamp_seconds",
            "When the verdict on each check of a shared dependency last changed (Unix time)",
            None,
            MetricType::Gauge,
        )?;
        for (name, record) in &records {
            let at = record
                .changed_at
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            ConstGauge::new(at).encode(family.encode_family(&[("component", name.as_str())])?)?;
        }
        Ok(())
    }
}
