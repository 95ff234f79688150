//! What a bench run measured, as typed figures with named fields, and the targets checked against
//! those fields. This is what goes to `target/bench/results.json` and what the template of
//! `BENCHMARKS.md` reads. Times are in seconds, sizes in bytes, rates in requests per second.
//!
//! To add a measurement: a field here, the phase that fills it (`bench.rs`), a line in the
//! template, and, if it has one, its target in [`TARGETS`].

use serde::{Deserialize, Serialize};

use super::Plan;
use super::sys::Memory;

/// Everything one run measured.
#[derive(Debug, Default, Serialize)]
pub struct Results {
    /// What the run did.
    pub plan: Plan,
    /// Where it ran.
    pub machine: super::sys::Machine,
    /// The account body the yardstick answered.
    pub body: String,
    /// Build, server, wrk and probe command lines, in the order they first ran.
    pub commands: Vec<String>,
    pub sizes: Sizes,
    /// Spawn to listening, in seconds.
    pub startup: Pair<f64>,
    /// The rounds at 50 connections.
    pub main: Main,
    /// The big database.
    pub scale: Scale,
    /// The connection-count curve.
    pub curve: Vec<CurvePoint>,
    pub probe: ProbeCost,
    /// `/health` and probes while `/accounts` is saturated.
    pub saturated: Saturated,
    /// Resident memory at the moments that matter (100 accounts).
    pub memory: MemoryTable,
    /// Idle keep-alive connections held open at once.
    pub held: Pair<Held>,
    /// Whether the service exited 0 on SIGTERM after all of it.
    pub clean_exit: bool,
    /// Instructions per request under callgrind (not in smoke runs, nor without valgrind).
    pub instructions: Option<Instructions>,
    /// Wall time of the whole run, in seconds.
    pub total: f64,
    /// Errors, failed probes, an unclean exit: what fails a run, whatever the speed.
    pub problems: Vec<String>,
    /// [`TARGETS`] against this run (filled by [`Results::finish`]).
    pub checks: Vec<Check>,
}

/// One figure for the service and the same for the yardstick.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Pair<T> {
    pub service: T,
    pub yardstick: T,
}

/// File sizes of the binaries.
#[derive(Debug, Default, Serialize)]
pub struct Sizes {
    pub service: u64,
    pub probe: u64,
    pub yardstick: u64,
    /// `fn main() {}` built like the probe.
    pub floor: u64,
}

/// The loads of the main rounds, each against the yardstick of the same round.
#[derive(Debug, Default, Serialize)]
pub struct Main {
    pub yardstick: Row,
    /// `/accounts/{id}`, ids spread over 100 accounts.
    pub accounts: Row,
    pub health: Row,
    pub ready: Row,
    /// `/accounts/{id}` on the big database.
    pub big: Row,
}

/// The big database.
#[derive(Debug, Default, Serialize)]
pub struct Scale {
    pub accounts: u64,
    /// Seeding time as the service logged it, in seconds.
    pub seeding: f64,
    /// Spawn to listening (open, seed, first health round, bind), in seconds.
    pub startup: f64,
    /// The database file after seeding.
    pub file_size: u64,
    /// Its lookups against the 100-account lookups of the same rounds.
    pub lookups: Row,
    pub idle: Memory,
    /// After the rounds.
    pub after: Memory,
}

/// One connection count of the curve.
#[derive(Debug, Default, Serialize)]
pub struct CurvePoint {
    pub connections: u32,
    pub yardstick: Row,
    /// `/accounts/{id}` against the yardstick.
    pub accounts: Row,
}

/// The probe against the floor of any `exec`, interleaved.
#[derive(Debug, Default, Serialize)]
pub struct ProbeCost {
    pub probe: Spread,
    pub floor: Spread,
    /// Median probe time over median floor time.
    pub ratio: f64,
}

/// Saturation runs, one per server and per port that answers `/health`.
#[derive(Debug, Default, Serialize)]
pub struct Saturated {
    /// `/health` and the probe on the public port, the one saturated.
    pub service: Saturation,
    /// A service with `--management-port`: `/health` and the probe on the management port
    /// while its public port is saturated.
    pub management: Saturation,
    pub yardstick: Saturation,
}

/// `/health` and the probe measured while `/accounts` is saturated.
#[derive(Debug, Default, Serialize)]
pub struct Saturation {
    /// The saturating load.
    pub load: Outcome,
    /// A separate keep-alive `/health` client (one connection).
    pub health: Outcome,
    /// The healthchecker run over and over meanwhile (a new process and connection each).
    pub probes: Spread,
    /// Probes that did not report healthy.
    pub probe_failures: usize,
}

/// Resident memory of both servers after start and after the loads.
#[derive(Debug, Default, Serialize)]
pub struct MemoryTable {
    pub idle: Pair<Memory>,
    /// After the 50-connection rounds.
    pub after_50: Pair<Memory>,
    /// After the 1000-connection runs.
    pub after_1000: Pair<Memory>,
}

/// What holding thousands of idle keep-alive connections cost a server.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Held {
    /// Connections held at once (the `/health` client comes on top).
    pub connections: usize,
    /// The server's memory while they were open.
    pub memory: Memory,
    /// Opening and serving them, in seconds.
    pub opening: f64,
    /// One `GET /health` on a new connection meanwhile, connect to answer, in seconds.
    pub health: f64,
}

/// User-space instructions per request under callgrind, all threads.
#[derive(Debug, Default, Serialize)]
pub struct Instructions {
    /// With the `/accounts` script.
    pub yardstick: f64,
    pub accounts: f64,
    pub health: f64,
    pub ready: f64,
}

/// What one wrk run measured (the script's `done()` prints it as JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Completed requests.
    pub requests: u64,
    /// Completed requests per second (set when read).
    #[serde(default)]
    pub rate: f64,
    /// Seconds the run lasted.
    pub duration: f64,
    /// Latency percentiles and maximum, in seconds.
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    /// Connect, read, write and timeout (5 s) errors, and statuses above 399.
    pub errors: u64,
    /// The non-zero counts by kind: `read 2, status 1`.
    pub error_kinds: String,
}

/// One measured wrk run and how busy the server's core was meanwhile.
#[derive(Debug, Clone)]
pub struct Sample {
    pub outcome: Outcome,
    /// Server CPU time over wall time (1.0 = one core fully busy).
    pub cpu: f64,
    /// The share of the server's core that went to anything else meanwhile (other jobs, the
    /// hypervisor): what makes requests/s drift on a shared machine.
    pub others: f64,
}

impl Sample {
    /// Requests per second of server CPU time.
    pub fn per_cpu(&self) -> f64 {
        self.outcome.rate / self.cpu.max(f64::EPSILON)
    }
}

/// One load summarised over the rounds: medians of per-round figures, and ratios to a reference
/// taken round by round before the median (a machine slowing down between rounds cancels out).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Row {
    pub rate: f64,
    pub rate_ratio: Option<f64>,
    pub p50: f64,
    pub p99: f64,
    pub p99_ratio: Option<f64>,
    /// All errors of all rounds.
    pub errors: u64,
    /// Server CPU use (1.0 = one core).
    pub cpu: f64,
    /// Requests per second of server CPU time: what a request costs the server, whatever share
    /// of its core the machine's other load left it.
    pub per_cpu: f64,
    pub per_cpu_ratio: Option<f64>,
    /// Share of the server's core taken by other processes.
    pub others: f64,
}

impl Row {
    /// Summarises `samples`; with a reference (the same rounds of another load), ratios too.
    pub fn of(samples: &[Sample], reference: Option<&[Sample]>) -> Self {
        let each = |f: &dyn Fn(&Sample) -> f64| {
            median(&samples.iter().map(f).collect::<Vec<_>>()).unwrap_or(0.0)
        };
        let ratio = |f: &dyn Fn(&Sample) -> f64| {
            reference.and_then(|reference| {
                median(
                    &samples
                        .iter()
                        .zip(reference)
                        .map(|(s, r)| f(s) / f(r))
                        .collect::<Vec<_>>(),
                )
            })
        };
        Self {
            rate: each(&|s| s.outcome.rate),
            rate_ratio: ratio(&|s| s.outcome.rate),
            p50: each(&|s| s.outcome.p50),
            p99: each(&|s| s.outcome.p99),
            p99_ratio: ratio(&|s| s.outcome.p99),
            errors: samples.iter().map(|s| s.outcome.errors).sum(),
            cpu: each(&|s| s.cpu),
            per_cpu: each(&Sample::per_cpu),
            per_cpu_ratio: ratio(&Sample::per_cpu),
            others: each(&|s| s.others),
        }
    }
}

/// Percentiles of a set of timings (nearest rank), in seconds; all zero when there are none.
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
    /// Summarises `times` (seconds).
    pub fn of(mut times: Vec<f64>) -> Self {
        times.sort_by(f64::total_cmp);
        // Nearest rank: the smallest value with at least `percent`% of values at or below it.
        let at = |percent: usize| {
            times
                .get((times.len() * percent).div_ceil(100).max(1) - 1)
                .copied()
                .unwrap_or(0.0)
        };
        Self {
            count: times.len(),
            min: at(0),
            p50: at(50),
            p90: at(90),
            p99: at(99),
            max: at(100),
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 0 => Some(f64::midpoint(sorted[middle - 1], sorted[middle])),
        _ => Some(sorted[middle]),
    }
}

/// How a figure is shown.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Ratio,
    Seconds,
    Bytes,
    Count,
}

/// The limit a figure must stay on the right side of.
#[derive(Debug, Clone, Copy)]
pub enum Bound {
    AtLeast(f64),
    AtMost(f64),
}

/// A target: a figure of [`Results`], read by a function (`None` when the run did not measure
/// it), and its limit.
pub struct Target(&'static str, Bound, Unit, fn(&Results) -> Option<f64>);

use Bound::{AtLeast, AtMost};
use Unit::{Bytes, Count, Ratio, Seconds};

/// The performance targets the service was rebuilt to meet.
#[rustfmt::skip]
pub const TARGETS: &[Target] = &[
    Target("`/accounts/{id}` requests/s ÷ yardstick", AtLeast(0.80), Ratio, |r| r.main.accounts.rate_ratio),
    Target("`/health` requests/s ÷ yardstick", AtLeast(0.95), Ratio, |r| r.main.health.rate_ratio),
    Target("`/accounts/{id}` p99 ÷ yardstick's p99", AtMost(2.0), Ratio, |r| r.main.accounts.p99_ratio),
    Target("`/health` p99 ÷ yardstick's p99", AtMost(2.0), Ratio, |r| r.main.health.p99_ratio),
    Target("`/health/ready` p99 ÷ yardstick's p99", AtMost(2.0), Ratio, |r| r.main.ready.p99_ratio),
    Target("probe wall time ÷ static do-nothing binary (medians)", AtMost(1.3), Ratio, |r| Some(r.probe.ratio)),
    Target("probe binary, static", AtMost(1.2e6), Bytes, |r| Some(r.sizes.probe as f64)),
    Target("idle RSS", AtMost(4e6), Bytes, |r| Some(r.memory.idle.service.rss as f64)),
    Target("peak RSS under 50 connections", AtMost(16e6), Bytes, |r| Some(r.memory.after_50.service.hwm as f64)),
    Target("lookups/s with the big database ÷ with 100 accounts", AtLeast(0.90), Ratio, |r| r.scale.lookups.rate_ratio),
    Target("seeding the big database", AtMost(10.0), Seconds, |r| Some(r.scale.seeding)),
    Target("`/health` p99 while `/accounts` is saturated, separate keep-alive client", AtMost(0.050), Seconds,
        |r| Some(r.saturated.service.health.p99)),
    Target("the same, healthchecker (a new process and connection each), p99", AtMost(0.050), Seconds,
        |r| (r.saturated.service.probes.count > 0).then_some(r.saturated.service.probes.p99)),
    Target("`/health` p99 on the management port while the public port's `/accounts` is saturated", AtMost(0.010), Seconds,
        |r| (r.saturated.management.health.requests > 0).then_some(r.saturated.management.health.p99)),
    Target("the same, healthchecker against the management port, p99", AtMost(0.010), Seconds,
        |r| (r.saturated.management.probes.count > 0).then_some(r.saturated.management.probes.p99)),
    Target("errors (every run), failed probes, crashes, unclean exit", AtMost(0.0), Count,
        |r| Some(r.problems.len() as f64)),
];

/// One target against one run.
#[derive(Debug, Serialize)]
pub struct Check {
    pub figure: &'static str,
    /// `≥` or `≤`.
    pub bound: &'static str,
    pub limit: f64,
    pub unit: Unit,
    pub measured: Option<f64>,
    pub met: bool,
}

impl Results {
    /// Checks the figures against [`TARGETS`].
    pub fn finish(&mut self) {
        let checks = TARGETS.iter().map(|Target(figure, bound, unit, value)| {
            let measured = value(self);
            let (bound, limit, met) = match *bound {
                AtLeast(limit) => ("≥", limit, measured.is_some_and(|v| v >= limit)),
                AtMost(limit) => ("≤", limit, measured.is_some_and(|v| v <= limit)),
            };
            Check {
                figure,
                bound,
                limit,
                unit: *unit,
                measured,
                met,
            }
        });
        self.checks = checks.collect::<Vec<_>>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rate: u32, p99_ms: f64) -> Sample {
        let outcome = Outcome {
            requests: u64::from(rate) * 10,
            rate: f64::from(rate),
            duration: 10.0,
            p99: p99_ms / 1e3,
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
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let spread = Spread::of((1..=100).rev().map(f64::from).collect());
        assert_eq!(
            (
                spread.count,
                spread.min,
                spread.p50,
                spread.p90,
                spread.p99,
                spread.max
            ),
            (100, 1.0, 50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Spread::of(vec![7.0]).p99, 7.0);
        assert_eq!(Spread::of(Vec::new()), Spread::default());
    }

    #[test]
    fn targets_read_the_fields_they_name() {
        let mut results = Results {
            clean_exit: true,
            ..Results::default()
        };
        results.main.health = Row::of(&[sample(96, 1.0)], Some(&[sample(100, 1.0)]));
        results.saturated.service.health.p99 = 0.2;
        results.finish();
        let check = |figure: &str| {
            results
                .checks
                .iter()
                .find(|c| c.figure == figure)
                .map(|c| (c.measured, c.met))
                .unwrap()
        };
        assert_eq!(
            check("`/health` requests/s ÷ yardstick"),
            (Some(0.96), true)
        );
        assert_eq!(
            check("`/accounts/{id}` requests/s ÷ yardstick"),
            (None, false)
        );
        assert_eq!(
            check("`/health` p99 while `/accounts` is saturated, separate keep-alive client"),
            (Some(0.2), false)
        );
        assert_eq!(
            check("errors (every run), failed probes, crashes, unclean exit"),
            (Some(0.0), true)
        );
    }
}
