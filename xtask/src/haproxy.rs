//! `cargo xtask haproxy`: the shipped `deploy/haproxy/haproxy.cfg` in front of three real
//! accountservice instances, with Debian's HAProxy (installed with apt when missing).
//!
//! 1. Three instances of the real binary on 127.0.0.1 (ephemeral public and management ports,
//!    one database file each, `--testability`, `--pre-stop-delay`), HAProxy in front with the
//!    shipped configuration, only addresses, check ports and the stats socket substituted: it
//!    sends requests to each public port and checks readiness on each management port.
//! 2. Continuous keep-alive load through HAProxy while each instance in turn gets SIGTERM,
//!    drains, exits 0 and is started again on its port; the next one only once HAProxy has it
//!    UP again. Asserts that not one request failed and that HAProxy marked each instance DOWN
//!    before it stopped accepting.
//! 3. One instance forced unhealthy (its `/testability/healthy/false`, sent to its management
//!    port directly): measured by its own request counter in `/metrics`, it stops receiving
//!    requests within two check intervals, while the others go on serving. Then it recovers.
//!
//! Every wait has a deadline; every process it starts is stopped by its PID when it ends, also
//! when it fails (the guards kill what is left).

mod config;
mod load;
mod stats;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use xshell::{Shell, cmd};

use self::config::{Backend, CheckTiming};
use self::load::Load;
use self::stats::StatsSocket;
use crate::project::Project;
use crate::server::{self, Server};
use crate::wait::{self, Poll};

/// Instances behind HAProxy (the shipped file has as many `server` lines).
const INSTANCES: usize = 3;

/// Keep-alive clients sending requests through HAProxy.
const CLIENTS: usize = 4;

/// How long an instance may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long HAProxy may take to see every instance UP at the start.
const FIRST_UP_TIMEOUT: Duration = Duration::from_secs(20);

/// How often the task looks at HAProxy's state and the instances' counters.
const POLL: Duration = Duration::from_millis(20);

/// The instance forced unhealthy (the middle one).
const UNHEALTHY: usize = 1;

/// Options of `cargo xtask haproxy`.
#[derive(Debug, Args)]
pub struct Options {
    /// Seconds each instance keeps serving after SIGTERM with readiness failing (the
    /// `--pre-stop-delay` the README recommends with the shipped file); 0 shows what happens
    /// without one.
    #[arg(long, default_value_t = 2.0)]
    pre_stop_delay: f64,
    /// Switch HAProxy's retries and redispatches off (`retries 0`, `no option redispatch`,
    /// `retry-on none`), to see whether the drain alone loses nothing. Not what is shipped.
    #[arg(long)]
    no_retries: bool,
}

/// One accountservice instance behind HAProxy.
struct Instance {
    /// The HAProxy server name pointing at it (`app1`...).
    name: String,
    db_path: PathBuf,
    /// The running process; `None` between its exit and its restart.
    process: Option<Server>,
    /// The public address, where HAProxy sends requests.
    addr: SocketAddr,
    /// The management port, where HAProxy's checks, the switches and `/metrics` are.
    management_port: u16,
}

impl Instance {
    fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// Runs the whole task.
pub fn run(sh: &Shell, project: &Project, options: &Options) -> Result<()> {
    let started = Instant::now();
    let version = ensure_haproxy(sh)?;
    println!("haproxy: {version}");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    cmd!(
        sh,
        "{cargo} build --package accountservice --bin accountservice"
    )
    .run()
    .context("building accountservice")?;
    let binary = project.target_dir.join("debug").join("accountservice");
    let pre_stop_delay = Duration::try_from_secs_f64(options.pre_stop_delay)
        .context("--pre-stop-delay must be a non-negative number of seconds")?;
    let dir = tempfile::Builder::new()
        .prefix("accountservice-haproxy-")
        .tempdir()
        .context("creating a temporary directory")?;

    let mut instances = Vec::new();
    for index in 1..=INSTANCES {
        let db_path = dir.path().join(format!("app{index}.db"));
        let (process, management_port) = start_instance(&binary, &db_path, 0, 0, pre_stop_delay)?;
        instances.push(Instance {
            name: String::new(),
            db_path,
            addr: process.addr,
            management_port,
            process: Some(process),
        });
    }

    let shipped_path = project.root.join(config::SHIPPED);
    let shipped = std::fs::read_to_string(&shipped_path)
        .with_context(|| format!("reading {}", shipped_path.display()))?;
    let frontend = free_port()?;
    let socket_path = dir.path().join("admin.sock");
    let root = cmd!(sh, "id -u").quiet().read()?.trim() == "0";
    let backends: Vec<Backend> = instances
        .iter()
        .map(|instance| Backend {
            addr: instance.addr,
            management_port: instance.management_port,
        })
        .collect();
    let config = config::for_test(&shipped, frontend, &backends, &socket_path, root)?;
    for (instance, name) in instances.iter_mut().zip(&config.servers) {
        instance.name.clone_from(name);
    }
    let config_path = dir.path().join("haproxy.cfg");
    let text = if options.no_retries {
        println!("haproxy: retries and redispatches switched OFF for this run (--no-retries)");
        config::without_retries(&config.text)?
    } else {
        config.text.clone()
    };
    std::fs::write(&config_path, text)?;
    cmd!(sh, "haproxy -c -q -f {config_path}")
        .quiet()
        .run()
        .with_context(|| {
            format!(
                "HAProxy refuses the configuration made from {}",
                config::SHIPPED
            )
        })?;
    let timing = config.timing;
    println!(
        "haproxy: {} on {frontend} in front of {}; checks GET /health/ready on the management \
         port (shipped: {}) every {:?} ({:?} while changing state), DOWN after {} failures, UP \
         after {} passes",
        config::SHIPPED,
        instances
            .iter()
            .map(|instance| format!(
                "{} {} (management {})",
                instance.name, instance.addr, instance.management_port
            ))
            .collect::<Vec<_>>()
            .join(", "),
        config.check_port,
        timing.inter,
        timing.fastinter,
        timing.fall,
        timing.rise,
    );
    println!(
        "haproxy: instances run with --pre-stop-delay {pre_stop_delay:?}; HAProxy needs up to \
         {:?} plus one check to mark a draining instance DOWN",
        timing.detection()
    );

    let mut haproxy_command = Command::new("haproxy");
    haproxy_command.arg("-f").arg(&config_path).arg("-db");
    let mut haproxy = Server::spawn_at("haproxy", haproxy_command, frontend)?;
    let socket = StatsSocket::new(&socket_path);
    let backend = config.backend.clone();
    let look_started = Instant::now();
    wait::until(
        "HAProxy to see every instance UP",
        FIRST_UP_TIMEOUT,
        POLL,
        || {
            haproxy.ensure_alive()?;
            let Ok(rows) = socket.rows() else {
                return Ok(Poll::Pending("the stats socket does not answer yet".into()));
            };
            let states: Vec<String> = instances
                .iter()
                .map(|instance| {
                    rows.iter()
                        .find(|row| row.proxy == backend && row.server == instance.name)
                        .map_or("missing".to_owned(), |row| row.status.clone())
                })
                .collect();
            Ok(if states.iter().all(|state| state == "UP") {
                Poll::Ready(())
            } else {
                Poll::Pending(states.join(", "))
            })
        },
    )?;
    println!(
        "haproxy: every instance UP {:.2} s after HAProxy started",
        look_started.elapsed().as_secs_f64()
    );

    let base = format!("http://{frontend}");
    let load = Load::start(&base, CLIENTS)?;
    wait::until(
        "the first requests through HAProxy",
        Duration::from_secs(10),
        POLL,
        || {
            let counts = load.counts();
            Ok(if counts.ok >= 100 {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{counts:?}"))
            })
        },
    )?;
    let warm = load.counts();
    println!(
        "load: {CLIENTS} keep-alive clients through HAProxy, {} ok, {} failed so far",
        warm.ok, warm.failed
    );

    let mut run = Run {
        socket: &socket,
        backend: &config.backend,
        timing,
        pre_stop_delay,
        haproxy: &mut haproxy,
        binary: &binary,
    };
    let mut restart_failed = 0;
    for instance in &mut instances {
        let before = load.counts();
        restart(&mut run, instance)?;
        let during = load.counts().since(before);
        println!(
            "    requests through HAProxy meanwhile: {} ok, {} failed",
            during.ok, during.failed
        );
        restart_failed += during.failed;
    }
    let restarted = load.counts();

    let stopped_after = force_unhealthy(&mut run, &instances, UNHEALTHY)?;
    let unhealthy_phase = load.counts().since(restarted);
    println!(
        "    requests through HAProxy meanwhile: {} ok, {} failed",
        unhealthy_phase.ok, unhealthy_phase.failed
    );

    let backend_row = socket.server(&config.backend, "BACKEND")?;
    let outcome = load.finish()?;
    let total = outcome.counts;
    haproxy.stop(Duration::from_secs(5), false)?;
    for instance in &mut instances {
        if let Some(process) = instance.process.take() {
            process.stop(stop_grace(pre_stop_delay), true)?;
        }
    }
    println!(
        "haproxy: {} requests in all: {} ok, {} failed ({} failed during the restarts); \
         HAProxy retried {} and redispatched {} of them",
        total.ok + total.failed,
        total.ok,
        total.failed,
        restart_failed,
        backend_row.retries,
        backend_row.redispatches
    );
    if !outcome.kinds.is_empty() {
        println!(
            "    failures by kind: {}",
            outcome
                .kinds
                .iter()
                .map(|(kind, count)| format!("{kind}: {count}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for error in &outcome.errors {
        println!("    failed {error}");
    }
    ensure!(
        total.failed == 0,
        "{} request(s) through HAProxy failed (first ones above)",
        total.failed
    );
    println!(
        "haproxy: passed in {:.1} s: 3 rolling restarts with no failed request; a forced-unhealthy \
         instance got its last request {:.0} ms after the switch (bound: {:?})",
        started.elapsed().as_secs_f64(),
        stopped_after.as_secs_f64() * 1e3,
        timing.inter * 2
    );
    Ok(())
}

/// What the phases share.
struct Run<'a> {
    socket: &'a StatsSocket,
    backend: &'a str,
    timing: CheckTiming,
    pre_stop_delay: Duration,
    haproxy: &'a mut Server,
    binary: &'a Path,
}

impl Run<'_> {
    /// HAProxy's status of `server`, failing if HAProxy itself died.
    fn status(&mut self, server: &str) -> Result<stats::Row> {
        self.haproxy.ensure_alive()?;
        self.socket.server(self.backend, server)
    }

    /// Waits until HAProxy has `server` fully UP.
    fn wait_up(&mut self, server: &str, timeout: Duration) -> Result<()> {
        wait::until(
            &format!("HAProxy to mark {server} UP"),
            timeout,
            POLL,
            || {
                let row = self.status(server)?;
                Ok(if row.is_up() {
                    Poll::Ready(())
                } else {
                    Poll::Pending(row.status)
                })
            },
        )
    }
}

/// How long an instance may take to exit after SIGTERM: the pre-stop delay, the service's
/// default shutdown timeout (8 s), and room for the database to close.
fn stop_grace(pre_stop_delay: Duration) -> Duration {
    pre_stop_delay + Duration::from_secs(12)
}

/// SIGTERM to one instance under load; waits for HAProxy to mark it DOWN and for the process
/// to exit 0, starts it again on the same port and waits until HAProxy has it UP.
fn restart(run: &mut Run<'_>, instance: &mut Instance) -> Result<()> {
    let mut process = instance
        .process
        .take()
        .with_context(|| format!("{} is not running", instance.name))?;
    println!(
        "restart {} ({}, pid {}):",
        instance.name,
        instance.addr,
        process.pid()
    );
    let sigterm = Instant::now();
    process.terminate()?;
    let mut marked_down = None;
    let mut exited = None;
    let deadline = stop_grace(run.pre_stop_delay);
    while marked_down.is_none() || exited.is_none() {
        if marked_down.is_none() && run.status(&instance.name)?.is_down() {
            marked_down = Some(sigterm.elapsed());
        }
        if exited.is_none()
            && let Some(status) = process.exit_status()?
        {
            ensure!(
                status.success(),
                "{} did not shut down cleanly on SIGTERM ({status})\n{}",
                instance.name,
                process.tail(20)
            );
            exited = Some(sigterm.elapsed());
        }
        if sigterm.elapsed() > deadline {
            bail!(
                "{} after SIGTERM: HAProxy DOWN {marked_down:?}, exited {exited:?} within {deadline:?}\n{}",
                instance.name,
                process.tail(20)
            );
        }
        std::thread::sleep(POLL);
    }
    let (Some(marked_down), Some(exited)) = (marked_down, exited) else {
        unreachable!("the loop ends only when both are known");
    };
    println!(
        "    SIGTERM -> HAProxy DOWN {:.2} s, process exited 0 {:.2} s",
        marked_down.as_secs_f64(),
        exited.as_secs_f64()
    );
    let (restarted, _) = start_instance(
        run.binary,
        &instance.db_path,
        instance.port(),
        instance.management_port,
        run.pre_stop_delay,
    )?;
    let listening = sigterm.elapsed();
    instance.process = Some(restarted);
    run.wait_up(&instance.name, Duration::from_secs(20))?;
    println!(
        "    started again: listening {:.2} s, HAProxy UP {:.2} s after the SIGTERM",
        listening.as_secs_f64(),
        sigterm.elapsed().as_secs_f64()
    );
    // The instance stops accepting when its pre-stop delay ends: HAProxy must have taken it out
    // of rotation by then, or requests depend on retries.
    if run.pre_stop_delay > Duration::ZERO {
        ensure!(
            marked_down < run.pre_stop_delay,
            "HAProxy marked {} DOWN {marked_down:?} after SIGTERM, not within the pre-stop delay \
             of {:?}",
            instance.name,
            run.pre_stop_delay
        );
    }
    Ok(())
}

/// Forces `instances[target]` unhealthy, measures when it stops getting requests (by its own
/// `/metrics` counter), checks the others keep serving, then makes it healthy again. Returns
/// the time from the switch to its last request.
fn force_unhealthy(run: &mut Run<'_>, instances: &[Instance], target: usize) -> Result<Duration> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()?;
    let name = &instances[target].name;
    let port = instances[target].management_port;
    println!(
        "force {name} unhealthy (GET /testability/healthy/false on its management port {port} \
         directly):"
    );
    let before: Vec<u64> = instances
        .iter()
        .map(|instance| account_requests(&client, instance.management_port))
        .collect::<Result<_>>()?;
    let switched = Instant::now();
    switch(&client, port, "/testability/healthy/false")?;
    let mut last = before[target];
    let mut last_request = Duration::ZERO;
    let mut marked_down = None;
    // Watch until HAProxy has it DOWN and no request has reached it for a whole check interval
    // since, within a bound well past the one asserted.
    let bound = run.timing.inter * 2;
    let watch_until = bound + run.timing.inter * 2;
    loop {
        let now = switched.elapsed();
        let count = account_requests(&client, port)?;
        if count != last {
            last = count;
            last_request = now;
        }
        if marked_down.is_none() && run.status(name)?.is_down() {
            marked_down = Some(now);
        }
        if let Some(down) = marked_down
            && now > down.max(last_request) + run.timing.inter
        {
            break;
        }
        if now > watch_until {
            break;
        }
        std::thread::sleep(POLL);
    }
    let watched = switched.elapsed();
    let after: Vec<u64> = instances
        .iter()
        .map(|instance| account_requests(&client, instance.management_port))
        .collect::<Result<_>>()?;
    println!(
        "    HAProxy DOWN {}; last request reached it {:.0} ms after the switch ({} requests since \
         the switch, watched for {:.2} s); the others served {} meanwhile",
        marked_down.map_or("never".to_owned(), |down| format!(
            "{:.0} ms after the switch",
            down.as_secs_f64() * 1e3
        )),
        last_request.as_secs_f64() * 1e3,
        after[target] - before[target],
        watched.as_secs_f64(),
        instances
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != target)
            .map(|(index, instance)| format!("{} {}", instance.name, after[index] - before[index]))
            .collect::<Vec<_>>()
            .join(", ")
    );
    ensure!(
        marked_down.is_some(),
        "HAProxy never marked {name} DOWN within {watch_until:?}"
    );
    ensure!(
        last_request < bound,
        "{name} still received requests {last_request:?} after it turned unhealthy (bound: two \
         check intervals, {bound:?})"
    );
    for (index, instance) in instances.iter().enumerate() {
        if index != target {
            ensure!(
                after[index] > before[index],
                "{} served no request while {name} was out",
                instance.name
            );
        }
    }
    let recovering = Instant::now();
    switch(&client, port, "/testability/healthy/true")?;
    run.wait_up(name, Duration::from_secs(10))?;
    println!(
        "    healthy again: HAProxy UP {:.2} s after the switch back",
        recovering.elapsed().as_secs_f64()
    );
    Ok(last_request)
}

/// Sends a testability switch to an instance's management port directly; it must answer 200.
fn switch(client: &reqwest::blocking::Client, port: u16, path: &str) -> Result<()> {
    let response = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .with_context(|| format!("GET {path} on port {port}"))?;
    ensure!(
        response.status().is_success(),
        "GET {path} on port {port} answered {}",
        response.status()
    );
    Ok(())
}

/// The instance's count of `/accounts/...` requests answered, from its own `/metrics` (on its
/// management port).
fn account_requests(client: &reqwest::blocking::Client, port: u16) -> Result<u64> {
    let text = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .and_then(reqwest::blocking::Response::text)
        .with_context(|| format!("GET /metrics on port {port}"))?;
    sum_account_requests(&text)
}

/// Sums every `http_requests_total` series of the account route in a metrics exposition.
fn sum_account_requests(exposition: &str) -> Result<u64> {
    let mut total = 0;
    for line in exposition.lines() {
        if line.starts_with("http_requests_total{") && line.contains("route=\"/accounts/") {
            let value = line
                .rsplit(' ')
                .next()
                .and_then(|value| value.parse::<f64>().ok())
                .with_context(|| format!("no value in metrics line {line}"))?;
            // Counters are whole numbers well below 2^53.
            total += value as u64;
        }
    }
    Ok(total)
}

/// Starts one instance on 127.0.0.1:`port` with its management port on `management_port` (0:
/// free ones) and its own database; returns it and its management port.
fn start_instance(
    binary: &Path,
    db_path: &Path,
    port: u16,
    management_port: u16,
    pre_stop_delay: Duration,
) -> Result<(Server, u16)> {
    let mut command = Command::new(binary);
    command
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--management-port", &management_port.to_string()])
        .arg("--db-path")
        .arg(db_path)
        .arg("--pre-stop-delay")
        .arg(pre_stop_delay.as_secs_f64().to_string())
        .arg("--testability");
    let process = Server::spawn("accountservice", command, START_TIMEOUT)?;
    // The management listener is bound and logged before the public one listens.
    let marker = "management endpoints (health, metrics) on ";
    let management = process
        .lines()
        .iter()
        .find_map(|line| server::addr_after(line, marker))
        .with_context(|| {
            format!(
                "the instance did not log its management address\n{}",
                process.tail(20)
            )
        })?;
    Ok((process, management.port()))
}

/// A port nothing listens on right now, for HAProxy's frontend (HAProxy cannot report the port
/// it picked for port 0).
fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

/// Installs Debian's haproxy with apt unless `haproxy` already runs; returns its version line.
fn ensure_haproxy(sh: &Shell) -> Result<String> {
    let version = || {
        cmd!(sh, "haproxy -v")
            .quiet()
            .ignore_stderr()
            .read()
            .map(|text| text.lines().next().unwrap_or_default().to_owned())
    };
    if let Ok(line) = version() {
        return Ok(line);
    }
    println!("haproxy not found: installing Debian's haproxy with apt");
    let _env = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
    cmd!(sh, "apt-get update -qq")
        .run()
        .context("apt-get update")?;
    // Waits for another apt run's lock instead of failing at once.
    cmd!(
        sh,
        "apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=120 haproxy"
    )
    .run()
    .context("installing haproxy with apt-get (as root)")?;
    version().context("haproxy was installed but `haproxy -v` fails")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_requests_of_every_status_are_summed_and_other_routes_ignored() {
        let exposition = "# TYPE http_requests counter\n\
http_requests_total{method=\"GET\",route=\"/accounts/{account_id}\",status=\"200\"} 41\n\
http_requests_total{method=\"GET\",route=\"/accounts/{account_id}\",status=\"404\"} 1\n\
http_requests_total{method=\"GET\",route=\"/health/ready\",status=\"200\"} 9\n\
http_request_duration_seconds_count{method=\"GET\",route=\"/accounts/{account_id}\"} 42\n";
        assert_eq!(sum_account_requests(exposition).unwrap(), 42);
        assert_eq!(sum_account_requests("").unwrap(), 0);
    }
}
