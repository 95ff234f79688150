//! `cargo xtask bench`: throughput, latency, probe cost, memory and scale of the release
//! binaries, every figure next to a yardstick measured in the same run, written to
//! `BENCHMARKS.md`. `--smoke` is the short CI variant: it fails on errors or a crash, never on
//! speed, and writes nothing.
//!
//! The machine is small and shared (two cores, other jobs running), so absolute numbers drift from
//! run to run; ratios taken within one round do not. The servers are pinned to one core and wrk to
//! the other; each round runs every load once, back to back, and the report gives medians over
//! rounds of per-round figures and ratios.
//!
//! Order of a run: build; start the service (100 accounts), the yardstick (answering the body of a
//! real account) and a second service seeded with 1,000,000 accounts; warm-up; rounds at 50
//! connections (yardstick, `/accounts/{id}`, `/health`, `/health/ready`, the big database);
//! probe cost; 10/100/1000 connections; `/health` under saturation; SIGTERM and clean exit; then
//! (not with `--smoke`) instructions per request under callgrind, the figure the machine's noise
//! does not move.

mod callgrind;
mod hold;
mod probe;
mod procfs;
mod report;
mod service;
mod stats;
mod wrk;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use xshell::{Shell, cmd};

use self::report::{Instructions, Results, Row, Saturation, Scale};
use self::wrk::Paths;
use crate::dist::{self, TARGET};
use crate::project::Project;
use crate::server::Server;

/// Accounts in the service most loads run against (the original's default seed).
const BASE_ACCOUNTS: u64 = 100;
/// Connections of the main rounds (and of the peak-RSS target).
const CONNECTIONS: u32 = 50;
/// The connection-count curve.
const CONNECTION_COUNTS: [u32; 3] = [10, 100, 1000];
/// Connections that saturate the service while `/health` is measured.
const SATURATING: u32 = 1000;
/// Open files each process needs for the held connections, with room to spare.
const FILES_NEEDED: u64 = 11_000;
/// Pause after a server starts before its idle memory is read: the first background health
/// round runs and start-up allocations settle.
const SETTLE: Duration = Duration::from_millis(1500);
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

/// What a run does, from the options.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The CI variant.
    pub smoke: bool,
    /// Length of each measured run.
    pub duration: Duration,
    /// Length of each warm-up run (not recorded).
    pub warmup: Duration,
    /// Rounds.
    pub rounds: usize,
    /// Accounts of the big database.
    pub scale_accounts: u64,
    /// Probe/floor pairs timed.
    pub probe_runs: usize,
    /// Length of the saturating load.
    pub saturation: Duration,
    /// Idle keep-alive connections held open at once while memory and `/health` are measured
    /// (with the `/health` client, 10,000 in the full run: the service's default cap).
    pub held_connections: usize,
}

impl Plan {
    fn new(options: &Options) -> Self {
        // Many short rounds beat few long ones on a shared machine: a burst of someone else's
        // work spoils one sample of each load, not the median.
        let (duration, rounds) = if options.smoke { (2, 1) } else { (6, 5) };
        let duration = Duration::from_secs(options.duration.unwrap_or(duration));
        Self {
            smoke: options.smoke,
            duration,
            warmup: if options.smoke {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(3)
            },
            rounds: options.rounds.map_or(rounds, |r| r as usize),
            scale_accounts: if options.smoke { 10_000 } else { 1_000_000 },
            probe_runs: if options.smoke { 30 } else { 2000 },
            saturation: (duration + Duration::from_secs(5)).max(Duration::from_secs(5)),
            held_connections: if options.smoke { 1_000 } else { 9_999 },
        }
    }
}

/// Runs the bench.
pub fn run(sh: &Shell, project: &Project, options: &Options) -> Result<()> {
    let plan = Plan::new(options);
    let started = Instant::now();
    let binaries = Binaries::prepare(sh, project, options.no_build)?;
    let wrk_version = wrk::ensure_installed()?;
    procfs::ensure_file_limit(FILES_NEEDED)?;
    let cpus = Cpus::choose(plan.smoke)?;
    let machine = report::Machine::read(sh, project, &wrk_version)?;
    cpus.pin_self()?;
    let work = WorkDir::create()?;
    println!(
        "bench: servers on CPU {}, wrk and probes on CPU {}, {} round(s) of {:?}, work dir {}",
        cpus.server,
        cpus.load,
        plan.rounds,
        plan.duration,
        work.path().display()
    );

    let mut results = measure(&plan, &binaries, cpus, &work)?;
    results.machine = Some(machine);
    results.total = started.elapsed();
    let problems = results.problems();
    let markdown = report::render(&results, work.path(), existing_notes(project).as_deref());
    if plan.smoke {
        println!("{markdown}");
        println!("bench --smoke: BENCHMARKS.md left alone (smoke figures are not benchmarks)");
    } else {
        let path = project.root.join("BENCHMARKS.md");
        std::fs::write(&path, &markdown).with_context(|| format!("writing {}", path.display()))?;
        println!("{markdown}");
        println!("bench: wrote {}", path.display());
    }
    println!("bench: took {:.0?}", results.total);
    if !problems.is_empty() {
        bail!("the bench saw errors:\n  {}", problems.join("\n  "));
    }
    Ok(())
}

/// The hand-written notes of the current `BENCHMARKS.md`, carried over into the new one.
fn existing_notes(project: &Project) -> Option<String> {
    let text = std::fs::read_to_string(project.root.join("BENCHMARKS.md")).ok()?;
    report::notes(&text).map(str::to_owned)
}

/// The binaries under test and the floor, and their sizes.
#[derive(Debug)]
pub struct Binaries {
    /// `target/dist/accountservice`.
    pub service: PathBuf,
    /// `target/dist/healthchecker`.
    pub probe: PathBuf,
    /// The yardstick, built like the service (release, static).
    pub yardstick: PathBuf,
    /// `fn main() {}` built like the probe.
    pub floor: PathBuf,
    /// The build commands, for the report.
    pub commands: Vec<String>,
}

impl Binaries {
    fn prepare(sh: &Shell, project: &Project, no_build: bool) -> Result<Self> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        if !no_build {
            dist::run(sh, project)?;
            // Built exactly like the service (static, release profile) so the two differ only
            // in what they do per request.
            cmd!(
                sh,
                "{cargo} build --package yardstick --bin yardstick --release --target {TARGET}"
            )
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .run()
            .context("building the yardstick")?;
        }
        let bench_dir = project.target_dir.join("bench");
        sh.create_dir(&bench_dir)?;
        let binaries = Self {
            service: project.dist_dir().join("accountservice"),
            probe: project.dist_dir().join("healthchecker"),
            yardstick: project.target_dir.join(TARGET).join("release/yardstick"),
            floor: probe::build_floor(&bench_dir)?,
            commands: vec![
                "cargo xtask dist   # target/dist/{accountservice,healthchecker}, static"
                    .to_owned(),
                format!(
                    "RUSTFLAGS='-C target-feature=+crt-static' cargo build -p yardstick --release \
                     --target {TARGET}"
                ),
                format!(
                    "rustc --edition 2024 --target {TARGET} -C opt-level=z -C panic=abort \
                     -C lto=fat -C codegen-units=1 -C strip=symbols -C target-feature=+crt-static \
                     -o target/bench/empty target/bench/empty.rs   # fn main() {{}}"
                ),
            ],
        };
        for path in [
            &binaries.service,
            &binaries.probe,
            &binaries.yardstick,
            &binaries.floor,
        ] {
            ensure!(
                path.is_file(),
                "{} is missing (run without --no-build)",
                path.display()
            );
        }
        Ok(binaries)
    }

    fn sizes(&self) -> Result<Vec<(String, u64)>> {
        [
            ("accountservice", &self.service),
            ("healthchecker", &self.probe),
            ("yardstick", &self.yardstick),
            ("empty static program (floor)", &self.floor),
        ]
        .into_iter()
        .map(|(name, path)| {
            let size = std::fs::metadata(path)
                .with_context(|| format!("reading the size of {}", path.display()))?
                .len();
            Ok((name.to_owned(), size))
        })
        .collect()
    }
}

/// Which CPU the servers get and which the load generator (and xtask itself) gets.
#[derive(Debug, Clone, Copy)]
pub struct Cpus {
    /// For the servers.
    pub server: u32,
    /// For wrk, the probes and xtask.
    pub load: u32,
}

impl Cpus {
    /// The first two CPUs this process may use; with only one, the smoke run shares it (its
    /// figures mean nothing anyway) and the full run refuses.
    fn choose(smoke: bool) -> Result<Self> {
        let cpus = procfs::allowed_cpus()?;
        match cpus[..] {
            [server, load, ..] => Ok(Self { server, load }),
            [only] if smoke => {
                println!("bench: only CPU {only} is available: servers and load share it");
                Ok(Self {
                    server: only,
                    load: only,
                })
            }
            _ => bail!(
                "the bench needs two CPUs (one for the servers, one for wrk); this process may \
                 use {cpus:?}"
            ),
        }
    }

    /// Pins every thread of xtask to the load CPU, so that what it starts unpinned (the probes,
    /// the floor) runs there too; the servers are started with their own `taskset`.
    fn pin_self(self) -> Result<()> {
        let status = Command::new("taskset")
            .args(["-a", "-p", "-c", &self.load.to_string()])
            .arg(std::process::id().to_string())
            .stdout(Stdio::null())
            .status()
            .context("running taskset (util-linux) to pin xtask")?;
        ensure!(status.success(), "taskset -a -p failed: {status}");
        Ok(())
    }
}

/// A fresh temporary directory for the databases and scripts, removed at the end.
#[derive(Debug)]
struct WorkDir {
    dir: tempfile::TempDir,
}

impl WorkDir {
    fn create() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("xtask-bench-")
            .tempdir()
            .context("creating the bench's temporary directory")?;
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn join(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    fn script(&self, name: &str, paths: &Paths) -> Result<PathBuf> {
        paths.write_script(&self.join(name))
    }
}

/// One measured wrk run and how busy the server was meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// What wrk saw.
    pub outcome: wrk::Outcome,
    /// Server CPU time over wall time (1.0 = one core fully busy).
    pub cpu: f64,
    /// The share of the server's core that went to anything else meanwhile (other jobs on the
    /// machine, the hypervisor): what makes requests/s drift on a shared machine.
    pub others: f64,
}

impl Sample {
    /// Requests per second of server CPU time.
    pub fn per_cpu(&self) -> f64 {
        self.outcome.rate() / self.cpu.max(f64::EPSILON)
    }
}

/// Everything measured with the servers running.
struct Lab<'a> {
    cpus: Cpus,
    binaries: &'a Binaries,
    /// Every distinct wrk command line run, in order.
    commands: Vec<String>,
}

impl Lab<'_> {
    /// Runs wrk against `server` and reads the server's CPU time around it; with `record`, the
    /// command line goes into the report. A server that died is reported as such, before wrk's
    /// connection errors.
    fn sample(
        &mut self,
        server: &mut Server,
        script: &Path,
        connections: u32,
        duration: Duration,
        record: bool,
    ) -> Result<Sample> {
        let run = wrk::Run {
            addr: server.addr,
            script,
            connections,
            duration,
            cpu: self.cpus.load,
        };
        let line = run.display();
        if record && !self.commands.contains(&line) {
            self.commands.push(line);
        }
        server.ensure_alive()?;
        let cpu_before = server.cpu_time()?;
        let core_before = procfs::cpu_ticks(self.cpus.server)?;
        let start = Instant::now();
        let outcome = run.run();
        let wall = start.elapsed();
        server.ensure_alive()?;
        let cpu = server.cpu_time()?.saturating_sub(cpu_before).as_secs_f64() / wall.as_secs_f64();
        let core = procfs::cpu_ticks(self.cpus.server)?.busy_since(core_before);
        let outcome = outcome.with_context(|| format!("load on {}", server.name))?;
        Ok(Sample {
            outcome,
            cpu,
            others: (core - cpu).max(0.0),
        })
    }

    /// Runs one recorded sample of `series` and adds it, printing a one-line summary.
    fn add_sample(
        &mut self,
        server: &mut Server,
        series: &mut Series<'_>,
        connections: u32,
        duration: Duration,
    ) -> Result<()> {
        let sample = self.sample(server, series.script, connections, duration, true)?;
        println!("  {:<40} {}", series.label, report::brief(&sample));
        series.samples.push(sample);
        Ok(())
    }

    /// `/health` from a separate client, and the healthchecker over and over, while `/accounts`
    /// is saturated with 1000 connections.
    fn saturate(
        &mut self,
        server: &mut Server,
        accounts: &Path,
        health: &Path,
        plan: &Plan,
    ) -> Result<Saturation> {
        let load = wrk::Run {
            addr: server.addr,
            script: accounts,
            connections: SATURATING,
            duration: plan.saturation,
            cpu: self.cpus.load,
        };
        let probe_client = wrk::Run {
            addr: server.addr,
            script: health,
            connections: 1,
            duration: plan.saturation.saturating_sub(RAMP * 2),
            cpu: self.cpus.load,
        };
        for run in [&load, &probe_client] {
            let line = run.display();
            if !self.commands.contains(&line) {
                self.commands.push(line);
            }
        }
        server.ensure_alive()?;
        let load = load.spawn()?;
        thread::sleep(RAMP);
        let mut health_client = probe_client.spawn()?;
        // The smoke run fails on errors, never on speed: its probes may take their time on a
        // busy CI machine, while the full run keeps Docker's view (the probe's 2 s default).
        let probe_args = probe::probe_args(server.addr.port(), plan.smoke.then_some("10s"));
        let probes = probe::repeat_until(&self.binaries.probe, &probe_args, || {
            health_client.finished()
        });
        let health = health_client.wait();
        let load = load.wait();
        server.ensure_alive()?;
        let (times, probe_failures) = probes?;
        Ok(Saturation {
            load: load.with_context(|| format!("saturating {}", server.name))?,
            health: health.with_context(|| format!("/health on saturated {}", server.name))?,
            probes: stats::Spread::of(times),
            probe_failures,
        })
    }
}

/// A label, the script it runs, and its samples over the rounds.
struct Series<'p> {
    label: String,
    script: &'p Path,
    samples: Vec<Sample>,
}

impl<'p> Series<'p> {
    fn new(label: impl Into<String>, script: &'p Path) -> Self {
        Self {
            label: label.into(),
            script,
            samples: Vec::new(),
        }
    }
}

/// Which server a load goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Yardstick,
    Base,
    Scale,
}

struct Servers {
    yardstick: Server,
    base: Server,
    scale: Server,
}

impl Servers {
    fn get(&mut self, which: Which) -> &mut Server {
        match which {
            Which::Yardstick => &mut self.yardstick,
            Which::Base => &mut self.base,
            Which::Scale => &mut self.scale,
        }
    }
}

fn measure(plan: &Plan, binaries: &Binaries, cpus: Cpus, work: &WorkDir) -> Result<Results> {
    let start_timeout = Duration::from_secs(30);
    let base_db = work.join("accounts-100.db");
    let base = Server::start(
        "service (100 accounts)",
        cpus.server,
        &binaries.service,
        &service::args(&base_db, BASE_ACCOUNTS),
        start_timeout,
    )?;
    thread::sleep(SETTLE);
    let base_idle = base.memory()?;

    // The yardstick answers the body of a real account from the middle of the seeded range, so
    // both send the same number of bytes.
    let sample_id = service::FIRST_ID + BASE_ACCOUNTS / 2;
    let body = fetch(base.addr, &format!("/accounts/{sample_id}"))?;
    let yardstick = Server::start(
        "yardstick",
        cpus.server,
        &binaries.yardstick,
        &["0".to_owned(), body.clone()],
        start_timeout,
    )?;
    thread::sleep(SETTLE);
    let yardstick_idle = yardstick.memory()?;

    println!("bench: seeding {} accounts", plan.scale_accounts);
    let scale_db = work.join("accounts-scale.db");
    let scale = Server::start(
        "service (big database)",
        cpus.server,
        &binaries.service,
        &service::args(&scale_db, plan.scale_accounts),
        Duration::from_secs(600),
    )?;
    let seeding = service::seeding_time(&scale.lines())?;
    let scale_file = std::fs::metadata(&scale_db)
        .with_context(|| format!("reading the size of {}", scale_db.display()))?
        .len();
    thread::sleep(SETTLE);
    let scale_idle = scale.memory()?;
    let startup = [
        ("service (100 accounts)", base.startup),
        ("yardstick", yardstick.startup),
    ];
    let server_commands = vec![
        base.command_line.clone(),
        yardstick.command_line.clone(),
        scale.command_line.clone(),
    ];
    let scale_startup = scale.startup;
    let mut servers = Servers {
        yardstick,
        base,
        scale,
    };

    let spread = |count| Paths::Spread {
        prefix: "/accounts/".into(),
        first: service::FIRST_ID,
        count,
    };
    let accounts_base = work.script("accounts-100.lua", &spread(BASE_ACCOUNTS))?;
    let accounts_scale = work.script("accounts-scale.lua", &spread(plan.scale_accounts))?;
    let health = work.script("health.lua", &Paths::Fixed("/health".into()))?;
    let ready = work.script("health-ready.lua", &Paths::Fixed("/health/ready".into()))?;
    let mut lab = Lab {
        cpus,
        binaries,
        commands: Vec::new(),
    };

    // Rounds at 50 connections. The yardstick gets the accounts script: it ignores the path, so
    // wrk does exactly the same work for both.
    let mut main = [
        (Which::Yardstick, Series::new("yardstick", &accounts_base)),
        (Which::Base, Series::new("/accounts/{id}", &accounts_base)),
        (Which::Base, Series::new("/health", &health)),
        (Which::Base, Series::new("/health/ready", &ready)),
        (
            Which::Scale,
            Series::new(
                format!(
                    "/accounts/{{id}}, {} accounts",
                    report::thousands(plan.scale_accounts)
                ),
                &accounts_scale,
            ),
        ),
    ];
    println!("bench: warm-up");
    for (which, series) in &main {
        lab.sample(
            servers.get(*which),
            series.script,
            CONNECTIONS,
            plan.warmup,
            false,
        )?;
    }
    for round in 1..=plan.rounds {
        println!(
            "bench: round {round}/{} at {CONNECTIONS} connections",
            plan.rounds
        );
        for (which, series) in &mut main {
            lab.add_sample(servers.get(*which), series, CONNECTIONS, plan.duration)?;
        }
    }
    let base_after_50 = servers.base.memory()?;
    let yardstick_after_50 = servers.yardstick.memory()?;
    let scale_after = servers.scale.memory()?;

    println!("bench: probe cost ({} interleaved pairs)", plan.probe_runs);
    let probe_cost = probe::cost(
        &binaries.probe,
        &binaries.floor,
        servers.base.addr.port(),
        plan.probe_runs,
    )?;

    let mut curve = Vec::new();
    for connections in CONNECTION_COUNTS {
        let mut yard = Series::new("yardstick", &accounts_base);
        let mut acc = Series::new("/accounts/{id}", &accounts_base);
        for round in 1..=plan.rounds {
            println!(
                "bench: {connections} connections, round {round}/{}",
                plan.rounds
            );
            for (which, series) in [(Which::Yardstick, &mut yard), (Which::Base, &mut acc)] {
                lab.add_sample(servers.get(which), series, connections, plan.duration)?;
            }
        }
        curve.push((
            connections,
            Row::of(&yard.label, &yard.samples, None),
            Row::of(&acc.label, &acc.samples, Some(&yard.samples)),
        ));
    }
    let base_after_1000 = servers.base.memory()?;
    let yardstick_after_1000 = servers.yardstick.memory()?;

    println!("bench: /health while /accounts is saturated ({SATURATING} connections)");
    let saturated_service = lab.saturate(&mut servers.base, &accounts_base, &health, plan)?;
    let saturated_yardstick =
        lab.saturate(&mut servers.yardstick, &accounts_base, &health, plan)?;

    println!(
        "bench: {} idle keep-alive connections held open, then one more /health",
        plan.held_connections
    );
    let held = [
        hold::hold(&mut servers.base, plan.held_connections)?,
        hold::hold(&mut servers.yardstick, plan.held_connections)?,
    ];
    for (name, held) in ["service", "yardstick"].iter().zip(&held) {
        println!(
            "  {name:<10} opened in {:.0?}, RSS {:.2} MB, /health in {:.2?}",
            held.opening,
            held.memory.rss as f64 / 1e6,
            held.health
        );
    }

    let Servers {
        yardstick,
        base,
        scale,
    } = servers;
    let base_exit = base.stop(STOP_GRACE, true)?;
    scale.stop(STOP_GRACE, true)?;
    yardstick.stop(STOP_GRACE, false)?;

    let instructions = if plan.smoke {
        None
    } else {
        count_instructions(
            plan,
            binaries,
            cpus,
            work,
            &body,
            [&accounts_base, &health, &ready],
        )?
    };

    let yardstick_samples = &main[0].1.samples;
    let endpoints: Vec<Row> = main[..4]
        .iter()
        .map(|(which, series)| {
            let reference = (*which != Which::Yardstick).then_some(&yardstick_samples[..]);
            Row::of(&series.label, &series.samples, reference)
        })
        .collect();
    let big = Row::of(
        &main[4].1.label,
        &main[4].1.samples,
        Some(&main[1].1.samples),
    );
    let mut commands = binaries.commands.clone();
    commands.extend(server_commands);
    commands.extend(lab.commands);
    commands.push(format!(
        "taskset -c {} healthchecker {}   # probe cost (interleaved with target/bench/empty), and every 20 ms under saturation",
        cpus.load,
        probe::probe_args(0, None)[0].replace("=0", "=PORT")
    ));
    Ok(Results {
        plan: plan.clone(),
        machine: None,
        body,
        commands,
        endpoints,
        big_vs_yardstick: Row::of(
            &main[4].1.label,
            &main[4].1.samples,
            Some(yardstick_samples),
        ),
        scale: Scale {
            accounts: plan.scale_accounts,
            seeding,
            startup: scale_startup,
            file_size: scale_file,
            lookups: big,
            idle: scale_idle,
            after: scale_after,
        },
        curve,
        saturated: [saturated_service, saturated_yardstick],
        probe: probe_cost,
        sizes: binaries.sizes()?,
        memory: report::MemoryTable {
            service_idle: base_idle,
            yardstick_idle,
            service_after_50: base_after_50,
            yardstick_after_50,
            service_after_1000: base_after_1000,
            yardstick_after_1000,
        },
        held,
        startup: startup.map(|(name, took)| (name.to_owned(), took)).to_vec(),
        clean_exit: base_exit.success(),
        instructions,
        total: Duration::ZERO,
    })
}

/// Instructions per request of the yardstick and the service's endpoints under callgrind, one
/// server at a time on the server core; `None` (with a message) when valgrind is missing.
fn count_instructions(
    plan: &Plan,
    binaries: &Binaries,
    cpus: Cpus,
    work: &WorkDir,
    body: &str,
    [accounts, health, ready]: [&Path; 3],
) -> Result<Option<Instructions>> {
    if !callgrind::available() {
        println!("bench: valgrind/callgrind_control not found: no instruction counts");
        return Ok(None);
    }
    let out_dir = work.join("callgrind");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    // Under valgrind start-up is some 50 times slower.
    let start_timeout = Duration::from_secs(120);
    let duration = plan.duration.min(Duration::from_secs(5));
    let valgrind = Path::new("valgrind");

    println!("bench: instructions per request under callgrind");
    let mut yardstick = Server::start(
        "yardstick under callgrind",
        cpus.server,
        valgrind,
        &callgrind::wrap(
            &out_dir,
            "yardstick",
            &binaries.yardstick,
            &["0".to_owned(), body.to_owned()],
        ),
        start_timeout,
    )?;
    let mut counting = callgrind::Counting {
        server: &mut yardstick,
        out_dir: out_dir.clone(),
        name: "yardstick".to_owned(),
        cpu: cpus.load,
    };
    let yardstick_count = counting.measure(accounts, duration)?;
    yardstick.stop(STOP_GRACE, false)?;

    let mut service = Server::start(
        "service under callgrind",
        cpus.server,
        valgrind,
        &callgrind::wrap(
            &out_dir,
            "service",
            &binaries.service,
            &service::args(&work.join("callgrind.db"), BASE_ACCOUNTS),
        ),
        start_timeout,
    )?;
    let mut counting = callgrind::Counting {
        server: &mut service,
        out_dir,
        name: "service".to_owned(),
        cpu: cpus.load,
    };
    let counts = Instructions {
        yardstick: yardstick_count,
        accounts: counting.measure(accounts, duration)?,
        health: counting.measure(health, duration)?,
        ready: counting.measure(ready, duration)?,
    };
    service.stop(STOP_GRACE * 2, true)?;
    for (label, count) in counts.rows() {
        println!("  {label:<40} {count:>9.0} instructions/request");
    }
    Ok(Some(counts))
}

/// GETs `path` from `addr` and returns the body, which must come with a 2xx.
fn fetch(addr: std::net::SocketAddr, path: &str) -> Result<String> {
    let url = format!("http://{addr}{path}");
    reqwest::blocking::get(&url)
        .and_then(reqwest::blocking::Response::error_for_status)
        .and_then(reqwest::blocking::Response::text)
        .with_context(|| format!("GET {url}"))
}
