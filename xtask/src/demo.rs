//! `cargo xtask demo`: the original tutorial's story, live on the local Docker Engine, narrated
//! step by step with the real output.
//!
//! Builds the image (as `e2e` does), deploys two replicas with the testability switches on, shows
//! them healthy, flips one unhealthy through `/testability/healthy/false`, and shows what follows:
//! Docker's health check turning it `unhealthy` with the probe's reason, Swarm replacing it (and
//! how long that took), the task history's `unhealthy container` line, and the fleet view that
//! each replica serves, with the status page's URL.
//!
//! The management port (6768: health routes, the fleet view, the switches) is not published: the
//! demo reaches each task on its address on `docker_gwbridge`, the bridge Docker keeps on this host
//! for the tasks of overlay networks, so only this host can flip a switch. The public port 6767
//! is published in `mode=host` on a port of its own per task, and services resolve each other with
//! `--endpoint-mode dnsrr`: without IPVS in the kernel (this machine, CI) the routing mesh and
//! virtual IPs do not work.
//!
//! Everything the demo creates is removed at the end, also when it fails or is interrupted with
//! Ctrl-C, and the engine's Swarm is left as it was (initialised only if inactive, left only if the
//! demo initialised it), unless `--keep` asks to leave the fleet running; the demo then prints how
//! to remove it. Every wait has a deadline and
//! prints what it sees while it waits.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use serde::Deserialize;
use serde_json::Value;
use xshell::{Shell, cmd};

use crate::docker::{self, MANAGEMENT_PORT, SERVICE_PORT, Task, secs};
use crate::e2e::HEALTH_FLAGS;
use crate::e2e::guards::{Swarm, remove_network, remove_service};
use crate::image::{self, LATEST};
use crate::project::Project;
use crate::wait::{self, Poll};

/// The demo's service, and the name its replicas find each other by (`tasks.<service>`).
pub const SERVICE: &str = "accountservice-demo";

/// The demo's overlay network.
pub const NETWORK: &str = "accountservice-demo";

/// The label on the demo's service and containers.
const LABEL: &str = "accountservice.demo=1";

/// Replicas, as in the tutorial.
const REPLICAS: usize = 2;

/// How long Swarm may take to start the replicas or bring the service back to two.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(90);

/// How long the health check may take to see the flip (a probe every second, two failures).
const DETECT_DEADLINE: Duration = Duration::from_secs(30);

/// The bridge Docker creates on this host for the tasks of overlay networks.
const GWBRIDGE: &str = "docker_gwbridge";

/// Options of `cargo xtask demo`.
#[derive(Debug, Args)]
pub struct Options {
    /// Leave the fleet (and the swarm, if the demo initialised it) running at the end, and print
    /// how to remove it.
    #[arg(long)]
    keep: bool,
    /// Use the existing accountservice:latest instead of building the image first.
    #[arg(long)]
    no_build: bool,
}

/// Runs the demo, and cleans up unless `--keep` (a failed run always cleans up).
pub fn run(sh: &Shell, project: &Project, options: &Options) -> Result<()> {
    let started = Instant::now();
    step(0, "the image");
    if options.no_build {
        image::image_size(sh, LATEST)
            .context("--no-build needs an existing accountservice:latest")?;
        println!("using the existing {LATEST}");
    } else {
        image::run(sh, project)?;
    }
    println!("engine: Docker {}", docker::engine_version(sh)?);
    remove_previous(sh)?;

    let swarm_before = docker::swarm_state(sh)?;
    let gwbridge_before = docker::network_exists(sh, GWBRIDGE)?;
    let swarm = Swarm::join(sh)?;
    if swarm.initialised() {
        println!(
            "swarm: this engine was not in a swarm; ran `docker swarm init --advertise-addr 127.0.0.1` (left again at the end)"
        );
    } else {
        println!(
            "swarm: this engine is already a swarm manager; the demo leaves the swarm as it is"
        );
    }
    // Ctrl-C (or SIGTERM, SIGHUP) ends the current wait with an error instead of the process, so
    // the guards below still remove the fleet and leave the swarm as it was.
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&interrupted))
            .context("installing the signal handlers")?;
    }
    let fleet = Fleet::create(sh)?;
    let result = story(sh, &interrupted);
    let total = started.elapsed();

    if options.keep && result.is_ok() {
        let leave = match (swarm.initialised(), gwbridge_before) {
            (false, _) => String::new(),
            (true, true) => " && docker swarm leave --force".to_owned(),
            (true, false) => {
                format!(" && docker swarm leave --force && docker network rm {GWBRIDGE}")
            }
        };
        // Kept on purpose: the guards would remove the fleet and leave the swarm.
        std::mem::forget(fleet);
        std::mem::forget(swarm);
        println!("\n== kept: the fleet runs on (demo took {})", secs(total));
        println!(
            "remove it with: docker service rm {SERVICE} && docker network rm {NETWORK}{leave}"
        );
        return Ok(());
    }

    step(8, "clean up");
    drop(fleet);
    drop(swarm);
    let swarm_after = docker::swarm_state(sh)?;
    result?;
    ensure!(
        swarm_after == swarm_before,
        "the swarm was {swarm_before} before the demo and is {swarm_after} after it"
    );
    ensure!(
        !docker::network_exists(sh, NETWORK)? && left_containers(sh)?.is_empty(),
        "the demo left its network or containers behind"
    );
    println!("removed service {SERVICE} and network {NETWORK}; swarm {swarm_after}, as before");
    println!(
        "\n== the demo took {} (run `cargo xtask demo --keep` to leave the fleet running)",
        secs(started.elapsed())
    );
    Ok(())
}

/// The steps after the deployment was created: healthy, flipped, detected, replaced, recorded,
/// seen by the fleet.
fn story(sh: &Shell, interrupted: &AtomicBool) -> Result<()> {
    let http = Http::new()?;

    step(2, "two replicas turn healthy");
    let created = Instant::now();
    let tasks = watch(
        interrupted,
        "both replicas healthy",
        CONVERGE_DEADLINE,
        || {
            let tasks = docker::service_tasks(sh, SERVICE)?;
            let serving: Vec<Task> = tasks.iter().filter(|t| t.is_serving()).cloned().collect();
            Ok(if serving.len() == REPLICAS {
                Poll::Ready(serving)
            } else {
                Poll::Pending(describe(&tasks))
            })
        },
    )?;
    println!(
        "{REPLICAS}/{REPLICAS} healthy {} after `docker service create`",
        secs(created.elapsed())
    );
    shell(sh, &["docker", "service", "ps", SERVICE])?;
    let mut replicas = Vec::new();
    for task in &tasks {
        let replica = Replica::of(sh, task)?;
        let account = http.get(&format!("{}/accounts/10000", replica.public))?;
        let ready = http.get(&format!("{}/health/ready", replica.management))?;
        println!(
            "replica {}: GET {}/accounts/10000 -> {} {}",
            short(&task.id),
            replica.public,
            account.0,
            account.1
        );
        println!(
            "{:>21} GET {}/health/ready -> {} {}",
            "", replica.management, ready.0, ready.1
        );
        ensure!(ready.0 == 200, "a fresh replica is not ready: {}", ready.1);
        replicas.push(replica);
    }
    let (victim, survivor) = (&replicas[0], &replicas[1]);
    // The view asks the peers only while someone looks: from here on the demo keeps looking, so
    // it sees the flipped replica DOWN before Swarm's DNS stops listing it.
    let fleet_url = format!("{}/health/fleet", survivor.management);
    let view = watch(
        interrupted,
        "the fleet view to list both replicas UP",
        DETECT_DEADLINE,
        || {
            let view = fleet_view(&http, &fleet_url)?;
            Ok(if view["counts"]["UP"] == REPLICAS {
                Poll::Ready(view)
            } else {
                Poll::Pending(format!("counts {}", view["counts"]))
            })
        },
    )?;
    println!("GET {fleet_url}:");
    print_view(&view);

    step(3, "flip one replica unhealthy");
    let refused = http.get(&format!("{}/testability/healthy/false", victim.public))?;
    println!(
        "on the public port, the switch does not exist: GET {}/testability/healthy/false -> {}",
        victim.public, refused.0
    );
    ensure!(
        refused.0 == 404,
        "the public port answered the switch: {}",
        refused.0
    );
    let flip = format!("{}/testability/healthy/false", victim.management);
    let answer = http.get(&flip)?;
    let flipped = Instant::now();
    println!("GET {flip} -> {} {}", answer.0, answer.1);
    ensure!(answer.0 == 200, "the switch answered {}", answer.0);

    step(4, "Docker's health check sees it");
    let mut seen_down: Option<(Duration, Value)> = None;
    let mut look_at_fleet = || -> Result<()> {
        if seen_down.is_none() {
            let view = fleet_view(&http, &fleet_url)?;
            if let Some(replica) = listed(&view, &victim.address).filter(|r| r["status"] == "DOWN")
            {
                seen_down = Some((flipped.elapsed(), replica.clone()));
            }
        }
        Ok(())
    };
    let state = watch(
        interrupted,
        "Docker to mark the container unhealthy",
        DETECT_DEADLINE,
        || {
            look_at_fleet()?;
            let state = docker::container_state(sh, &victim.container)?;
            Ok(if state.health_status() == "unhealthy" {
                Poll::Ready(state)
            } else {
                Poll::Pending(format!("health {}", state.health_status()))
            })
        },
    )?;
    let detected = flipped.elapsed();
    println!(
        "unhealthy {} after the flip; `docker inspect {}` (.State.Health):",
        secs(detected),
        short(&victim.container)
    );
    let probe = state.last_probe().context("no probe in the health log")?;
    println!(
        "  Status: {}; last probe: exit code {}, output:\n  {}",
        state.health_status(),
        probe.exit_code,
        probe.output.trim()
    );
    ensure!(
        probe.output.contains("forced unhealthy"),
        "the probe's output does not give the reason: {:?}",
        probe.output
    );

    step(5, "Swarm replaces it");
    let replaced = watch(
        interrupted,
        "Swarm to replace the unhealthy replica",
        CONVERGE_DEADLINE,
        || {
            look_at_fleet()?;
            let tasks = docker::service_tasks(sh, SERVICE)?;
            let serving: Vec<Task> = tasks.iter().filter(|t| t.is_serving()).cloned().collect();
            let fresh = serving
                .iter()
                .all(|t| t.container_id.as_deref() != Some(victim.container.as_str()));
            Ok(if serving.len() == REPLICAS && fresh {
                Poll::Ready(serving)
            } else {
                Poll::Pending(describe(&tasks))
            })
        },
    )?;
    let healed = flipped.elapsed();
    let (down_after, down) = seen_down.context(
        "the other replica's fleet view never showed the flipped replica DOWN before Swarm replaced it",
    )?;
    println!(
        "meanwhile the other replica's fleet view showed it DOWN {} after the flip: {} ({})",
        secs(down_after),
        victim.address,
        down["reason"].as_str().unwrap_or("")
    );
    let old = docker::container_state(sh, &victim.container)
        .map(|state| format!("exited with code {}", state.exit_code))
        .unwrap_or_else(|_| "removed".to_owned());
    let newcomer = replaced
        .iter()
        .find(|t| t.id != survivor.task)
        .context("no new task")?;
    println!(
        "back to {REPLICAS}/{REPLICAS} healthy {} after the flip ({} to detect, {} for Swarm to stop the old container and start a healthy new one); old container {}: {old}; new task {}",
        secs(healed),
        secs(detected),
        secs(healed.saturating_sub(detected)),
        short(&victim.container),
        short(&newcomer.id)
    );

    step(6, "the task history says why");
    shell(sh, &["docker", "service", "ps", "--no-trunc", SERVICE])?;
    let line = docker::service_ps_line(sh, SERVICE, &victim.task)?;
    ensure!(
        line.contains("unhealthy container"),
        "the old task's line does not say `unhealthy container`: {line:?}"
    );
    println!("the old task's line: {line}");

    step(7, "the fleet, seen from a replica");
    let view = watch(
        interrupted,
        "the fleet view to list the old replica GONE and two UP",
        CONVERGE_DEADLINE,
        || {
            let view = fleet_view(&http, &fleet_url)?;
            // A new replica may be given the old one's address: look for the GONE entry.
            let gone = view["replicas"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|replica| {
                    replica["address"] == victim.address.as_str() && replica["status"] == "GONE"
                });
            Ok(if gone && view["counts"]["UP"] == REPLICAS {
                Poll::Ready(view)
            } else {
                Poll::Pending(format!("counts {}", view["counts"]))
            })
        },
    )?;
    println!("GET {fleet_url}:");
    print_view(&view);
    println!(
        "status page: {}/status (the management port, reachable only from this host)",
        survivor.management
    );
    Ok(())
}

/// `GET /health/fleet` as JSON.
fn fleet_view(http: &Http, url: &str) -> Result<Value> {
    let (status, body) = http.get(url)?;
    ensure!(status == 200, "{url} answered {status}: {body}");
    serde_json::from_str(&body).with_context(|| format!("fleet JSON {body}"))
}

/// One line per replica of a fleet view: status, address, reason (and the last reason it gave).
fn print_view(view: &Value) {
    for replica in view["replicas"].as_array().into_iter().flatten() {
        let mut reason = replica["reason"].as_str().unwrap_or("").to_owned();
        if let Some(last) = replica["lastReason"].as_str() {
            reason.push_str(&format!("; its last answer: {last}"));
        }
        println!(
            "  {:<5} {:<16} {reason}",
            replica["status"].as_str().unwrap_or("?"),
            replica["address"].as_str().unwrap_or("?"),
        );
    }
}

/// The replica a fleet view lists at `address` (`<overlay address>:6768`).
fn listed<'a>(view: &'a Value, address: &str) -> Option<&'a Value> {
    view["replicas"]
        .as_array()?
        .iter()
        .find(|replica| replica["address"] == address)
}

/// One replica as the demo reaches it.
struct Replica {
    task: String,
    container: String,
    /// `http://127.0.0.1:<host port>`: the public port, published in `mode=host`.
    public: String,
    /// `http://<address on docker_gwbridge>:6768`: the management port, unpublished.
    management: String,
    /// `<overlay address>:6768`, as the other replicas' fleet view lists it.
    address: String,
}

impl Replica {
    fn of(sh: &Shell, task: &Task) -> Result<Self> {
        let container = task
            .container_id
            .clone()
            .context("task without container")?;
        let port = task.host_port.context("task without a published port")?;
        let gateway = gateway_address(sh, &container)?;
        let overlay = task
            .addresses
            .first()
            .context("task without an address on the overlay network")?;
        Ok(Self {
            task: task.id.clone(),
            container,
            public: format!("http://127.0.0.1:{port}"),
            management: format!("http://{gateway}:{MANAGEMENT_PORT}"),
            address: format!("{overlay}:{MANAGEMENT_PORT}"),
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BridgeEndpoint {
    #[serde(rename = "IPv4Address")]
    ipv4_address: String,
}

/// The container's address on `docker_gwbridge`, where this host reaches its unpublished ports.
fn gateway_address(sh: &Shell, container: &str) -> Result<String> {
    let format = "{{json .Containers}}";
    let json = cmd!(sh, "docker network inspect --format {format} {GWBRIDGE}")
        .quiet()
        .read()
        .with_context(|| format!("inspecting {GWBRIDGE}"))?;
    let endpoints: HashMap<String, BridgeEndpoint> =
        serde_json::from_str(&json).with_context(|| format!("parsing {json:?}"))?;
    let endpoint = endpoints
        .get(container)
        .with_context(|| format!("container {} is not on {GWBRIDGE}", short(container)))?;
    let address = endpoint.ipv4_address.split('/').next().unwrap_or_default();
    ensure!(
        !address.is_empty(),
        "container {} has no IPv4 address on {GWBRIDGE}",
        short(container)
    );
    Ok(address.to_owned())
}

/// The demo's network and service, removed on drop (containers first, then the network).
struct Fleet;

impl Fleet {
    /// Creates the network and the service, printing the command as a user would type it.
    fn create(sh: &Shell) -> Result<Self> {
        step(1, "deploy two replicas with the testability switches on");
        docker::create_overlay_network(sh, NETWORK)?;
        // From here on a failure must remove the network too.
        let fleet = Self;
        let replicas = REPLICAS.to_string();
        let public = format!("mode=host,target={SERVICE_PORT}");
        let peers = format!("ACCOUNTSERVICE_PEERS=tasks.{SERVICE}:{MANAGEMENT_PORT}");
        let mut args = vec![
            "docker",
            "service",
            "create",
            "--detach",
            "--no-resolve-image",
            "--name",
            SERVICE,
            "--label",
            LABEL,
            "--container-label",
            LABEL,
            "--replicas",
            &replicas,
            "--network",
            NETWORK,
            "--endpoint-mode",
            "dnsrr",
            "--publish",
            &public,
            "--env",
            "ACCOUNTSERVICE_TESTABILITY=true",
            "--env",
            &peers,
            "--read-only",
            "--restart-condition",
            "any",
            "--restart-delay",
            "0s",
        ];
        args.extend(HEALTH_FLAGS);
        args.push(LATEST);
        println!("$ {}", args.join(" "));
        let (program, rest) = args.split_first().context("empty command")?;
        cmd!(sh, "{program} {rest...}")
            .quiet()
            .ignore_stdout()
            .run()
            .context("creating the demo's service")?;
        println!(
            "management port {MANAGEMENT_PORT}: not published; this host reaches each task on {GWBRIDGE}"
        );
        Ok(fleet)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let result = Shell::new().context("opening a shell").and_then(|sh| {
            if docker::swarm_state(&sh)? == "active" && docker::service_exists(&sh, SERVICE)? {
                remove_service(&sh, SERVICE)?;
            }
            if docker::network_exists(&sh, NETWORK)? {
                remove_network(&sh, NETWORK)?;
            }
            Ok(())
        });
        if let Err(err) = result {
            eprintln!("demo cleanup: {err:#}");
        }
    }
}

/// Removes the fleet an earlier `--keep` run (or an interrupted one) left.
fn remove_previous(sh: &Shell) -> Result<()> {
    let swarm = docker::swarm_state(sh)? == "active";
    let service = swarm && docker::service_exists(sh, SERVICE)?;
    let network = docker::network_exists(sh, NETWORK)?;
    if !service && !network {
        return Ok(());
    }
    println!("removing the fleet an earlier run left ({SERVICE})");
    if service {
        remove_service(sh, SERVICE)?;
    }
    if network {
        remove_network(sh, NETWORK)?;
    }
    Ok(())
}

/// Containers of the demo that still exist.
fn left_containers(sh: &Shell) -> Result<Vec<String>> {
    let filter = format!("label={LABEL}");
    let ids = cmd!(sh, "docker ps --all --quiet --filter {filter}")
        .quiet()
        .read()?;
    Ok(ids.lines().map(str::to_owned).collect())
}

/// A blocking HTTP client whose every request has a bound.
struct Http(reqwest::blocking::Client);

impl Http {
    fn new() -> Result<Self> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        Ok(Self(client))
    }

    /// `GET url`: status and body.
    fn get(&self, url: &str) -> Result<(u16, String)> {
        let response = self
            .0
            .get(url)
            .send()
            .with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let body = response.text().with_context(|| format!("reading {url}"))?;
        Ok((status, body.trim().to_owned()))
    }
}

/// Prints a step's title.
fn step(number: u8, title: &str) {
    println!("\n== {number}. {title}");
}

/// Runs a command as shown, printing the command and its real output.
fn shell(sh: &Shell, args: &[&str]) -> Result<()> {
    println!("$ {}", args.join(" "));
    let Some((program, rest)) = args.split_first() else {
        bail!("empty command");
    };
    let output = cmd!(sh, "{program} {rest...}").quiet().read()?;
    println!("{output}");
    Ok(())
}

/// [`wait::until`] that shows progress (what it sees, when that changes or every few seconds) and
/// ends at once when the demo is interrupted.
fn watch<T>(
    interrupted: &AtomicBool,
    what: &str,
    timeout: Duration,
    mut look: impl FnMut() -> Result<Poll<T>>,
) -> Result<T> {
    let start = Instant::now();
    let mut shown = String::new();
    let mut shown_at = start;
    println!("waiting for {what} (at most {})", secs(timeout));
    wait::until(what, timeout, Duration::from_millis(250), || {
        if interrupted.load(Ordering::Relaxed) {
            bail!("interrupted while waiting for {what}");
        }
        let poll = look()?;
        if let Poll::Pending(seen) = &poll
            && (*seen != shown || shown_at.elapsed() >= Duration::from_secs(5))
        {
            println!("  {:>5.1} s  {seen}", start.elapsed().as_secs_f64());
            shown.clone_from(seen);
            shown_at = Instant::now();
        }
        Ok(poll)
    })
}

/// The tasks' states in one line: `a1b2c3 starting, d4e5f6 running`.
fn describe(tasks: &[Task]) -> String {
    let live: Vec<String> = tasks
        .iter()
        .filter(|t| t.desired_state == "running" || t.state == "running")
        .map(|t| {
            let health = match (t.desired_state.as_str(), t.state.as_str()) {
                ("running", "running") => "healthy",
                (_, "running") => "stopping",
                (_, state) => state,
            };
            format!("{} {health}", short(&t.id))
        })
        .collect();
    if live.is_empty() {
        "no task yet".to_owned()
    } else {
        live.join(", ")
    }
}

/// The first 12 characters of an ID, as `docker ps` shows them.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_line_names_running_tasks_healthy_and_skips_finished_ones() {
        let task = |id: &str, desired: &str, state: &str| Task {
            id: id.to_owned(),
            desired_state: desired.to_owned(),
            state: state.to_owned(),
            error: None,
            message: String::new(),
            container_id: None,
            host_port: None,
            management_host_port: None,
            image: LATEST.to_owned(),
            node_id: None,
            slot: None,
            addresses: Vec::new(),
        };
        let tasks = [
            task("aaaaaaaaaaaaaaaa", "running", "running"),
            task("bbbbbbbbbbbbbbbb", "running", "starting"),
            task("cccccccccccccccc", "shutdown", "failed"),
            task("dddddddddddddddd", "shutdown", "running"),
        ];
        assert_eq!(
            describe(&tasks),
            "aaaaaaaaaaaa healthy, bbbbbbbbbbbb starting, dddddddddddd stopping"
        );
        assert_eq!(describe(&[]), "no task yet");
    }
}
