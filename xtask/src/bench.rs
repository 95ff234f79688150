//! `cargo xtask bench`: throughput, latency, probe cost, memory and scale of the release
//! binaries, every figure next to a yardstick measured in the same run, written to
//! `target/bench/results.json` and rendered into `BENCHMARKS.md`. `--smoke` runs the same code,
//! shorter: it fails on errors or a crash, never on speed, and leaves `BENCHMARKS.md` alone.
//!
//! The machine is small and shared, so absolute numbers drift from run to run; ratios taken
//! within one round do not. The servers are pinned to one core and wrk to the other. The
//! figures are typed in `results`, the targets are data there, and the prose is one template
//! (`bench/BENCHMARKS.md.jinja`); [`Lab::measure`] runs the phases in order.

mod callgrind;
mod connections;
mod hold;
mod postgres;
mod probe;
mod report;
mod results;
mod sys;
mod wrk;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use serde::Serialize;
use tempfile::TempDir;
use xshell::{Shell, cmd};

use self::results::{Binaries, CurvePoint, Outcome, Pair, Results, Row, Sample, Saturation};
use self::sys::CpuTicks;
use crate::dist::{self, TARGET};
use crate::project::Project;
use crate::server::{self, Server};

/// Accounts in the service most loads run against (the original's default seed).
const BASE_ACCOUNTS: u64 = 100;
/// The first seeded id (`Person_0` is account `10000`).
const FIRST_ID: u64 = 10_000;
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

/// The wrk scripts in the work directory. The yardstick gets the 100-account one: it ignores the
/// path, so wrk does the same work for both.
const ACCOUNTS: &str = "accounts-100.lua";
const BIG: &str = "accounts-scale.lua";
const HEALTH: &str = "health.lua";
const READY: &str = "health-ready.lua";

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
    /// Measure only the bytes per idle and per busy connection (printed; BENCHMARKS.md is left
    /// alone).
    #[arg(long)]
    connections_only: bool,
}

/// What a run does, from the options; part of the results. `seconds` is the length of each
/// wrk run; `connections` those of the main rounds (and of the peak-RSS target); `saturating`
/// connections load `/accounts` for `saturation_seconds` while `/health` is measured; 9,999
/// held connections and the `/health` client make 10,000, the service's default cap.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Plan {
    pub smoke: bool,
    pub seconds: u64,
    pub rounds: usize,
    pub connections: u32,
    pub scale_accounts: u64,
    pub probe_runs: usize,
    pub saturating: u32,
    pub saturation_seconds: u64,
    pub held_connections: usize,
    pub busy_connections: usize,
}

impl Plan {
    fn new(options: &Options) -> Self {
        // Many short rounds beat few long ones on a shared machine: a burst of someone else's
        // work spoils one sample of each load, not the median.
        let (full, rounds) = (!options.smoke, options.rounds.map(|r| r as usize));
        let seconds = options.duration.unwrap_or(if full { 6 } else { 2 });
        Self {
            smoke: options.smoke,
            seconds,
            rounds: rounds.unwrap_or(if full { 5 } else { 1 }),
            connections: 50,
            scale_accounts: if full { 1_000_000 } else { 10_000 },
            probe_runs: if full { 2000 } else { 30 },
            saturating: 1000,
            saturation_seconds: seconds + 5,
            held_connections: if full { 9_999 } else { 1_000 },
            busy_connections: if full { 1_000 } else { 200 },
        }
    }
}

/// Runs the bench.
pub fn run(sh: &Shell, project: &Project, options: &Options) -> Result<()> {
    let started = Instant::now();
    let lab = Lab::prepare(sh, project, Plan::new(options), options.no_build)?;
    if options.connections_only {
        let cost = lab.connections_only()?;
        println!("{}", serde_json::to_string_pretty(&cost)?);
        return Ok(());
    }
    let mut r = lab.measure()?;
    r.total = started.elapsed().as_secs_f64();
    r.finish();
    let json = project.target_dir.join("bench/results.json");
    std::fs::write(&json, serde_json::to_string_pretty(&r)?)?;
    let path = project.root.join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let markdown = report::render(&r, report::notes(&old))?;
    println!("{markdown}\nbench: wrote {}", json.display());
    if r.plan.smoke {
        println!("bench --smoke: BENCHMARKS.md left alone (smoke figures are not benchmarks)");
    } else {
        std::fs::write(&path, &markdown).with_context(|| format!("writing {}", path.display()))?;
    }
    let problems = r.problems.join("\n  ");
    ensure!(problems.is_empty(), "the bench saw errors:\n  {problems}");
    Ok(())
}

/// A run: the results so far (with the command lines run and the problems seen), the binaries,
/// the servers' CPU and the load's, and the work directory.
struct Lab {
    r: Results,
    bin: Binaries<PathBuf>,
    cpus: (u32, u32),
    work: TempDir,
}

/// The servers measured side by side, named by their index: the yardstick, the service with 100
/// accounts, the same with `--management-port`, and the service with the big database.
type Servers = [Server; 4];
const YARDSTICK: usize = 0;
const BASE: usize = 1;
const MANAGEMENT: usize = 2;
const SCALE: usize = 3;

impl Lab {
    /// Builds the binaries (the yardstick exactly like the service, so the two differ only in
    /// what they do per request), installs wrk, reads the machine, pins xtask to the load CPU
    /// and writes the wrk scripts.
    fn prepare(sh: &Shell, project: &Project, plan: Plan, no_build: bool) -> Result<Self> {
        if !no_build {
            dist::run(sh, project)?;
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let build = cmd!(sh, "{cargo} build -p yardstick --release --target {TARGET}");
            let flags = "-C target-feature=+crt-static";
            build.env("RUSTFLAGS", flags).run()?;
        }
        let (dist, bench) = (project.dist_dir(), project.target_dir.join("bench"));
        sh.create_dir(&bench)?;
        let bin = Binaries {
            service: dist.join("accountservice"),
            probe: dist.join("healthchecker"),
            yardstick: project.target_dir.join(TARGET).join("release/yardstick"),
            floor: probe::build_floor(sh, &bench)?,
        };
        for path in [&bin.service, &bin.probe, &bin.yardstick] {
            ensure!(path.is_file(), "{path:?} is missing (build first)");
        }
        let wrk = wrk::ensure_installed(sh)?;
        let files = rlimit::increase_nofile_limit(65_536).context("raising the open-file limit")?;
        ensure!(files >= FILES_NEEDED, "{FILES_NEEDED} open files needed");
        let machine = sys::Machine::read(sh, project, wrk)?;
        // A CPU for the servers and one for the load; every thread of xtask is pinned to the
        // load CPU, so that what it starts unpinned (wrk, the probes, the floor) runs there too.
        // With one CPU, the smoke run shares it (its figures mean nothing anyway).
        let cpus = match sys::allowed_cpus()?[..] {
            [server, load, ..] => (server, load),
            [only] if plan.smoke => (only, only),
            _ => bail!("the bench needs two CPUs (one for the servers, one for wrk)"),
        };
        let (load, pid) = (cpus.1.to_string(), std::process::id().to_string());
        let taskset = cmd!(sh, "taskset -a -p -c {load} {pid}");
        taskset.quiet().ignore_stdout().run()?;
        let work = tempfile::Builder::new().prefix("xtask-bench-").tempdir()?;
        for (name, path, spread) in [
            (ACCOUNTS, "/accounts/", Some((FIRST_ID, BASE_ACCOUNTS))),
            (BIG, "/accounts/", Some((FIRST_ID, plan.scale_accounts))),
            (HEALTH, "/health", None),
            (READY, "/health/ready", None),
        ] {
            std::fs::write(work.path().join(name), wrk::script(path, spread))?;
        }
        let (rounds, seconds, dir) = (plan.rounds, plan.seconds, work.path().display());
        println!("bench: CPUs {cpus:?} (servers, load), {rounds} x {seconds} s, in {dir}");
        let mut r = Results::default();
        (r.plan, r.machine) = (plan, machine);
        Ok(Self { r, bin, cpus, work })
    }

    fn measure(mut self) -> Result<Results> {
        let (mut servers, management_port) = self.start_servers()?;
        self.main_rounds(&mut servers)?;
        self.r.scale.after = servers[SCALE].memory()?;
        self.r.memory.after_50 = memory(&servers)?;

        let (runs, port) = (self.r.plan.probe_runs, servers[BASE].addr.port());
        println!("bench: probe cost ({runs} interleaved pairs)");
        self.r.probe = probe::cost(&self.bin.probe, &self.bin.floor, port, runs)?;
        let load = self.cpus.1;
        let what = "probe cost (interleaved with target/bench/empty), every 20 ms under saturation";
        let line = format!("taskset -c {load} healthchecker -port=PORT   # {what}");
        self.record(line);

        for connections in [10, 100, 1000] {
            let loads = [(YARDSTICK, ACCOUNTS), (BASE, ACCOUNTS)];
            let [yardstick, accounts] = self.rounds(&mut servers, loads, connections, 0)?;
            self.r.curve.push(CurvePoint {
                connections,
                accounts: Row::of(&accounts, Some(&yardstick)),
                yardstick: Row::of(&yardstick, None),
            });
        }
        self.r.memory.after_1000 = memory(&servers)?;

        println!("bench: /health while /accounts is saturated");
        let [yardstick, base, management, _] = &mut servers;
        self.r.saturated.service = self.saturate(base, None)?;
        self.r.saturated.management = self.saturate(management, Some(management_port))?;
        self.r.saturated.yardstick = self.saturate(yardstick, None)?;

        let held = self.r.plan.held_connections;
        println!("bench: {held} idle keep-alive connections, then one more /health");
        self.r.held.service = hold::hold(base, held)?;
        self.r.held.yardstick = hold::hold(yardstick, held)?;
        self.r.connections = self.connection_cost()?;

        let [yardstick, services @ ..] = servers;
        self.r.clean_exit = true;
        for service in services {
            let (name, status) = (service.name.clone(), service.stop(STOP_GRACE, false)?);
            self.r.clean_exit &= status.success();
            let unclean = format!("{name} exited with {status} on SIGTERM");
            self.note(!status.success(), unclean);
        }
        yardstick.stop(STOP_GRACE, false)?;
        self.r.postgres = Some(self.postgres()?);
        self.r.instructions = self.instructions()?;
        let size = |path: &Path| std::fs::metadata(path).map(|file| file.len());
        self.r.sizes = Binaries {
            service: size(&self.bin.service)?,
            probe: size(&self.bin.probe)?,
            yardstick: size(&self.bin.yardstick)?,
            floor: size(&self.bin.floor)?,
        };
        Ok(self.r)
    }

    /// Only [`Lab::connection_cost`].
    fn connections_only(mut self) -> Result<connections::ConnectionCost> {
        self.connection_cost()
    }

    /// Bytes per idle and per busy connection of the service and the yardstick, each measured
    /// on a fresh server in a control group of its own ([`connections`]).
    fn connection_cost(&mut self) -> Result<connections::ConnectionCost> {
        use connections::{Cost, Group, Kind};
        let body = if self.r.body.is_empty() {
            r#"{"id":"10050","name":"Person_50"}"#.to_owned()
        } else {
            self.r.body.clone()
        };
        let mut cost = connections::ConnectionCost::default();
        for (kind, count) in [
            (Kind::Idle, self.r.plan.held_connections),
            (Kind::Busy, self.r.plan.busy_connections),
        ] {
            let mut measured = Vec::new();
            for yardstick in [true, false] {
                let label = format!("{kind:?} connections").to_lowercase();
                let mut server = if yardstick {
                    let args = ["0".to_owned(), body.clone()];
                    self.start(
                        &format!("yardstick ({label})"),
                        &self.bin.yardstick.clone(),
                        &args,
                    )?
                } else {
                    self.start_service(&format!("service ({label})"), BASE_ACCOUNTS, &[])?
                };
                let group = Group::create(&format!(
                    "xtask-bench-{}-{}",
                    std::process::id(),
                    measured.len()
                ));
                if let Some(group) = &group {
                    group.add(server.pid())?;
                }
                let per = connections::measure(&mut server, group.as_ref(), kind, count);
                let (name, status) = (server.name.clone(), server.stop(STOP_GRACE, false)?);
                // The yardstick has no handler: SIGTERM ends it, as at the end of every run.
                self.note(
                    !yardstick && !status.success(),
                    format!("{name} exited with {status} on SIGTERM"),
                );
                let per = per?;
                println!("  {name}: {count} connections, {per:?} bytes each");
                measured.push(per);
                drop(group);
            }
            let figures = Cost::of(count, measured[1], measured[0]);
            match kind {
                Kind::Idle => cost.idle = figures,
                Kind::Busy => cost.busy = figures,
            }
        }
        Ok(cost)
    }

    /// Starts the servers; their start-up times, idle memory and the seeding.
    fn start_servers(&mut self) -> Result<(Servers, SocketAddr)> {
        let base = self.start_service("service (100 accounts)", BASE_ACCOUNTS, &[])?;
        // The yardstick answers the body of a real account from the middle of the seeded range,
        // so both send the same number of bytes.
        let (addr, id) = (base.addr, FIRST_ID + BASE_ACCOUNTS / 2);
        let url = format!("http://{addr}/accounts/{id}");
        let response = reqwest::blocking::get(&url).and_then(|r| r.error_for_status());
        self.r.body = response.and_then(|r| r.text()).context(url)?;
        let args = ["0".to_owned(), self.r.body.clone()];
        let yardstick = self.start("yardstick", &self.bin.yardstick.clone(), &args)?;
        let secs = |server: &Server| server.startup.as_secs_f64();
        (self.r.startup.service, self.r.startup.yardstick) = (secs(&base), secs(&yardstick));

        let flags = ["--management-port", "0"];
        let management = self.start_service("service (management port)", BASE_ACCOUNTS, &flags)?;
        // The management listener is bound and logged before the public one starts listening.
        let marker = "management endpoints (health, metrics) on ";
        let mut lines = management.lines().into_iter();
        let found = lines.find_map(|line| server::addr_after(&line, marker));
        let management_port = found.context("no management port logged")?;

        let accounts = self.r.plan.scale_accounts;
        println!("bench: seeding {accounts} accounts");
        let scale = self.start_service("service (big database)", accounts, &[])?;
        let servers = [yardstick, base, management, scale];
        self.r.memory.idle = memory(&servers)?;
        let (s, scale) = (&mut self.r.scale, &servers[SCALE]);
        (s.accounts, s.seeding) = (accounts, seeding_time(&scale.lines())?);
        (s.startup, s.idle) = (secs(scale), scale.memory()?);
        s.file_size = std::fs::metadata(database(self.work.path(), &scale.name))?.len();
        Ok((servers, management_port))
    }

    /// The rounds of [`Results::main`]; the management port's and the big database's lookups
    /// also against the 100-account lookups of the same rounds.
    fn main_rounds(&mut self, servers: &mut Servers) -> Result<()> {
        let loads = [
            (YARDSTICK, ACCOUNTS),
            (BASE, ACCOUNTS),
            (MANAGEMENT, ACCOUNTS),
            (BASE, HEALTH),
            (BASE, READY),
            (SCALE, BIG),
        ];
        let connections = self.r.plan.connections;
        let [yardstick, accounts, management, health, ready, big] =
            &self.rounds(servers, loads, connections, 1)?;
        let against = |samples: &[Sample]| Row::of(samples, Some(yardstick));
        let main = &mut self.r.main;
        (main.yardstick, main.accounts) = (Row::of(yardstick, None), against(accounts));
        (main.health, main.ready) = (against(health), against(ready));
        (main.management, main.big) = (against(management), against(big));
        self.r.management_port = Row::of(management, Some(accounts));
        self.r.scale.lookups = Row::of(big, Some(accounts));
        Ok(())
    }

    /// Runs every load once a round, back to back, `warm_up` uncounted rounds first; each load's
    /// samples. Every other round runs in reverse order, so that of two neighbouring loads each
    /// goes first half the time, and a machine drifting within a round weighs on both alike.
    fn rounds<const N: usize>(
        &mut self,
        servers: &mut Servers,
        loads: [(usize, &str); N],
        connections: u32,
        warm_up: usize,
    ) -> Result<[Vec<Sample>; N]> {
        let (mut samples, rounds) = (std::array::from_fn(|_| Vec::new()), self.r.plan.rounds);
        for round in 0..warm_up + rounds {
            let n = (round + 1).saturating_sub(warm_up);
            println!("bench: {connections} connections, round {n}/{rounds} (0: warm-up)");
            for i in 0..N {
                let index = if round % 2 == 1 { N - 1 - i } else { i };
                let (server, script) = loads[index];
                let sample = self.sample(&mut servers[server], script, connections)?;
                samples[index].extend((n > 0).then_some(sample));
            }
        }
        Ok(samples)
    }

    /// Saturates `server`'s `/accounts`, and meanwhile asks `/health` at `at` (another port of
    /// the server; by default the one saturated) from a separate keep-alive client and runs the
    /// healthchecker against that port over and over.
    fn saturate(&mut self, server: &mut Server, at: Option<SocketAddr>) -> Result<Saturation> {
        let (seconds, at) = (self.r.plan.saturation_seconds, at.unwrap_or(server.addr));
        let load = self.wrk(server.addr, ACCOUNTS, self.r.plan.saturating, seconds);
        let client = self.wrk(at, HEALTH, 1, seconds - 2 * RAMP.as_secs());
        server.ensure_alive()?;
        let load = wrk::spawn(load)?;
        thread::sleep(RAMP);
        let mut client = wrk::spawn(client)?;
        let mut probe = Command::new(&self.bin.probe);
        probe.arg(format!("-port={}", at.port()));
        // The smoke run fails on errors, never on speed: its probes may take their time on a
        // busy CI machine, while the full run keeps Docker's view (the probe's own timeout).
        probe.args(self.r.plan.smoke.then_some("-timeout=10s"));
        let probes = probe::repeat(&mut probe, || client.finished());
        let (health, load) = (client.wait(), load.wait());
        server.ensure_alive()?;
        let ((probes, probe_failures), load) = (probes?, load?);
        let health = health.context("the /health client")?;
        let name = &server.name;
        self.problem(&load, &format!("saturating {name}"));
        self.problem(&health, &format!("/health while saturating {name}"));
        let failed = format!("saturating {name}: {probe_failures} probes did not report healthy");
        self.note(probe_failures > 0, failed);
        Ok(Saturation {
            load,
            health,
            probes,
            probe_failures,
        })
    }

    /// Starts a server on the server core, noting its command line; its first background
    /// health round runs and start-up allocations settle before it is measured.
    fn start(&mut self, name: &str, program: &Path, args: &[String]) -> Result<Server> {
        let server = Server::start(name, self.cpus.0, program, args, START_TIMEOUT)?;
        self.record(server.command_line.clone());
        thread::sleep(SETTLE);
        Ok(server)
    }

    fn start_service(&mut self, name: &str, accounts: u64, flags: &[&str]) -> Result<Server> {
        let args = self.service_args(name, accounts, flags);
        self.start(name, &self.bin.service.clone(), &args)
    }

    /// The service's flags: loopback, a free port, a fresh database for `name` seeded with
    /// `accounts`, JSON logs (to read the seeding line back), then `flags`; else as shipped.
    fn service_args(&self, name: &str, accounts: u64, flags: &[&str]) -> Vec<String> {
        let fixed = "--bind 127.0.0.1 --port 0 --log-format json --seed-accounts".split(' ');
        let db = database(self.work.path(), name).display().to_string();
        let args = [accounts.to_string(), "--db-path".into(), db];
        let flags = flags.iter().map(|&flag| flag.to_owned());
        fixed.map(str::to_owned).chain(args).chain(flags).collect()
    }

    /// wrk running `script`, its command line noted: one thread (it has one core) pinned to the
    /// load core, `connections` for whole `seconds`, a 5 s request timeout.
    fn wrk(&mut self, addr: SocketAddr, script: &str, connections: u32, seconds: u64) -> Command {
        let (cpu, connections) = (self.cpus.1.to_string(), format!("-c{connections}"));
        let mut command = Command::new("taskset");
        command.args(["-c", &cpu, "wrk", "-t1", &connections]);
        command.arg(format!("-d{}s", seconds.max(1)));
        let script = self.work.path().join(script);
        command.args(["--timeout", "5s", "-s"]).arg(script);
        command.arg(format!("http://{addr}/"));
        self.record(server::command_line(&command));
        command
    }

    /// Runs wrk against `server` and reads the server's CPU time and its core's busy time around
    /// it. A server that died is reported as such, before wrk's connection errors.
    fn sample(&mut self, server: &mut Server, script: &str, connections: u32) -> Result<Sample> {
        let run = self.wrk(server.addr, script, connections, self.r.plan.seconds);
        server.ensure_alive()?;
        let (cpu_before, core_before) = (server.cpu_time()?, CpuTicks::read(self.cpus.0)?);
        let start = Instant::now();
        let outcome = wrk::spawn(run).and_then(wrk::Running::wait);
        let wall = start.elapsed().as_secs_f64();
        server.ensure_alive()?;
        let cpu = (server.cpu_time()? - cpu_before) / wall;
        let others = (CpuTicks::read(self.cpus.0)?.busy_since(core_before) - cpu).max(0.0);
        let outcome = outcome.with_context(|| format!("load on {}", server.name))?;
        let what = format!("{}, {script}, {connections} connections", server.name);
        println!("  {what:<64} {:>7.0} req/s, CPU {cpu:.2}", outcome.rate);
        self.problem(&outcome, &what);
        Ok(Sample {
            outcome,
            cpu,
            others,
        })
    }

    fn problem(&mut self, outcome: &Outcome, what: &str) {
        let (errors, kinds) = (outcome.errors, &outcome.error_kinds);
        self.note(errors > 0, format!("{what}: {errors} errors ({kinds})"));
    }

    fn note(&mut self, seen: bool, problem: String) {
        if seen {
            self.r.problems.push(problem);
        }
    }

    /// Notes a command line, the work directory shown as `$BENCH_DIR`.
    fn record(&mut self, line: String) {
        let line = line.replace(&self.work.path().display().to_string(), "$BENCH_DIR");
        if !self.r.commands.contains(&line) {
            self.r.commands.push(line);
        }
    }
}

/// The memory of the service with 100 accounts and of the yardstick.
fn memory(servers: &Servers) -> Result<Pair<sys::Memory>> {
    let (service, yardstick) = (servers[BASE].memory()?, servers[YARDSTICK].memory()?);
    Ok(Pair { service, yardstick })
}

/// The database file in `work` of the service called `name`: `service (big database)` has
/// `service-big-database.db`.
fn database(work: &Path, name: &str) -> PathBuf {
    work.join(name.replace(['(', ')'], "").replace(' ', "-") + ".db")
}

/// The seeding time in seconds the service logged (`"elapsed"` of its `seeded N fake accounts`
/// line, a `Duration` as `Debug` prints it: `1.5s`, `250ms`, `12.5µs`).
fn seeding_time(lines: &[String]) -> Result<f64> {
    let line = lines.iter().find(|line| line.contains("\"seeded "));
    let entry: serde_json::Value = serde_json::from_str(line.context("no seeding line")?)?;
    let elapsed = entry["elapsed"].as_str().context("no elapsed")?;
    let split = elapsed.find(|c: char| !(c.is_ascii_digit() || c == '.'));
    let (number, unit) = elapsed.split_at(split.unwrap_or(elapsed.len()));
    let units = [("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)];
    let scale = units.iter().find(|known| known.0 == unit);
    Ok(number.parse::<f64>()? * scale.with_context(|| format!("unit of {elapsed:?}"))?.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeding(elapsed: &str) -> Result<f64> {
        let seeded = r#"{"message":"seeded 1000 fake accounts (1000 inserted, 0 already present)""#;
        let start = r#"{"level":"INFO","message":"starting accountservice"}"#.to_owned();
        seeding_time(&[start, format!(r#"{seeded},"elapsed":"{elapsed}"}}"#)])
    }

    #[test]
    fn the_seeding_line_of_the_json_log_gives_the_seeding_time() {
        assert!((seeding("4.123456789s").unwrap() - 4.123_456_789).abs() < 1e-12);
        assert!((seeding("250ms").unwrap() - 0.25).abs() < 1e-12);
        assert!((seeding("12.5µs").unwrap() - 12.5e-6).abs() < 1e-15);
        assert!(seeding("12").is_err() && seeding("12h").is_err());
        assert!(seeding_time(&["{}".to_owned()]).is_err());
    }

    #[test]
    fn wrk_runs_one_thread_on_the_load_core_and_its_line_is_noted() {
        let (r, bin, cpus) = (Results::default(), Binaries::default(), (0, 1));
        let mut lab = Lab {
            r,
            bin,
            cpus,
            work: tempfile::tempdir().unwrap(),
        };
        lab.wrk("127.0.0.1:4000".parse().unwrap(), "a.lua", 50, 10);
        let expected = "taskset -c 1 wrk -t1 -c50 -d10s --timeout 5s -s $BENCH_DIR/a.lua";
        assert_eq!(
            lab.r.commands,
            [format!("{expected} http://127.0.0.1:4000/")]
        );
    }

    #[test]
    fn each_service_gets_a_database_file_named_after_it() {
        let path = database(Path::new("/w"), "service (big database)");
        assert_eq!(path, Path::new("/w/service-big-database.db"));
    }
}
