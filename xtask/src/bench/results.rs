//! What a bench run measured, as typed figures with named fields, and the targets checked against
//! those fields: what goes to `target/bench/results.json` and what the template of
//! `BENCHMARKS.md` reads. Times are in seconds, sizes in bytes, rates in requests per second.
//! To add a measurement: a field here, the phase that fills it, a line in the template, and, if
//! it has one, its target in [`Results::finish`].

use serde::{Deserialize, Serialize};

use super::Plan;
use super::sys::{Machine, Memory};

/// Everything one run measured; `problems` are the errors, failed probes and unclean exits that
/// fail a run whatever the speed, `instructions` are not measured in smoke runs or without
/// valgrind.
#[derive(Debug, Default, Serialize)]
pub struct Results {
    pub plan: Plan,
    pub machine: Machine,
    pub body: String,
    pub commands: Vec<String>,
    pub sizes: Binaries<u64>,
    pub startup: Pair<f64>,
    pub main: Main,
    /// `/accounts/{id}` with `--management-port` against the same without, in the same rounds.
    pub management_port: Row,
    pub scale: Scale,
    pub curve: Vec<CurvePoint>,
    pub probe: ProbeCost,
    pub saturated: Saturated,
    pub memory: MemoryTable,
    pub held: Pair<Held>,
    /// Bytes per idle and per busy connection, each from fresh servers.
    pub connections: super::connections::ConnectionCost,
    /// `/accounts/{id}` over PostgreSQL against pgbench (`bench::postgres`).
    pub postgres: Option<super::postgres::Postgres>,
    pub clean_exit: bool,
    pub instructions: Option<Instructions>,
    pub total: f64,
    pub problems: Vec<String>,
    /// The targets against this run (filled by [`Results::finish`]).
    pub checks: Vec<Check>,
}

/// One figure for the service and the same for the yardstick.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Pair<T> {
    pub service: T,
    pub yardstick: T,
}

/// The binaries under test (in the results, their file sizes); `floor` is `fn main() {}` built
/// like the probe.
#[derive(Debug, Default, Serialize)]
pub struct Binaries<T> {
    pub service: T,
    pub probe: T,
    pub yardstick: T,
    pub floor: T,
}

/// The loads of the rounds at 50 connections, each against the yardstick of the same round.
/// `/accounts/{id}` asks ids spread over 100 accounts; `big` over the big database;
/// `management` is a service started with `--management-port`.
#[derive(Debug, Default, Serialize)]
pub struct Main {
    pub yardstick: Row,
    pub accounts: Row,
    pub management: Row,
    pub health: Row,
    pub ready: Row,
    pub big: Row,
}

/// The big database: seeding as the service logged it, spawn to listening, the file after seeding,
/// lookups against the 100-account ones of the same rounds, memory after start and the rounds.
#[derive(Debug, Default, Serialize)]
pub struct Scale {
    pub accounts: u64,
    pub seeding: f64,
    pub startup: f64,
    pub file_size: u64,
    pub lookups: Row,
    pub idle: Memory,
    pub after: Memory,
}

/// One connection count of the curve: `/accounts/{id}` against the yardstick.
#[derive(Debug, Default, Serialize)]
pub struct CurvePoint {
    pub connections: u32,
    pub yardstick: Row,
    pub accounts: Row,
}

/// The probe against the floor of any `exec`, interleaved; `ratio` is of the medians.
#[derive(Debug, Default, Serialize)]
pub struct ProbeCost {
    pub probe: Spread,
    pub floor: Spread,
    pub ratio: f64,
}

/// [`super::Lab::saturate`] of each server, the management port's `/health` and probes too.
#[derive(Debug, Default, Serialize)]
pub struct Saturated {
    pub service: Saturation,
    pub management: Saturation,
    pub yardstick: Saturation,
}

/// One saturation: the load, the `/health` client, the probes and how many did not report healthy.
#[derive(Debug, Default, Serialize)]
pub struct Saturation {
    pub load: Outcome,
    pub health: Outcome,
    pub probes: Spread,
    pub probe_failures: usize,
}

/// Resident memory of both servers after start, after the 50- and the 1000-connection loads.
#[derive(Debug, Default, Serialize)]
pub struct MemoryTable {
    pub idle: Pair<Memory>,
    pub after_50: Pair<Memory>,
    pub after_1000: Pair<Memory>,
}

/// What [`super::hold::hold`] measured: memory with the connections held, the time opening them
/// took, and one more `GET /health` meanwhile, connect to answer.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Held {
    pub connections: usize,
    pub memory: Memory,
    pub opening: f64,
    pub health: f64,
}

/// Instructions per request under callgrind (see `callgrind`).
#[derive(Debug, Default, Serialize)]
pub struct Instructions {
    pub yardstick: f64,
    pub accounts: f64,
    pub health: f64,
    pub ready: f64,
}

/// What one wrk run measured (its script's `done()` prints it as JSON; `rate` is set when read).
/// `errors` counts connect, read, write and timeout (5 s) errors and statuses above 399;
/// `error_kinds` gives the non-zero counts by kind: `read 2, status 1`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub requests: u64,
    #[serde(default)]
    pub rate: f64,
    pub duration: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub errors: u64,
    pub error_kinds: String,
}

/// One measured wrk run, the server's CPU time over wall time (1.0 = one core fully busy), and
/// the share of its core that went to anything else meanwhile (other jobs, the hypervisor): what
/// makes requests/s drift on a shared machine.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub outcome: Outcome,
    pub cpu: f64,
    pub others: f64,
}

/// One load summarised over the rounds: medians of per-round figures, and ratios to a reference
/// taken round by round before the median (a machine slowing down between rounds cancels out).
/// `errors` are of all rounds; `per_cpu` is requests per second of server CPU time: what a
/// request costs the server, whatever share of its core the machine's other load left it.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Row {
    pub rate: f64,
    pub rate_ratio: Option<f64>,
    pub p50: f64,
    pub p99: f64,
    pub p99_ratio: Option<f64>,
    pub errors: u64,
    pub cpu: f64,
    pub others: f64,
    pub per_cpu: f64,
    pub per_cpu_ratio: Option<f64>,
}

impl Row {
    /// Summarises `samples`; with a reference (the same rounds of another load), ratios too.
    pub fn of(samples: &[Sample], reference: Option<&[Sample]>) -> Self {
        let per_cpu = |s: &Sample| s.outcome.rate / s.cpu.max(f64::EPSILON);
        let each = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f)).unwrap_or(0.0);
        let ratio = |f: &dyn Fn(&Sample) -> f64| {
            median(samples.iter().zip(reference?).map(|(s, r)| f(s) / f(r)))
        };
        Self {
            rate: each(&|s| s.outcome.rate),
            rate_ratio: ratio(&|s| s.outcome.rate),
            p50: each(&|s| s.outcome.p50),
            p99: each(&|s| s.outcome.p99),
            p99_ratio: ratio(&|s| s.outcome.p99),
            errors: samples.iter().map(|s| s.outcome.errors).sum(),
            cpu: each(&|s| s.cpu),
            others: each(&|s| s.others),
            per_cpu: each(&per_cpu),
            per_cpu_ratio: ratio(&per_cpu),
        }
    }
}

/// Percentiles of a set of timings (nearest rank: the smallest value with at least that share
/// of values at or below it); all zero when there are none.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub count: usize,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(mut times: Vec<f64>) -> Self {
        times.sort_by(f64::total_cmp);
        let count = times.len();
        let at = |percent: usize| times.get((count * percent).div_ceil(100).max(1) - 1);
        let [min, p50, p90, p99, max] = [0, 50, 90, 99, 100].map(|p| *at(p).unwrap_or(&0.0));
        Self {
            count,
            min,
            p50,
            p90,
            p99,
            max,
        }
    }
}

/// The median (the mean of the middle two for an even count), NaN ignored; `None` when empty.
pub fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut sorted: Vec<f64> = values.filter(|v| !v.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    // The middle value twice for an odd count.
    let upper = *sorted.get(sorted.len() / 2)?;
    Some(f64::midpoint(sorted[(sorted.len() - 1) / 2], upper))
}

/// The side of its limit a figure must stay on; serialised as the sign the report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Bound {
    #[serde(rename = "≥")]
    AtLeast,
    #[serde(rename = "≤")]
    AtMost,
}

/// One target against one run.
#[derive(Debug, Serialize)]
pub struct Check {
    pub figure: &'static str,
    pub bound: Bound,
    pub limit: f64,
    pub unit: &'static str,
    pub measured: Option<f64>,
    pub met: bool,
}

impl Results {
    /// Checks the figures against the performance targets the service was rebuilt to meet: each
    /// a figure, the bound it must stay within (at least or at most a limit), the unit the
    /// template shows it in (`ratio`, `seconds`, `bytes` or `count`), and its value in this run
    /// (`None` when the run did not measure it).
    pub fn finish(&mut self) {
        use Bound::{AtLeast, AtMost};
        let r = &*self;
        #[rustfmt::skip]
        let targets = [
            ("`/accounts/{id}` requests/s ÷ yardstick", (AtLeast, 0.80), "ratio", r.main.accounts.rate_ratio),
            ("`/health` requests/s ÷ yardstick", (AtLeast, 0.95), "ratio", r.main.health.rate_ratio),
            ("`/accounts/{id}` p99 ÷ yardstick's p99", (AtMost, 2.0), "ratio", r.main.accounts.p99_ratio),
            ("`/health` p99 ÷ yardstick's p99", (AtMost, 2.0), "ratio", r.main.health.p99_ratio),
            ("`/health/ready` p99 ÷ yardstick's p99", (AtMost, 2.0), "ratio", r.main.ready.p99_ratio),
            ("`/accounts/{id}` requests/s with `--management-port` ÷ without (same rounds)", (AtLeast, 0.97), "ratio",
                r.management_port.rate_ratio),
            ("probe wall time ÷ static do-nothing binary (medians)", (AtMost, 1.3), "ratio", Some(r.probe.ratio)),
            ("probe binary, static", (AtMost, 1.2e6), "bytes", Some(r.sizes.probe as f64)),
            ("idle RSS", (AtMost, 4e6), "bytes", Some(r.memory.idle.service.rss as f64)),
            ("peak RSS under 50 connections", (AtMost, 16e6), "bytes", Some(r.memory.after_50.service.hwm as f64)),
            ("lookups/s with the big database ÷ with 100 accounts", (AtLeast, 0.90), "ratio", r.scale.lookups.rate_ratio),
            ("seeding the big database", (AtMost, 10.0), "seconds", Some(r.scale.seeding)),
            ("`/health` p99 while `/accounts` is saturated, separate keep-alive client", (AtMost, 0.050), "seconds",
                Some(r.saturated.service.health.p99)),
            ("the same, healthchecker (a new process and connection each), p99", (AtMost, 0.050), "seconds",
                (r.saturated.service.probes.count > 0).then_some(r.saturated.service.probes.p99)),
            ("`/health` p99 on the management port while the public port's `/accounts` is saturated", (AtMost, 0.010), "seconds",
                (r.saturated.management.health.requests > 0).then_some(r.saturated.management.health.p99)),
            ("the same, healthchecker against the management port, p99", (AtMost, 0.010), "seconds",
                (r.saturated.management.probes.count > 0).then_some(r.saturated.management.probes.p99)),
            ("bytes per idle connection (RSS) ÷ yardstick", (AtMost, 1.1), "ratio", Some(r.connections.idle.rss_ratio)),
            ("bytes per idle connection (control group) ÷ yardstick", (AtMost, 1.1), "ratio", r.connections.idle.cgroup_ratio),
            ("bytes per busy connection (RSS) ÷ yardstick", (AtMost, 1.1), "ratio", Some(r.connections.busy.rss_ratio)),
            ("bytes per busy connection (control group) ÷ yardstick", (AtMost, 1.1), "ratio", r.connections.busy.cgroup_ratio),
            ("`/accounts/{id}` over PostgreSQL requests/s ÷ `pgbench -S -M prepared` (same server, clients and rounds)",
                (AtLeast, 0.5), "ratio", r.postgres.as_ref().and_then(|p| p.accounts.rate_ratio)),
            ("errors (every run), failed probes, crashes, unclean exit", (AtMost, 0.0), "count",
                Some(r.problems.len() as f64)),
        ];
        let check = |(figure, (bound, limit), unit, measured)| Check {
            figure,
            bound,
            limit,
            unit,
            measured,
            met: measured.is_some_and(|v| match bound {
                AtLeast => v >= limit,
                AtMost => v <= limit,
            }),
        };
        self.checks = targets.into_iter().map(check).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rate: u32, p99_ms: f64) -> Sample {
        let (rate, p99) = (f64::from(rate), p99_ms / 1e3);
        let outcome = Outcome {
            rate,
            p99,
            ..Outcome::default()
        };
        Sample {
            outcome,
            cpu: 1.0,
            others: 0.0,
        }
    }

    #[test]
    fn ratios_are_taken_round_by_round_then_the_median() {
        // Round by round: 0.8, 0.9, 1.0; a machine slowing down between rounds does not matter.
        let yardstick = [sample(100, 1.0), sample(50, 1.0), sample(200, 1.0)];
        let service = [sample(80, 1.5), sample(45, 3.0), sample(200, 1.0)];
        let row = Row::of(&service, Some(&yardstick));
        assert!((row.rate_ratio.unwrap() - 0.9).abs() < 1e-9);
        assert!((row.p99_ratio.unwrap() - 1.5).abs() < 1e-9);
        assert!((row.rate - 80.0).abs() < 1e-9);
        assert_eq!(Row::of(&yardstick, None).rate_ratio, None);
    }

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), Some(2.0));
        assert_eq!(
            median([4.0, 1.0, 3.0, 2.0, f64::NAN].into_iter()),
            Some(2.5)
        );
        assert_eq!(median(std::iter::empty()), None);
        let s = Spread::of((1..=100).rev().map(f64::from).collect());
        let expected = (100, 1.0, 50.0, 90.0, 99.0, 100.0);
        assert_eq!((s.count, s.min, s.p50, s.p90, s.p99, s.max), expected);
        assert_eq!(Spread::of(vec![7.0]).p99, 7.0);
        assert_eq!(Spread::of(Vec::new()), Spread::default());
    }

    #[test]
    fn targets_read_the_fields_they_name() {
        let mut results = Results::default();
        results.main.health = Row::of(&[sample(96, 1.0)], Some(&[sample(100, 1.0)]));
        results.management_port = Row::of(&[sample(98, 1.0)], Some(&[sample(100, 1.0)]));
        results.saturated.service.health.p99 = 0.2;
        results.finish();
        let check = |start: &str| {
            let check = results.checks.iter().find(|c| c.figure.starts_with(start));
            check.map(|c| (c.measured, c.met)).unwrap()
        };
        assert_eq!(check("`/health` requests/s"), (Some(0.96), true));
        assert_eq!(check("`/accounts/{id}` requests/s ÷"), (None, false));
        assert_eq!(
            check("`/accounts/{id}` requests/s with"),
            (Some(0.98), true)
        );
        assert_eq!(check("`/health` p99 while"), (Some(0.2), false));
        assert_eq!(check("errors"), (Some(0.0), true));
    }

    #[test]
    fn every_target_has_a_unit_the_template_knows() {
        let mut results = Results::default();
        results.finish();
        for c in &results.checks {
            assert!(
                ["ratio", "seconds", "bytes", "count"].contains(&c.unit),
                "{c:?}"
            );
        }
    }
}
