//! `cargo xtask bench`: throughput, latency, probe cost, memory and scale of the release
//! binaries, every figure next to a yardstick measured in the same run, written to
//! `target/bench/results.json` and rendered into `BENCHMARKS.md`. `--smoke` is the short CI
//! variant: it fails on errors or a crash, never on speed, and leaves `BENCHMARKS.md` alone.
//!
//! The machine is small and shared (two cores, other jobs running), so absolute numbers drift
//! from run to run; ratios taken within one round do not. The servers are pinned to one core and
//! wrk to the other; each round runs every load once, back to back, and the report gives medians
//! over rounds of per-round figures and ratios.
//!
//! [`Lab::measure`] reads top to bottom, one function per phase: start the service (100
//! accounts), the yardstick (answering the body of a real account) and a second service seeded
//! with the big database; rounds at 50 connections; probe cost; the connection-count curve;
//! `/health` under saturation; thousands of held connections; SIGTERM and clean exit; then (not
//! with `--smoke`) instructions per request under callgrind, the figure the machine's noise does
//! not move. The figures are typed in `results`, the targets are data there, and the prose is
//! one template (`bench/BENCHMARKS.md.jinja`).

mod callgrind;
mod hold;
mod probe;
mod report;
mod results;
mod sys;
mod wrk;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use serde::Serialize;
use xshell::{Shell, cmd};

use self::results::{CurvePoint, Instructions, Main, Outcome, Pair, ProbeCost, Results, Row};
use self::results::{Sample, Saturated, Saturation, Scale, Sizes};
use self::sys::CpuTicks;
use crate::dist::{self, TARGET};
use crate::project::Project;
use crate::server::{self, Server};

/// Accounts in the service most loads run against (the original's default seed).
const BASE_ACCOUNTS: u64 = 100;
/// The first seeded id (`Person_0` is account `10000`).
const FIRST_ID: u64 = 10_000;
/// The connection-count curve.
const CONNECTION_COUNTS: [u32; 3] = [10, 100, 1000];
/// Open files each process needs for the held connections, with room to spare.
const FILES_NEEDED: u64 = 11_000;
/// Pause after a server starts before it is measured.
const SETTLE: Duration = Duration::from_millis(1500);
/// How long a server may take to listen (the big database is seeded first).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the saturating load runs before `/health` is measured, and after it stops.
const RAMP: Duration = Duration::from_secs(1);
/// Grace for a clean exit on SIGTERM (the service drains for up to 8 s by default).
const STOP_GRACE: Duration = Duration::from_secs(15);

/// Options of `cargo xtask bench`.
#[derive(Debug, Args)]
pub struct Options {
    /// Short run for CI (a few seconds per load, 10,000 accounts instead of 1,000,000): fails
    /// on errors or a crash, never on speed, and leaves BENCHMARKS.md alone.
    #[arg(long)]
    smoke: bool,
    /// Seconds per measured run [default: 6; 2 with --smoke].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=600))]
    duration: Option<u64>,
    /// Rounds over which every load is repeated [default: 5; 1 with --smoke].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: Option<u32>,
    /// Use the binaries already built in target/ instead of building them first.
    #[arg(long)]
    no_build: bool,
}

/// What a run does, from the options; part of the results.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Plan {
    /// The CI variant.
    pub smoke: bool,
    /// Seconds of each run; a first round of every load warms up and is not counted.
    pub seconds: u64,
    pub rounds: usize,
    /// Connections of the main rounds (and of the peak-RSS target).
    pub connections: u32,
    /// Accounts of the big database.
    pub scale_accounts: u64,
    /// Probe/floor pairs timed.
    pub probe_runs: usize,
    /// Connections that saturate `/accounts` while `/health` is measured, and for how long.
    pub saturating: u32,
    pub saturation_seconds: u64,
    /// Idle keep-alive connections held open at once (with the `/health` client, 10,000 in the
    /// full run: the service's default cap).
    pub held_connections: usize,
}

impl Plan {
    fn new(options: &Options) -> Self {
        // Many short rounds beat few long ones on a shared machine: a burst of someone else's
        // work spoils one sample of each load, not the median.
        let (smoke, full) = (options.smoke, !options.smoke);
        let seconds = options.duration.unwrap_or(if full { 6 } else { 2 });
        Self {
            smoke,
            seconds,
            rounds: options
                .rounds
                .map_or(if full { 5 } else { 1 }, |r| r as usize),
            connections: 50,
            scale_accounts: if full { 1_000_000 } else { 10_000 },
            probe_runs: if full { 2000 } else { 30 },
            saturating: 1000,
            saturation_seconds: seconds + 5,
            held_connections: if full { 9_999 } else { 1_000 },
        }
    }
}

/// Runs the bench.
pub fn run(sh: &Shell, project: &Project, options: &Options) -> Result<()> {
    let plan = Plan::new(options);
    let started = Instant::now();
    let binaries = Binaries::prepare(sh, project, options.no_build)?;
    let wrk = wrk::ensure_installed(sh)?;
    let files = rlimit::increase_nofile_limit(65_536).context("raising the open-file limit")?;
    ensure!(
        files >= FILES_NEEDED,
        "{FILES_NEEDED} open files needed, not {files}"
    );
    let machine = sys::Machine::read(sh, project, wrk)?;
    let cpus = pin_self(sh, plan.smoke)?;
    let work = tempfile::Builder::new().prefix("xtask-bench-").tempdir()?;
    let (rounds, seconds, dir) = (plan.rounds, plan.seconds, work.path().display());
    println!(
        "bench: servers on CPU {}, load on CPU {}, {rounds} x {seconds} s, in {dir}",
        cpus.0, cpus.1
    );

    let mut results = Lab::new(plan, binaries, cpus, work.path())?.measure()?;
    results.machine = machine;
    results.total = started.elapsed().as_secs_f64();
    results.finish();
    let json = project.target_dir.join("bench/results.json");
    std::fs::write(&json, serde_json::to_string_pretty(&results)?)?;
    let path = project.root.join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let markdown = report::render(&results, work.path(), report::notes(&old))?;
    println!("{markdown}\nbench: wrote {}", json.display());
    if results.plan.smoke {
        println!("bench --smoke: BENCHMARKS.md left alone (smoke figures are not benchmarks)");
    } else {
        std::fs::write(&path, &markdown).with_context(|| format!("writing {}", path.display()))?;
    }
    match results.problems.join("\n  ") {
        problems if problems.is_empty() => Ok(()),
        problems => bail!("the bench saw errors:\n  {problems}"),
    }
}

/// Chooses a CPU for the servers and one for the load, and pins every thread of xtask to the
/// load CPU, so that what it starts unpinned (wrk, the probes, the floor) runs there too. With
/// only one CPU, the smoke run shares it (its figures mean nothing anyway); the full run refuses.
fn pin_self(sh: &Shell, smoke: bool) -> Result<(u32, u32)> {
    let cpus = match sys::allowed_cpus()?[..] {
        [server, load, ..] => (server, load),
        [only] if smoke => (only, only),
        _ => bail!("the bench needs two CPUs (one for the servers, one for wrk)"),
    };
    let (load, pid) = (cpus.1.to_string(), std::process::id().to_string());
    cmd!(sh, "taskset -a -p -c {load} {pid}")
        .quiet()
        .ignore_stdout()
        .run()?;
    Ok(cpus)
}

/// The binaries under test and the floor.
#[derive(Debug)]
struct Binaries {
    service: PathBuf,
    probe: PathBuf,
    yardstick: PathBuf,
    /// `fn main() {}` built like the probe.
    floor: PathBuf,
}

impl Binaries {
    fn prepare(sh: &Shell, project: &Project, no_build: bool) -> Result<Self> {
        if !no_build {
            dist::run(sh, project)?;
            // Built exactly like the service (static, release profile) so the two differ only
            // in what they do per request.
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let build = cmd!(sh, "{cargo} build -p yardstick --release --target {TARGET}");
            build
                .env("RUSTFLAGS", "-C target-feature=+crt-static")
                .run()?;
        }
        let bench_dir = project.target_dir.join("bench");
        sh.create_dir(&bench_dir)?;
        let binaries = Self {
            service: project.dist_dir().join("accountservice"),
            probe: project.dist_dir().join("healthchecker"),
            yardstick: project.target_dir.join(TARGET).join("release/yardstick"),
            floor: probe::build_floor(&bench_dir)?,
        };
        for path in [&binaries.service, &binaries.probe, &binaries.yardstick] {
            ensure!(
                path.is_file(),
                "{} is missing (build without --no-build)",
                path.display()
            );
        }
        Ok(binaries)
    }

    fn sizes(&self) -> Result<Sizes> {
        let size = |path: &Path| std::fs::metadata(path).map(|file| file.len());
        let (service, probe) = (size(&self.service)?, size(&self.probe)?);
        let (yardstick, floor) = (size(&self.yardstick)?, size(&self.floor)?);
        Ok(Sizes {
            service,
            probe,
            yardstick,
            floor,
        })
    }
}

/// The servers measured side by side.
struct Servers {
    yardstick: Server,
    /// The service with 100 accounts.
    base: Server,
    /// The service with the big database.
    scale: Server,
}

impl Servers {
    fn memory(&self) -> Result<Pair<sys::Memory>> {
        let (service, yardstick) = (self.base.memory()?, self.yardstick.memory()?);
        Ok(Pair { service, yardstick })
    }
}

/// Picks one of the servers.
type Pick = fn(&mut Servers) -> &mut Server;

/// The wrk scripts. The yardstick gets the 100-account one: it ignores the path, so wrk does
/// exactly the same work for both.
struct Scripts {
    accounts: PathBuf,
    big: PathBuf,
    health: PathBuf,
    ready: PathBuf,
}

/// Everything a run needs, and the command lines it ran.
struct Lab {
    plan: Plan,
    bin: Binaries,
    /// The servers' CPU and the load's.
    cpus: (u32, u32),
    work: PathBuf,
    scripts: Scripts,
    /// Every distinct command line, in the order first run.
    commands: Vec<String>,
    /// Errors and failed probes seen so far.
    problems: Vec<String>,
}

impl Lab {
    fn new(plan: Plan, bin: Binaries, cpus: (u32, u32), work: &Path) -> Result<Self> {
        let write = |name: &str, path: &str, spread: Option<u64>| -> Result<PathBuf> {
            let script = wrk::script(path, spread.map(|count| (FIRST_ID, count)));
            std::fs::write(work.join(name), script)?;
            Ok(work.join(name))
        };
        let scripts = Scripts {
            accounts: write("accounts-100.lua", "/accounts/", Some(BASE_ACCOUNTS))?,
            big: write(
                "accounts-scale.lua",
                "/accounts/",
                Some(plan.scale_accounts),
            )?,
            health: write("health.lua", "/health", None)?,
            ready: write("health-ready.lua", "/health/ready", None)?,
        };
        let (work, commands, problems) = (work.to_owned(), Vec::new(), Vec::new());
        Ok(Self {
            plan,
            bin,
            cpus,
            work,
            scripts,
            commands,
            problems,
        })
    }

    /// Every phase, in order.
    fn measure(mut self) -> Result<Results> {
        let mut results = Results {
            plan: self.plan.clone(),
            ..Results::default()
        };
        let mut servers = self.start_servers(&mut results)?;
        (results.main, results.scale.lookups) = self.rounds(&mut servers)?;
        results.scale.after = servers.scale.memory()?;
        results.memory.after_50 = servers.memory()?;
        results.probe = self.probe_cost(&servers)?;
        results.curve = self.curve(&mut servers)?;
        results.memory.after_1000 = servers.memory()?;
        println!("bench: /health while /accounts is saturated");
        let (service, yardstick) = (servers.base.addr, servers.yardstick.addr);
        results.saturated = Saturated {
            service: self.saturate(&mut servers.base, service)?,
            management: self.saturate_management()?,
            yardstick: self.saturate(&mut servers.yardstick, yardstick)?,
        };
        println!(
            "bench: {} idle keep-alive connections, then one more /health",
            self.plan.held_connections
        );
        results.held = Pair {
            service: hold::hold(&mut servers.base, self.plan.held_connections)?,
            yardstick: hold::hold(&mut servers.yardstick, self.plan.held_connections)?,
        };
        results.clean_exit = servers.base.stop(STOP_GRACE, true)?.success();
        servers.scale.stop(STOP_GRACE, true)?;
        servers.yardstick.stop(STOP_GRACE, false)?;
        results.instructions = self.instructions(&results.body)?;
        results.sizes = self.bin.sizes()?;
        if !results.clean_exit {
            self.problems
                .push("the service did not exit 0 on SIGTERM".to_owned());
        }
        (results.commands, results.problems) = (self.commands, self.problems);
        Ok(results)
    }

    /// The service (100 accounts), the yardstick answering one of its accounts' body, and the
    /// service with the big database; their start-up times, idle memory and the seeding.
    fn start_servers(&mut self, results: &mut Results) -> Result<Servers> {
        let args = service_args(&self.work.join("accounts-100.db"), BASE_ACCOUNTS);
        let base = self.start("service (100 accounts)", &self.bin.service.clone(), &args)?;
        // The yardstick answers the body of a real account from the middle of the seeded range,
        // so both send the same number of bytes.
        results.body = fetch(base.addr, FIRST_ID + BASE_ACCOUNTS / 2)?;
        let args = ["0".to_owned(), results.body.clone()];
        let yardstick = self.start("yardstick", &self.bin.yardstick.clone(), &args)?;
        let startup = (base.startup.as_secs_f64(), yardstick.startup.as_secs_f64());
        results.startup = Pair {
            service: startup.0,
            yardstick: startup.1,
        };

        println!("bench: seeding {} accounts", self.plan.scale_accounts);
        let db = self.work.join("accounts-scale.db");
        let args = service_args(&db, self.plan.scale_accounts);
        let scale = self.start("service (big database)", &self.bin.service.clone(), &args)?;
        let servers = Servers {
            yardstick,
            base,
            scale,
        };
        results.memory.idle = servers.memory()?;
        results.scale = Scale {
            accounts: self.plan.scale_accounts,
            seeding: seeding_time(&servers.scale.lines())?,
            startup: servers.scale.startup.as_secs_f64(),
            file_size: std::fs::metadata(&db)?.len(),
            idle: servers.scale.memory()?,
            ..Scale::default()
        };
        Ok(servers)
    }

    /// Rounds of the main loads at 50 connections; the big database's lookups also against the
    /// 100-account lookups of the same rounds.
    fn rounds(&mut self, servers: &mut Servers) -> Result<(Main, Row)> {
        let Scripts {
            accounts,
            big,
            health,
            ready,
        } = &self.scripts;
        let loads: [(Pick, PathBuf); 5] = [
            (|s| &mut s.yardstick, accounts.clone()),
            (|s| &mut s.base, accounts.clone()),
            (|s| &mut s.base, health.clone()),
            (|s| &mut s.base, ready.clone()),
            (|s| &mut s.scale, big.clone()),
        ];
        let mut samples: [Vec<Sample>; 5] = Default::default();
        for round in 0..=self.plan.rounds {
            println!(
                "bench: round {round}/{} at 50 connections",
                self.plan.rounds
            );
            for ((server, script), samples) in loads.iter().zip(&mut samples) {
                let sample = self.sample(server(servers), script, self.plan.connections)?;
                samples.extend((round > 0).then_some(sample));
            }
        }
        let [yardstick, accounts, health, ready, big] = &samples;
        let against = |samples: &[Sample]| Row::of(samples, Some(yardstick));
        let main = Main {
            yardstick: Row::of(yardstick, None),
            accounts: against(accounts),
            health: against(health),
            ready: against(ready),
            big: against(big),
        };
        Ok((main, Row::of(big, Some(accounts))))
    }

    /// The probe against the idle service, interleaved with the floor.
    fn probe_cost(&mut self, servers: &Servers) -> Result<ProbeCost> {
        println!(
            "bench: probe cost ({} interleaved pairs)",
            self.plan.probe_runs
        );
        let port = servers.base.addr.port();
        let cost = probe::cost(&self.bin.probe, &self.bin.floor, port, self.plan.probe_runs)?;
        let what =
            "probe cost (interleaved with target/bench/empty), and every 20 ms under saturation";
        self.record(format!(
            "taskset -c {} healthchecker -port=PORT   # {what}",
            self.cpus.1
        ));
        Ok(cost)
    }

    /// `/accounts/{id}` against the yardstick at each connection count.
    fn curve(&mut self, servers: &mut Servers) -> Result<Vec<CurvePoint>> {
        let script = self.scripts.accounts.clone();
        let mut curve = Vec::new();
        for connections in CONNECTION_COUNTS {
            let (mut yardstick, mut accounts) = (Vec::new(), Vec::new());
            for round in 1..=self.plan.rounds {
                println!(
                    "bench: {connections} connections, round {round}/{}",
                    self.plan.rounds
                );
                yardstick.push(self.sample(&mut servers.yardstick, &script, connections)?);
                accounts.push(self.sample(&mut servers.base, &script, connections)?);
            }
            let accounts = Row::of(&accounts, Some(&yardstick));
            let yardstick = Row::of(&yardstick, None);
            curve.push(CurvePoint {
                connections,
                yardstick,
                accounts,
            });
        }
        Ok(curve)
    }

    /// Saturates `server`'s `/accounts`, and meanwhile asks `/health` at `health_at` (this
    /// server's address, or another port of it) from a separate keep-alive client and runs the
    /// healthchecker against that port over and over.
    fn saturate(&mut self, server: &mut Server, health_at: SocketAddr) -> Result<Saturation> {
        let (seconds, cpu) = (self.plan.saturation_seconds, self.cpus.1);
        let scripts = (self.scripts.accounts.clone(), self.scripts.health.clone());
        let connections = self.plan.saturating;
        let load = wrk::Run {
            addr: server.addr,
            script: &scripts.0,
            connections,
            seconds,
            cpu,
        };
        let seconds = seconds - 2 * RAMP.as_secs();
        let client = wrk::Run {
            addr: health_at,
            script: &scripts.1,
            connections: 1,
            seconds,
            cpu,
        };
        self.record(load.display());
        self.record(client.display());
        server.ensure_alive()?;
        let load = load.spawn()?;
        thread::sleep(RAMP);
        let mut client = client.spawn()?;
        // The smoke run fails on errors, never on speed: its probes may take their time on a
        // busy CI machine, while the full run keeps Docker's view (the probe's own timeout).
        let args = probe::args(health_at.port(), self.plan.smoke.then_some("10s"));
        let probes = probe::repeat_until(&self.bin.probe, &args, || client.finished());
        let (health, load) = (client.wait(), load.wait());
        server.ensure_alive()?;
        let (probes, probe_failures) = probes?;
        let (load, health) = (load?, health.context("the /health client")?);
        let name = &server.name;
        self.problem(&load, &format!("saturating {name}"));
        self.problem(&health, &format!("/health while saturating {name}"));
        if probe_failures > 0 {
            let failed = format!("{probe_failures} probes did not report healthy");
            self.problems.push(format!("saturating {name}: {failed}"));
        }
        Ok(Saturation {
            load,
            health,
            probes,
            probe_failures,
        })
    }

    /// [`Lab::saturate`] on a service started with `--management-port 0` for this phase alone:
    /// its public port (the load) no longer serves `/health/ready`, which the main rounds of the
    /// other instance measure. `/health` and the probe go to the management port.
    fn saturate_management(&mut self) -> Result<Saturation> {
        let mut args = service_args(&self.work.join("accounts-management.db"), BASE_ACCOUNTS);
        args.extend(["--management-port".into(), "0".into()]);
        let name = "service (management port)";
        let mut service = self.start(name, &self.bin.service.clone(), &args)?;
        // The management listener is bound and logged before the public one starts listening.
        let marker = "management endpoints (health, metrics) on ";
        let management = service
            .lines()
            .iter()
            .find_map(|line| server::addr_after(line, marker))
            .with_context(|| format!("{name} did not log `{marker}`\n{}", service.tail(30)))?;
        let saturation = self.saturate(&mut service, management)?;
        service.stop(STOP_GRACE, true)?;
        Ok(saturation)
    }

    /// Instructions per request of the yardstick and the service's endpoints under callgrind,
    /// one server at a time on the server core; `None` in smoke runs or without valgrind.
    fn instructions(&self, body: &str) -> Result<Option<Instructions>> {
        if self.plan.smoke || !callgrind::available() {
            println!("bench: no instruction counts (smoke run, or no valgrind)");
            return Ok(None);
        }
        println!("bench: instructions per request under callgrind");
        let count = |program: &Path, args: &[String], script: &Path| {
            callgrind::per_request(program, args, script, self.cpus, self.plan.seconds.min(5))
        };
        let service = service_args(&self.work.join("callgrind.db"), BASE_ACCOUNTS);
        let scripts = &self.scripts;
        let counts = Instructions {
            yardstick: count(
                &self.bin.yardstick,
                &["0".into(), body.into()],
                &scripts.accounts,
            )?,
            accounts: count(&self.bin.service, &service, &scripts.accounts)?,
            health: count(&self.bin.service, &service, &scripts.health)?,
            ready: count(&self.bin.service, &service, &scripts.ready)?,
        };
        println!("  {counts:?}");
        Ok(Some(counts))
    }

    /// Starts a server on the server core, noting its command line; its first background
    /// health round runs and start-up allocations settle before it is measured.
    fn start(&mut self, name: &str, program: &Path, args: &[String]) -> Result<Server> {
        let server = Server::start(name, self.cpus.0, program, args, START_TIMEOUT)?;
        self.record(server.command_line.clone());
        thread::sleep(SETTLE);
        Ok(server)
    }

    /// Runs wrk against `server` and reads the server's CPU time and its core's busy time around
    /// it. A server that died is reported as such, before wrk's connection errors.
    fn sample(&mut self, server: &mut Server, script: &Path, connections: u32) -> Result<Sample> {
        let (seconds, cpu) = (self.plan.seconds, self.cpus.1);
        let run = wrk::Run {
            addr: server.addr,
            script,
            connections,
            seconds,
            cpu,
        };
        self.record(run.display());
        server.ensure_alive()?;
        let (cpu_before, core_before) = (server.cpu_time()?, CpuTicks::read(self.cpus.0)?);
        let start = Instant::now();
        let outcome = run.run();
        let wall = start.elapsed().as_secs_f64();
        server.ensure_alive()?;
        let cpu = (server.cpu_time()? - cpu_before) / wall;
        let others = (CpuTicks::read(self.cpus.0)?.busy_since(core_before) - cpu).max(0.0);
        let outcome = outcome.with_context(|| format!("load on {}", server.name))?;
        let script = script.file_name().unwrap_or_default().to_string_lossy();
        let what = format!("{}, {script}, {connections} connections", server.name);
        println!("  {what:<56} {:>7.0} req/s, CPU {cpu:.2}", outcome.rate);
        self.problem(&outcome, &what);
        Ok(Sample {
            outcome,
            cpu,
            others,
        })
    }

    /// Notes the errors of a wrk run, if any.
    fn problem(&mut self, outcome: &Outcome, what: &str) {
        if outcome.errors > 0 {
            let (errors, kinds) = (outcome.errors, &outcome.error_kinds);
            self.problems
                .push(format!("{what}: {errors} errors ({kinds})"));
        }
    }

    fn record(&mut self, line: String) {
        if !self.commands.contains(&line) {
            self.commands.push(line);
        }
    }
}

/// The service's flags for a bench instance: loopback, a free port, a fresh database seeded with
/// `accounts`, JSON logs (so the seeding line can be read back). Everything else as shipped.
fn service_args(db_path: &Path, accounts: u64) -> Vec<String> {
    let fixed = "--bind 127.0.0.1 --port 0 --log-format json --seed-accounts".split(' ');
    let mut args: Vec<String> = fixed.map(str::to_owned).collect();
    args.extend([
        accounts.to_string(),
        "--db-path".into(),
        db_path.display().to_string(),
    ]);
    args
}

/// The seeding time in seconds the service logged (`"elapsed"` of its `seeded N fake accounts`
/// line, a `Duration` as `Debug` prints it: `1.5s`, `250ms`, `12.5µs`).
fn seeding_time(lines: &[String]) -> Result<f64> {
    let line = lines
        .iter()
        .find(|line| line.contains("\"seeded "))
        .context("no seeding line")?;
    let entry: serde_json::Value = serde_json::from_str(line)?;
    let elapsed = entry["elapsed"]
        .as_str()
        .with_context(|| format!("no elapsed: {line}"))?;
    let split = elapsed.find(|c: char| !(c.is_ascii_digit() || c == '.'));
    let (number, unit) = elapsed.split_at(split.unwrap_or(elapsed.len()));
    let scale = match unit {
        "s" => 1.0,
        "ms" => 1e-3,
        "µs" => 1e-6,
        "ns" => 1e-9,
        _ => bail!("unknown unit in {elapsed:?}"),
    };
    Ok(number.parse::<f64>()? * scale)
}

/// GETs account `id` from the service at `addr`: the body, which must come with a 2xx.
fn fetch(addr: SocketAddr, id: u64) -> Result<String> {
    let url = format!("http://{addr}/accounts/{id}");
    let response = reqwest::blocking::get(&url).and_then(|r| r.error_for_status());
    response
        .and_then(|r| r.text())
        .with_context(|| format!("GET {url}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeding(elapsed: &str) -> Result<f64> {
        seeding_time(&[
            r#"{"level":"INFO","message":"starting accountservice"}"#.to_owned(),
            format!(
                r#"{{"message":"seeded 1000000 fake accounts (1000000 inserted, 0 already present)","elapsed":"{elapsed}"}}"#
            ),
        ])
    }

    #[test]
    fn the_seeding_line_of_the_json_log_gives_the_seeding_time() {
        assert!((seeding("4.123456789s").unwrap() - 4.123_456_789).abs() < 1e-12);
        assert!((seeding("250ms").unwrap() - 0.25).abs() < 1e-12);
        assert!((seeding("12.5µs").unwrap() - 12.5e-6).abs() < 1e-15);
        assert!(seeding("12").is_err());
        assert!(seeding("12h").is_err());
        assert!(seeding_time(&["{}".to_owned()]).is_err());
    }
}
