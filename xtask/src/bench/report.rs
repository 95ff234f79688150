//! What a bench run found, the targets of issue 6 checked against it, and `BENCHMARKS.md`
//! rendered from it (keeping the hand-written notes of the previous file).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

use super::procfs::{self, Memory};
use super::stats::{Spread, median};
use super::wrk::{Errors, Outcome, Paths};
use super::{Plan, Sample, service};
use crate::project::Project;

/// `date`'s format for the report: `2026-11-25 12:00 UTC`.
const DATE_FORMAT: &str = "+%Y-%m-%d %H:%M UTC";

/// Start and end markers of the hand-written part of `BENCHMARKS.md`.
const NOTES_START: &str = "<!-- notes: written by hand, kept by `cargo xtask bench` -->";
const NOTES_END: &str = "<!-- /notes -->";

/// Everything one run measured.
#[derive(Debug)]
pub struct Results {
    /// What the run did.
    pub plan: Plan,
    /// Where it ran (filled in by the caller).
    pub machine: Option<Machine>,
    /// The account body the yardstick answered.
    pub body: String,
    /// Build, server and wrk command lines.
    pub commands: Vec<String>,
    /// Yardstick, `/accounts/{id}`, `/health`, `/health/ready` at 50 connections.
    pub endpoints: Vec<Row>,
    /// The big database's lookups against the yardstick.
    pub big_vs_yardstick: Row,
    /// Seeding and lookups with the big database.
    pub scale: Scale,
    /// Per connection count: the yardstick and `/accounts/{id}`.
    pub curve: Vec<(u32, Row, Row)>,
    /// `/health` under saturation: the service, then the yardstick.
    pub saturated: [Saturation; 2],
    /// Probe against floor.
    pub probe: super::probe::Cost,
    /// File sizes of the binaries.
    pub sizes: Vec<(String, u64)>,
    /// RSS figures.
    pub memory: MemoryTable,
    /// Idle keep-alive connections held open: the service, then the yardstick.
    pub held: [super::hold::Held; 2],
    /// Start-up times (spawn to listening).
    pub startup: Vec<(String, Duration)>,
    /// Whether the service exited 0 on SIGTERM after all of it.
    pub clean_exit: bool,
    /// Instructions per request under callgrind (not in smoke runs).
    pub instructions: Option<Instructions>,
    /// Wall time of the whole run.
    pub total: Duration,
}

/// One load summarised over the rounds.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was loaded.
    pub label: String,
    /// Median requests per second.
    pub rate: f64,
    /// Median over rounds of rate ÷ reference rate in the same round.
    pub rate_ratio: Option<f64>,
    /// Median p50.
    pub p50: Duration,
    /// Median p99.
    pub p99: Duration,
    /// Median over rounds of p99 ÷ reference p99 in the same round.
    pub p99_ratio: Option<f64>,
    /// All errors of all rounds.
    pub errors: Errors,
    /// Median server CPU use (1.0 = one core).
    pub cpu: f64,
    /// Median requests per second of server CPU time: what a request costs the server,
    /// whatever share of its core the machine's other load left it.
    pub per_cpu: f64,
    /// Median over rounds of `per_cpu` ÷ the reference's in the same round.
    pub per_cpu_ratio: Option<f64>,
    /// Median share of the server's core taken by other processes.
    pub others: f64,
}

impl Row {
    /// Summarises `samples`; with a reference, ratios are taken round by round.
    pub fn of(label: &str, samples: &[Sample], reference: Option<&[Sample]>) -> Self {
        let each = |f: &dyn Fn(&Sample) -> f64| median(&samples.iter().map(f).collect::<Vec<_>>());
        let ratio = |f: &dyn Fn(&Sample) -> f64| {
            reference.and_then(|reference| {
                let ratios: Vec<f64> = samples
                    .iter()
                    .zip(reference)
                    .map(|(sample, base)| f(sample) / f(base))
                    .collect();
                median(&ratios)
            })
        };
        let seconds = |value: Option<f64>| Duration::from_secs_f64(value.unwrap_or(0.0).max(0.0));
        let mut errors = Errors::default();
        for sample in samples {
            errors.add(sample.outcome.errors);
        }
        Self {
            label: label.to_owned(),
            rate: each(&|s| s.outcome.rate()).unwrap_or(0.0),
            rate_ratio: ratio(&|s| s.outcome.rate()),
            p50: seconds(each(&|s| s.outcome.p50.as_secs_f64())),
            p99: seconds(each(&|s| s.outcome.p99.as_secs_f64())),
            p99_ratio: ratio(&|s| s.outcome.p99.as_secs_f64()),
            errors,
            cpu: each(&|s| s.cpu).unwrap_or(0.0),
            per_cpu: each(&Sample::per_cpu).unwrap_or(0.0),
            per_cpu_ratio: ratio(&Sample::per_cpu),
            others: each(&|s| s.others).unwrap_or(0.0),
        }
    }
}

/// The big database.
#[derive(Debug, Clone)]
pub struct Scale {
    /// How many accounts.
    pub accounts: u64,
    /// Seeding time, as the service logged it.
    pub seeding: Duration,
    /// Spawn to listening (open, seed, first health round, bind).
    pub startup: Duration,
    /// The database file's size after seeding.
    pub file_size: u64,
    /// Lookups against the 100-account lookups of the same rounds.
    pub lookups: Row,
    /// Memory after start.
    pub idle: Memory,
    /// Memory after the rounds.
    pub after: Memory,
}

/// `/health` measured while `/accounts` is saturated.
#[derive(Debug, Clone)]
pub struct Saturation {
    /// The saturating load.
    pub load: Outcome,
    /// The separate keep-alive `/health` client (one connection).
    pub health: Outcome,
    /// The healthchecker run over and over meanwhile (a new process and connection each).
    pub probes: Option<Spread>,
    /// Probes that did not report healthy.
    pub probe_failures: usize,
}

/// Resident memory at the moments that matter.
#[derive(Debug, Clone, Copy)]
pub struct MemoryTable {
    /// The service after start.
    pub service_idle: Memory,
    /// The yardstick after start.
    pub yardstick_idle: Memory,
    /// The service after the 50-connection rounds.
    pub service_after_50: Memory,
    /// The yardstick after the 50-connection rounds.
    pub yardstick_after_50: Memory,
    /// The service after the 1000-connection runs.
    pub service_after_1000: Memory,
    /// The yardstick after the 1000-connection runs.
    pub yardstick_after_1000: Memory,
}

/// Instructions executed per request (user space, all threads), under callgrind.
#[derive(Debug, Clone, Copy)]
pub struct Instructions {
    /// The yardstick, with the `/accounts` script.
    pub yardstick: f64,
    /// `/accounts/{id}`, ids spread over 100 accounts.
    pub accounts: f64,
    /// `/health`.
    pub health: f64,
    /// `/health/ready`.
    pub ready: f64,
}

impl Instructions {
    /// Label and count, yardstick first.
    pub fn rows(&self) -> [(&'static str, f64); 4] {
        [
            ("yardstick", self.yardstick),
            ("/accounts/{id}", self.accounts),
            ("/health", self.health),
            ("/health/ready", self.ready),
        ]
    }
}

/// Where the run happened.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `/proc/cpuinfo`'s model name.
    pub cpu_model: String,
    /// Processors in `/proc/cpuinfo`.
    pub processors: usize,
    /// `uname -r`.
    pub kernel: String,
    /// Total memory in bytes.
    pub memory: u64,
    /// `/proc/loadavg`'s first three fields at the start.
    pub load_average: String,
    /// `rustc -V`.
    pub rustc: String,
    /// wrk's version line.
    pub wrk: String,
    /// When (UTC).
    pub date: String,
    /// The commit, `-dirty` if the tree had changes.
    pub revision: String,
    /// File system type of the temporary directory.
    pub filesystem: String,
}

impl Machine {
    /// Reads it all (before xtask pins itself, so nothing is hidden by the affinity mask).
    pub fn read(sh: &Shell, project: &Project, wrk: &str) -> Result<Self> {
        let read =
            |path: &str| std::fs::read_to_string(path).with_context(|| format!("reading {path}"));
        let (model, processors) = procfs::parse_cpuinfo(&read("/proc/cpuinfo")?);
        let temp = std::env::temp_dir();
        let filesystem = cmd!(sh, "df --output=fstype {temp}")
            .quiet()
            .read()
            .ok()
            .and_then(|out| out.lines().last().map(|l| l.trim().to_owned()))
            .unwrap_or_else(|| "unknown".to_owned());
        Ok(Self {
            cpu_model: model.unwrap_or_else(|| "unknown".to_owned()),
            processors,
            kernel: read("/proc/sys/kernel/osrelease")?.trim().to_owned(),
            memory: parse_mem_total(&read("/proc/meminfo")?).unwrap_or(0),
            load_average: read("/proc/loadavg")?
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            rustc: cmd!(sh, "rustc -V").quiet().read().unwrap_or_default(),
            wrk: wrk.to_owned(),
            date: cmd!(sh, "date -u {DATE_FORMAT}")
                .quiet()
                .read()
                .unwrap_or_default(),
            revision: project
                .revision(sh)
                .unwrap_or_else(|_| "unknown".to_owned()),
            filesystem,
        })
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn parse_mem_total(text: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// One line of the targets table.
#[derive(Debug, Clone)]
pub struct Check {
    /// The figure.
    pub figure: String,
    /// The target, as the issue words it.
    pub target: &'static str,
    /// What this run measured.
    pub measured: String,
    /// Whether it meets the target.
    pub met: bool,
}

impl Results {
    fn endpoint(&self, label: &str) -> Option<&Row> {
        self.endpoints.iter().find(|row| row.label == label)
    }

    /// Errors and crashes: what fails a run (smoke or full), whatever the speed.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut row = |row: &Row, at: String| {
            if row.errors.total() > 0 {
                problems.push(format!(
                    "{} at {at}: {} errors",
                    row.label,
                    row.errors.describe()
                ));
            }
        };
        for r in &self.endpoints {
            row(r, "50 connections".into());
        }
        row(&self.scale.lookups, "50 connections".into());
        for (connections, yardstick, accounts) in &self.curve {
            row(yardstick, format!("{connections} connections"));
            row(accounts, format!("{connections} connections"));
        }
        for (name, saturated) in ["service", "yardstick"].iter().zip(&self.saturated) {
            for (what, outcome) in [
                ("saturating load", &saturated.load),
                ("/health", &saturated.health),
            ] {
                if outcome.errors.total() > 0 {
                    problems.push(format!(
                        "{name} under saturation, {what}: {} errors",
                        outcome.errors.describe()
                    ));
                }
            }
            if saturated.probe_failures > 0 {
                problems.push(format!(
                    "{name} under saturation: {} probes did not report healthy",
                    saturated.probe_failures
                ));
            }
        }
        if !self.clean_exit {
            problems.push("the service did not exit 0 on SIGTERM".to_owned());
        }
        problems
    }

    /// The issue's targets against this run.
    pub fn checks(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        let ratio_of = |label: &str| self.endpoint(label).and_then(|row| row.rate_ratio);
        let at_least = |value: Option<f64>, floor: f64| value.is_some_and(|v| v >= floor);
        let with_cpu = |row: Option<&Row>| {
            format!(
                "{} (per server CPU-second: {})",
                ratio(row.and_then(|r| r.rate_ratio)),
                ratio(row.and_then(|r| r.per_cpu_ratio))
            )
        };
        let accounts = ratio_of("/accounts/{id}");
        checks.push(Check {
            figure: "`/accounts/{id}` requests/s ÷ yardstick".into(),
            target: "≥ 0.80",
            measured: with_cpu(self.endpoint("/accounts/{id}")),
            met: at_least(accounts, 0.80),
        });
        let health = ratio_of("/health");
        checks.push(Check {
            figure: "`/health` requests/s ÷ yardstick".into(),
            target: "≥ 0.95",
            measured: with_cpu(self.endpoint("/health")),
            met: at_least(health, 0.95),
        });
        let p99s: Vec<(String, Option<f64>)> = self
            .endpoints
            .iter()
            .filter(|row| row.p99_ratio.is_some())
            .map(|row| (row.label.clone(), row.p99_ratio))
            .collect();
        checks.push(Check {
            figure: "p99 of each ÷ yardstick's p99".into(),
            target: "≤ 2",
            measured: p99s
                .iter()
                .map(|(label, r)| format!("`{label}` {}", ratio(*r)))
                .collect::<Vec<_>>()
                .join(", "),
            met: p99s.iter().all(|(_, r)| r.is_some_and(|r| r <= 2.0)),
        });
        let probe = self.probe.ratio();
        checks.push(Check {
            figure: "probe wall time ÷ static do-nothing binary (medians)".into(),
            target: "≤ 1.3",
            measured: format!(
                "{probe:.2} ({} ÷ {})",
                time(self.probe.probe.p50),
                time(self.probe.floor.p50)
            ),
            met: probe <= 1.3,
        });
        let size = self.size("healthchecker");
        checks.push(Check {
            figure: "probe binary, static".into(),
            target: "≤ 1.2 MB",
            measured: format!(
                "{} (empty static program: {})",
                mb(size),
                mb(self.size("empty static program (floor)"))
            ),
            met: size <= 1_200_000,
        });
        let memory = &self.memory;
        checks.push(Check {
            figure: "idle RSS / peak RSS under 50 connections".into(),
            target: "≤ 4 MB / ≤ 16 MB",
            measured: format!(
                "{} / {}",
                mb(memory.service_idle.rss),
                mb(memory.service_after_50.hwm)
            ),
            met: memory.service_idle.rss <= 4_000_000 && memory.service_after_50.hwm <= 16_000_000,
        });
        let accounts = thousands(self.scale.accounts);
        let big = self.scale.lookups.rate_ratio;
        checks.push(Check {
            figure: format!("lookups/s with {accounts} accounts ÷ with 100"),
            target: "≥ 0.90",
            measured: with_cpu(Some(&self.scale.lookups)),
            met: at_least(big, 0.90),
        });
        checks.push(Check {
            figure: format!("seeding {accounts} accounts"),
            target: "≤ 10 s",
            measured: format!("{:.2} s", self.scale.seeding.as_secs_f64()),
            met: self.scale.seeding <= Duration::from_secs(10),
        });
        let [service, _] = &self.saturated;
        checks.push(Check {
            figure: "`/health` p99 while `/accounts` is saturated (1000 connections), \
                     separate keep-alive client"
                .into(),
            target: "≤ 50 ms",
            measured: time(service.health.p99),
            met: service.health.p99 <= Duration::from_millis(50),
        });
        let probes = service.probes.map(|p| p.p99);
        checks.push(Check {
            figure: "the same, healthchecker (a new process and connection each), p99 \
                     (not in the issue)"
                .into(),
            target: "≤ 50 ms",
            measured: probes.map_or_else(|| "no probe ran".to_owned(), time),
            met: probes.is_some_and(|p| p <= Duration::from_millis(50))
                && service.probe_failures == 0,
        });
        let problems = self.problems();
        checks.push(Check {
            figure: "errors (every run, 10 to 1000 connections), crashes, unclean exit".into(),
            target: "0",
            measured: if problems.is_empty() {
                "0".to_owned()
            } else {
                problems.join("; ")
            },
            met: problems.is_empty(),
        });
        checks
    }

    fn size(&self, name: &str) -> u64 {
        self.sizes
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, size)| *size)
    }
}

/// A one-line summary of a sample for the progress output.
pub fn brief(sample: &Sample) -> String {
    let outcome = &sample.outcome;
    format!(
        "{:>9} req/s  p50 {:>8}  p99 {:>8}  errors {}  server CPU {:>3.0}% (others {:>3.0}%, {:>7} req per CPU-s)",
        thousands_f(outcome.rate()),
        time(outcome.p50),
        time(outcome.p99),
        outcome.errors.describe(),
        sample.cpu * 100.0,
        sample.others * 100.0,
        thousands_f(sample.per_cpu())
    )
}

/// The notes between the markers of an existing `BENCHMARKS.md`.
pub fn notes(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once(NOTES_START)?;
    let (notes, _) = rest.split_once(NOTES_END)?;
    Some(notes.trim_matches('\n'))
}

/// Renders `BENCHMARKS.md`; the work directory is shown as `$BENCH_DIR` in command lines.
pub fn render(results: &Results, work_dir: &Path, notes: Option<&str>) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the `let _` below are for fmt::Result only.
    let plan = &results.plan;
    let machine = results.machine.as_ref();
    let field = |f: fn(&Machine) -> String| machine.map_or_else(|| "unknown".to_owned(), f);
    let _ = writeln!(out, "# Benchmarks\n");
    if plan.smoke {
        let _ = writeln!(
            out,
            "**Smoke run** (`cargo xtask bench --smoke`): too short to mean anything about \
             speed; it checks that nothing errs or crashes.\n"
        );
    }
    let _ = writeln!(
        out,
        "Measured by `cargo xtask bench` on {}, commit `{}`; the whole run took {:.0} s.\n\n\
         Every figure below comes from this one run. The servers are pinned to one core and wrk \
         to the other. Each of {} round(s) runs every load once for {} s, back to back; the \
         tables give the median over rounds, and every ratio is taken within a round (load ÷ the \
         yardstick's figure in that round) before the median is taken. The yardstick is a bare \
         hyper server (`xtask/yardstick`) built like the service and answering every request \
         with the body of a real account ({} bytes: `{}`), on the same core under the same \
         load: what this machine can do over HTTP at all, right now. Absolute numbers drift on \
         this shared machine; the ratios are the result.\n\n\
         Rerun with `cargo xtask bench` (about {:.0} min; rewrites this file but keeps the \
         Notes section). CI runs `cargo xtask bench --smoke`, which fails on errors or a crash, \
         never on speed.\n",
        field(|m| m.date.clone()),
        field(|m| m.revision.clone()),
        results.total.as_secs_f64(),
        plan.rounds,
        plan.duration.as_secs(),
        results.body.len(),
        results.body,
        (results.total.as_secs_f64() / 60.0).ceil(),
    );

    let _ = writeln!(out, "## Targets (issue 6)\n");
    let _ = writeln!(out, "| figure | target | measured | |\n|---|---|---|---|");
    for check in results.checks() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            check.figure,
            check.target,
            check.measured,
            if check.met { "met" } else { "**not met**" }
        );
    }
    let _ = writeln!(
        out,
        "\nMB = 10^6 bytes. The original Go service did ~15k account lookups/s and ~86k health \
         answers/s on one core here, ~1.7 ms per probe, 7.5 MB idle (quoted from the issue, not \
         measured in this run).\n"
    );

    let _ = writeln!(out, "## Machine\n");
    if let Some(m) = machine {
        let _ = writeln!(
            out,
            "- CPU: {}, {} processors (nproc {})\n- kernel {}, {:.1} GiB memory, load average \
             {} when the run started (the machine is shared)\n- {}; {}\n- temporary databases \
             on {} (`{}`)\n",
            m.cpu_model,
            m.processors,
            m.processors,
            m.kernel,
            gib(m.memory),
            m.load_average,
            m.rustc,
            m.wrk,
            m.filesystem,
            std::env::temp_dir().display()
        );
    }

    let _ = writeln!(out, "## Results\n");
    let _ = writeln!(
        out,
        "### Throughput and latency, {} connections\n\n\
         | load | requests/s | ÷ yardstick | p50 | p99 | p99 ÷ yardstick | errors | server CPU | others on its core | requests per server CPU-second | ÷ yardstick |\n\
         |---|---|---|---|---|---|---|---|---|---|---|",
        super::CONNECTIONS
    );
    for row in results
        .endpoints
        .iter()
        .chain(std::iter::once(&results.big_vs_yardstick))
    {
        let _ = writeln!(out, "{}", row_line(row));
    }
    let _ = writeln!(
        out,
        "\n`/accounts/{{id}}` requests ids spread over the seeded set (a fixed pseudo-random \
         sequence, see the script below); the yardstick runs the same script and ignores the \
         path. Errors are wrk's: connect, read, write, timeout (5 s), and statuses above 399. \
         Server CPU is the server's CPU time over wall time (100% = its core is saturated, so \
         the server, not wrk, is the bottleneck); \"others on its core\" is the share of the \
         server's core that went to other processes meanwhile (`/proc/stat`), the noise of this \
         shared machine. Requests per server CPU-second (requests over the server's CPU time) is \
         what a request costs the server: it holds when other jobs take part of the server's \
         core, which moves requests/s and latency.\n"
    );

    let _ = writeln!(
        out,
        "### Connection counts, `/accounts/{{id}}` (100 accounts)\n\n\
         | connections | yardstick requests/s | `/accounts` requests/s | ÷ yardstick | yardstick p99 | `/accounts` p99 | p99 ÷ yardstick | errors | server CPU (yardstick / service) | others on its core | per server CPU-second ÷ yardstick |\n\
         |---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (connections, yardstick, accounts) in &results.curve {
        let mut errors = yardstick.errors;
        errors.add(accounts.errors);
        let _ = writeln!(
            out,
            "| {connections} | {} | {} | {} | {} | {} | {} | {} | {:.0}% / {:.0}% | {:.0}% / {:.0}% | {} |",
            thousands_f(yardstick.rate),
            thousands_f(accounts.rate),
            ratio(accounts.rate_ratio),
            time(yardstick.p99),
            time(accounts.p99),
            ratio(accounts.p99_ratio),
            errors.describe(),
            yardstick.cpu * 100.0,
            accounts.cpu * 100.0,
            yardstick.others * 100.0,
            accounts.others * 100.0,
            ratio(accounts.per_cpu_ratio)
        );
    }
    let _ = writeln!(out, "{}", generator_caveat(results));

    if let Some(instructions) = &results.instructions {
        let _ = writeln!(
            out,
            "### Instructions per request (callgrind)\n\n\
             Each server alone under valgrind's callgrind on the server core, counting only \
             while wrk (10 connections, same scripts) runs: user-space instructions of all its \
             threads, over requests completed. Unlike requests/s, this does not move with the \
             machine's other load; the kernel's share of each request (socket reads, writes, \
             epoll) is not in it, which is why the throughput ratios are closer to 1 than these.\n\n\
             | load | instructions/request | ÷ yardstick |\n|---|---|---|"
        );
        for (label, count) in instructions.rows() {
            let shown = if label.starts_with('/') {
                format!("`{label}`")
            } else {
                label.to_owned()
            };
            let _ = writeln!(
                out,
                "| {shown} | {} | {} |",
                thousands_f(count),
                if label == "yardstick" {
                    "-".to_owned()
                } else {
                    format!("{:.1}", count / instructions.yardstick)
                }
            );
        }
        let _ = writeln!(out);
    }

    let scale = &results.scale;
    let accounts = thousands(scale.accounts);
    let _ = writeln!(
        out,
        "\n### Scale: {accounts} accounts\n\n\
         - seeding: {:.2} s as the service logs it ({} accounts/s); start to listening (open, \
         seed, first health round, bind): {:.2} s\n\
         - database file: {} ({:.0} bytes per account)\n\
         - lookups, ids spread over all {accounts}: {} requests/s, p99 {}, **{} × the lookups \
         with 100 accounts** in the same rounds ({} per server CPU-second; {} × the \
         yardstick)\n\
         - memory: {} RSS after start, {} peak (VmHWM, seeding included), {} RSS after the \
         rounds\n",
        scale.seeding.as_secs_f64(),
        thousands_f(as_f64(scale.accounts) / scale.seeding.as_secs_f64().max(1e-9)),
        scale.startup.as_secs_f64(),
        mb(scale.file_size),
        as_f64(scale.file_size) / as_f64(scale.accounts.max(1)),
        thousands_f(scale.lookups.rate),
        time(scale.lookups.p99),
        ratio(scale.lookups.rate_ratio),
        ratio(scale.lookups.per_cpu_ratio),
        ratio(results.big_vs_yardstick.rate_ratio),
        mb(scale.idle.rss),
        mb(scale.after.hwm),
        mb(scale.after.rss),
    );

    let _ = writeln!(
        out,
        "### `/health` while `/accounts` is saturated ({} connections)\n\n\
         A separate wrk (one keep-alive connection) requests `/health` for {} s while the \
         saturating wrk runs; meanwhile the healthchecker runs every 20 ms, each time a new \
         process and a new connection, as Docker runs it. Both clients share the load core \
         with the saturating wrk.\n\n\
         | server | saturating load requests/s | its p99 | `/health` requests/s | `/health` p50 | `/health` p99 | `/health` max | probes | probe p50 | probe p99 | probe max | failed probes | errors |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|",
        super::SATURATING,
        plan.saturation.saturating_sub(super::RAMP * 2).as_secs()
    );
    for (name, saturated) in ["service", "yardstick"].iter().zip(&results.saturated) {
        let mut errors = saturated.load.errors;
        errors.add(saturated.health.errors);
        let probe = |f: fn(&Spread) -> Duration| {
            saturated
                .probes
                .as_ref()
                .map_or("-".to_owned(), |p| time(f(p)))
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands_f(saturated.load.rate()),
            time(saturated.load.p99),
            thousands_f(saturated.health.rate()),
            time(saturated.health.p50),
            time(saturated.health.p99),
            time(saturated.health.max),
            saturated.probes.map_or(0, |p| p.count),
            probe(|p| p.p50),
            probe(|p| p.p99),
            probe(|p| p.max),
            saturated.probe_failures,
            errors.describe()
        );
    }

    let cost = &results.probe;
    let _ = writeln!(
        out,
        "\n### Probe cost\n\n\
         `healthchecker -port=PORT` against the idle service's `/health`, and the static \
         do-nothing binary, alternately, {} times each after {} warm-up pairs, on the load \
         core. Wall time from spawn to exit.\n\n\
         | | min | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|",
        cost.probe.count,
        cost.probe.count / 10
    );
    for (name, spread) in [
        ("healthchecker", &cost.probe),
        ("do-nothing floor", &cost.floor),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} |",
            time(spread.min),
            time(spread.p50),
            time(spread.p90),
            time(spread.p99),
            time(spread.max)
        );
    }
    let _ = writeln!(
        out,
        "\nRatio of medians: **{:.2}**; the probe's own work (median minus floor) is {}.\n",
        cost.ratio(),
        time(cost.probe.p50.saturating_sub(cost.floor.p50))
    );

    let _ = writeln!(
        out,
        "### Binary sizes\n\n| binary | bytes | MB | MiB |\n|---|---|---|---|"
    );
    for (name, size) in &results.sizes {
        let _ = writeln!(
            out,
            "| {name} | {} | {:.2} | {:.2} |",
            thousands(*size),
            as_f64(*size) / 1e6,
            crate::dist::mib(*size)
        );
    }

    let memory = &results.memory;
    let _ = writeln!(
        out,
        "\n### Memory (100 accounts)\n\n\
         | | service | yardstick |\n|---|---|---|\n\
         | RSS after start | {} | {} |\n\
         | of which anonymous (heap, stacks) / file-backed (the binary's pages) | {} / {} | {} / {} |\n\
         | peak RSS (VmHWM) after the {}-connection rounds | {} | {} |\n\
         | peak RSS (VmHWM) after 1000 connections | {} | {} |\n\
         | RSS after 1000 connections | {} | {} |\n\
         | RSS with {} idle keep-alive connections open | {} | {} |\n\
         | peak RSS (VmHWM) by then | {} | {} |\n\
         | `GET /health` on one more connection meanwhile | {} | {} |",
        mb(memory.service_idle.rss),
        mb(memory.yardstick_idle.rss),
        mb(memory.service_idle.anon),
        mb(memory.service_idle.file),
        mb(memory.yardstick_idle.anon),
        mb(memory.yardstick_idle.file),
        super::CONNECTIONS,
        mb(memory.service_after_50.hwm),
        mb(memory.yardstick_after_50.hwm),
        mb(memory.service_after_1000.hwm),
        mb(memory.yardstick_after_1000.hwm),
        mb(memory.service_after_1000.rss),
        mb(memory.yardstick_after_1000.rss),
        thousands(results.held[0].connections as u64),
        mb(results.held[0].memory.rss),
        mb(results.held[1].memory.rss),
        mb(results.held[0].memory.hwm),
        mb(results.held[1].memory.hwm),
        time(results.held[0].health),
        time(results.held[1].health),
    );
    for (name, took) in &results.startup {
        let _ = write!(
            out,
            "{}{name}: {}",
            if name == &results.startup[0].0 {
                "\nStart to listening: "
            } else {
                ", "
            },
            time(*took)
        );
    }
    let _ = writeln!(out, ".\n");

    let work = work_dir.display().to_string();
    let _ = writeln!(
        out,
        "## Commands\n\nWhat `cargo xtask bench` ran (`$BENCH_DIR` is a fresh temporary \
         directory; ports are free ones picked by the servers):\n\n```sh"
    );
    for command in &results.commands {
        let _ = writeln!(out, "{}", command.replace(&work, "$BENCH_DIR"));
    }
    let _ = writeln!(
        out,
        "```\n\n`$BENCH_DIR/accounts-100.lua`, the script behind every `/accounts` and \
         yardstick run (the big database's differs only in the count):\n\n```lua\n{}```\n",
        Paths::Spread {
            prefix: "/accounts/".into(),
            first: service::FIRST_ID,
            count: super::BASE_ACCOUNTS,
        }
        .script()
    );

    let _ = writeln!(out, "## Notes\n\n{NOTES_START}");
    let _ = writeln!(
        out,
        "{}",
        notes.unwrap_or("(none yet: findings and profiles go here, by hand)")
    );
    let _ = writeln!(out, "{NOTES_END}");
    out
}

/// Says, for every yardstick run whose server did not have its core to itself, why: other
/// processes on the core (contention: requests/s and latencies are then noisy, per-CPU-second
/// figures still hold) or wrk at its own limit (the yardstick's figure is then a floor and the
/// service's ratio an upper bound).
fn generator_caveat(results: &Results) -> String {
    let yardstick_rows = results
        .endpoints
        .iter()
        .filter(|row| row.rate_ratio.is_none())
        .map(|row| (super::CONNECTIONS, row))
        .chain(
            results
                .curve
                .iter()
                .map(|(c, yardstick, _)| (*c, yardstick)),
        );
    let mut contended = Vec::new();
    let mut generator_bound = Vec::new();
    for (connections, row) in yardstick_rows.filter(|(_, row)| row.cpu < 0.9) {
        let text = format!(
            "{connections} connections: yardstick {:.0}%, others {:.0}%",
            row.cpu * 100.0,
            row.others * 100.0
        );
        if row.others >= 0.1 {
            contended.push(text);
        } else {
            generator_bound.push(text);
        }
    }
    let mut out = String::new();
    if contended.is_empty() && generator_bound.is_empty() {
        out.push_str(
            "\nThe yardstick had at least 90% of its core in every run: the server, not wrk, set \
             the pace, and nothing else competed for the core.\n",
        );
    }
    if !contended.is_empty() {
        let _ = write!(
            out,
            "\nOther processes took part of the server core ({}): requests/s and latencies of \
             those rounds say more about the machine than about the servers; the per \
             CPU-second ratios still hold.\n",
            contended.join("; ")
        );
    }
    if !generator_bound.is_empty() {
        let _ = write!(
            out,
            "\nThe yardstick's core was not saturated although nothing else used it ({}): wrk, \
             alone on its core, was at its own limit, so the yardstick's figure understates it \
             and the service's ratio is an upper bound.\n",
            generator_bound.join("; ")
        );
    }
    out
}

fn row_line(row: &Row) -> String {
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {:.0}% | {:.0}% | {} | {} |",
        if row.label.starts_with('/') {
            format!("`{}`", row.label)
        } else {
            row.label.clone()
        },
        thousands_f(row.rate),
        ratio(row.rate_ratio),
        time(row.p50),
        time(row.p99),
        ratio(row.p99_ratio),
        row.errors.describe(),
        row.cpu * 100.0,
        row.others * 100.0,
        thousands_f(row.per_cpu),
        ratio(row.per_cpu_ratio)
    )
}

/// A ratio with two decimals, or `-` without a reference.
fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

/// A latency in µs below a millisecond, else in ms or s.
pub fn time(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.0} µs")
    } else if micros < 1e6 {
        format!("{:.2} ms", micros / 1e3)
    } else {
        format!("{:.2} s", micros / 1e6)
    }
}

/// Bytes in decimal megabytes.
fn mb(bytes: u64) -> String {
    format!("{:.2} MB", as_f64(bytes) / 1e6)
}

fn gib(bytes: u64) -> f64 {
    as_f64(bytes) / f64::from(1u32 << 30)
}

fn as_f64(value: u64) -> f64 {
    // The values shown (bytes, counts) stay far below 2^52: nothing is lost.
    #[allow(clippy::cast_precision_loss)]
    let value = value as f64;
    value
}

/// An integer with thousands separators: `1,000,000`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A rate rounded to a whole number, with thousands separators.
fn thousands_f(value: f64) -> String {
    // Rates are finite, non-negative and far below u64::MAX; rounding is the point.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let whole = value.max(0.0).round() as u64;
    thousands(whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands_f(81_234.6), "81,235");
    }

    #[test]
    fn times_pick_a_readable_unit() {
        assert_eq!(time(Duration::from_micros(612)), "612 µs");
        assert_eq!(time(Duration::from_micros(1_234)), "1.23 ms");
        assert_eq!(time(Duration::from_millis(2_500)), "2.50 s");
    }

    #[test]
    fn the_notes_between_the_markers_are_found() {
        let text = format!(
            "# Benchmarks\n...\n## Notes\n\n{NOTES_START}\nProfiled: x.\n\nMore.\n{NOTES_END}\n"
        );
        assert_eq!(notes(&text), Some("Profiled: x.\n\nMore."));
        assert_eq!(notes("# Benchmarks\nno markers\n"), None);
    }

    #[test]
    fn mem_total_is_read_in_bytes() {
        let text = "MemTotal:       24576000 kB\nMemFree:        1000 kB\n";
        assert_eq!(parse_mem_total(text), Some(24_576_000 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
    }

    fn sample(rate: u64, p99_us: u64) -> Sample {
        Sample {
            outcome: Outcome {
                requests: rate * 10,
                duration: Duration::from_secs(10),
                bytes: 0,
                p50: Duration::from_micros(p99_us / 2),
                p90: Duration::from_micros(p99_us),
                p99: Duration::from_micros(p99_us),
                max: Duration::from_micros(p99_us),
                errors: Errors::default(),
            },
            cpu: 1.0,
            others: 0.0,
        }
    }

    #[test]
    fn ratios_are_taken_round_by_round_then_the_median() {
        // Round by round: 0.8, 0.9, 1.0; a machine slowing down between rounds does not matter.
        let yardstick = [sample(100, 1000), sample(50, 1000), sample(200, 1000)];
        let service = [sample(80, 1500), sample(45, 3000), sample(200, 1000)];
        let row = Row::of("/accounts/{id}", &service, Some(&yardstick));
        let rate_ratio = row.rate_ratio.unwrap();
        assert!((rate_ratio - 0.9).abs() < 1e-9, "{rate_ratio}");
        assert!((row.p99_ratio.unwrap() - 1.5).abs() < 1e-9);
        assert!((row.rate - 80.0).abs() < 1e-9);
        assert_eq!(row.p99, Duration::from_micros(1500));
    }

    #[test]
    fn a_row_without_a_reference_has_no_ratios() {
        let row = Row::of("yardstick", &[sample(100, 1000)], None);
        assert_eq!(row.rate_ratio, None);
        assert_eq!(ratio(row.rate_ratio), "-");
    }
}
