//! The PostgreSQL pool's series in `/metrics`, every label from a fixed set:
//!
//! - `accountservice_db_pool_connections{state="idle"|"busy"}`, `accountservice_db_pool_max_connections`
//!   and `accountservice_db_pool_waiting` (callers waiting for a connection now), read from the
//!   pool at scrape time;
//! - `accountservice_db_pool_waits_total`: connections asked for when none was idle;
//! - `accountservice_db_acquire_duration_seconds`: getting a connection, opening one included;
//! - `accountservice_db_query_duration_seconds`: one statement's round trip (lookups, checks);
//! - `accountservice_db_errors_total{cause}`: failures by their short cause ("connection
//!   refused", "timeout", ...: the words of `failure`, never an error's text).

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{
        MetricType, counter::Counter, family::Family, gauge::ConstGauge, histogram::Histogram,
    },
};

use super::{PgStore, failure};
use crate::store::StoreError;

/// Seconds: 100 µs to 2.5 s, where a pooled statement or an acquire falls.
const BUCKETS: [f64; 12] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// The counters and histograms the store updates; shared by its clones.
#[derive(Debug)]
pub struct PoolMetrics {
    waits: Counter,
    acquire: Histogram,
    query: Histogram,
    errors: Family<[(&'static str, &'static str); 1], Counter>,
}

impl Default for PoolMetrics {
    fn default() -> Self {
        Self {
            waits: Counter::default(),
            acquire: Histogram::new(BUCKETS),
            query: Histogram::new(BUCKETS),
            errors: Family::default(),
        }
    }
}

impl PoolMetrics {
    /// A connection was asked for when none was idle.
    pub fn waited(&self) {
        self.waits.inc();
    }

    /// Getting a connection took `seconds`.
    pub fn acquired(&self, seconds: f64) {
        self.acquire.observe(seconds);
    }

    /// One statement took `seconds`.
    pub fn queried(&self, seconds: f64) {
        self.query.observe(seconds);
    }

    /// Counts `error` by its short cause.
    pub fn failed(&self, error: &StoreError) {
        self.errors.get_or_create(&[("cause", cause(error))]).inc();
    }
}

/// The label of an error: one of `failure`'s causes, `timeout` or `pool closed`.
fn cause(error: &StoreError) -> &'static str {
    match error {
        StoreError::Postgres {
            source: Some(source),
            ..
        } => failure::cause(source),
        StoreError::Postgres { source: None, .. } => "timeout",
        _ => "pool closed",
    }
}

/// Encodes the pool's series at each scrape.
#[derive(Debug)]
pub struct PoolCollector {
    store: PgStore,
}

impl PoolCollector {
    /// The series of `store`'s pool.
    pub fn new(store: PgStore) -> Self {
        Self { store }
    }
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let state = self.store.state();
        let mut family = encoder.encode_descriptor(
            "accountservice_db_pool_connections",
            "PostgreSQL connections open, by state",
            None,
            MetricType::Gauge,
        )?;
        let busy = state.size.saturating_sub(state.idle);
        for (name, value) in [("idle", state.idle), ("busy", busy)] {
            ConstGauge::new(value as i64).encode(family.encode_family(&[("state", name)])?)?;
        }
        for (name, help, value) in [
            (
                "accountservice_db_pool_max_connections",
                "PostgreSQL connections the pool opens at most",
                state.max,
            ),
            (
                "accountservice_db_pool_waiting",
                "Callers waiting for a PostgreSQL connection now",
                state.waiting,
            ),
        ] {
            let gauge = ConstGauge::new(value as i64);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let metrics = self.store.metrics();
        metrics.waits.encode(encoder.encode_descriptor(
            "accountservice_db_pool_waits",
            "PostgreSQL connections asked for when none was idle",
            None,
            MetricType::Counter,
        )?)?;
        metrics.acquire.encode(encoder.encode_descriptor(
            "accountservice_db_acquire_duration_seconds",
            "Time to get a PostgreSQL connection from the pool, opening one included",
            None,
            MetricType::Histogram,
        )?)?;
        metrics.query.encode(encoder.encode_descriptor(
            "accountservice_db_query_duration_seconds",
            "Time of one PostgreSQL statement's round trip (lookups and checks)",
            None,
            MetricType::Histogram,
        )?)?;
        metrics.errors.encode(encoder.encode_descriptor(
            "accountservice_db_errors",
            "PostgreSQL failures by cause",
            None,
            MetricType::Counter,
        )?)?;
        Ok(())
    }
}
