//! `cargo xtask e2e`: the container scenarios, on the real Docker Engine, with the real image.
//!
//! 1. `docker run`: the container turns healthy, answers through its published port, runs as a
//!    non-root user, and stops at once on SIGTERM. The public port 6767 keeps the accounts,
//!    `/openapi.json` and `GET /health`; `/metrics` and the other health routes answer 404 there
//!    and 200 on the management port 6768, where Docker's health check asks (a container whose
//!    management port is moved elsewhere turns unhealthy: nothing answers the probe on 6768).
//! 2. A forced-unhealthy container turns `unhealthy` and `docker inspect` shows the probe's reason;
//!    the testability switches answer 404 on the public port and work on the management port.
//! 3. Swarm replaces a replica forced unhealthy with a new container, back to 2/2 healthy; the
//!    old container drains and exits 3, and `docker service ps --no-trunc` records its task as
//!    failed with `unhealthy container`.
//! 4. The same for a replica whose database fails.
//! 5. A start-first rolling update under continuous load loses no request, and an update to an
//!    image whose health check always fails is rolled back while the service keeps serving.
//! 6. Three replicas with `--peers tasks.<service>:6768`: one forced unhealthy shows `DOWN` in
//!    another's `/health/fleet` within two health intervals, then `GONE` with its last reason
//!    once Swarm replaced it; the status page rendered by headless Chromium shows the same. The
//!    view and the page answer 404 on the public port.
//!
//! The tasks publish their management port too (`mode=host`, a host port each) so that the
//! scenarios can reach the switches and the fleet view from the host; the shipped stack publishes
//! only 6767.
//!
//! Every scenario prints its timings. Every resource it creates (containers, services, networks,
//! images it tags, the Swarm if it initialised it) is held by a guard that removes it when
//! dropped, so a failing scenario cleans up too; at the end the run checks that nothing is left.
//! Every wait has a deadline. Health checks use short intervals through `--health-*` overrides
//! so the run is quick; the image keeps its production values.

pub(crate) mod balancer;
mod fleet;
pub(crate) mod guards;
mod heal;
mod http;
mod rolling;
mod standalone;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use xshell::{Shell, cmd};

use crate::docker::{self, secs};
use crate::image::{self, LATEST};
use crate::project::Project;

/// The label put on every container and service the scenarios create, to find leftovers.
pub const LABEL: &str = "accountservice.e2e=1";

/// Health-check overrides for the scenarios: a probe every second, unhealthy after two failures,
/// five seconds of start-up grace. The probe's own timeout is 2 s, Docker's is above it.
pub const HEALTH_FLAGS: [&str; 8] = [
    "--health-interval",
    "1s",
    "--health-timeout",
    "3s",
    "--health-retries",
    "2",
    "--health-start-period",
    "5s",
];

/// Options of `cargo xtask e2e`.
#[derive(Debug, Args)]
pub struct Options {
    /// Use the existing accountservice:latest instead of running `image` first.
    #[arg(long)]
    no_build: bool,
    /// Run only these scenarios (1-6; repeatable). All of them by default, as CI runs them.
    #[arg(long = "scenario", value_parser = clap::value_parser!(u8).range(1..=6))]
    scenarios: Vec<u8>,
    /// 1: the scenarios above on the local engine; 3: the multi-node scenarios on a three-node
    /// lab built in network namespaces (the same as `cargo xtask lab`; needs root).
    #[arg(long, default_value_t = 1, value_parser = parse_nodes)]
    nodes: u8,
}

fn parse_nodes(text: &str) -> Result<u8, String> {
    match text {
        "1" => Ok(1),
        "3" => Ok(3),
        _ => Err("1 (the local engine) or 3 (the lab)".to_owned()),
    }
}

impl Options {
    fn wants(&self, scenario: u8) -> bool {
        self.scenarios.is_empty() || self.scenarios.contains(&scenario)
    }
}

/// One timing line of a scenario.
pub struct Timing {
    /// What was measured.
    pub what: String,
    /// How long it took.
    pub took: Duration,
}

impl Timing {
    /// Records and prints a timing at once, so it is visible even if the scenario fails later.
    pub fn print(what: impl Into<String>, took: Duration) -> Self {
        let what = what.into();
        println!("    {what}: {}", secs(took));
        Self { what, took }
    }
}

/// Runs the selected scenarios and checks that they left nothing behind.
pub fn run(sh: &Shell, project: &Project, options: &Options) -> Result<()> {
    if options.nodes == 3 {
        let lab = crate::lab::Options {
            no_build: options.no_build,
            scenarios: options.scenarios.clone(),
            ..crate::lab::Options::default()
        };
        return crate::lab::run(sh, project, &lab);
    }
    let started = Instant::now();
    println!("engine: Docker {}", docker::engine_version(sh)?);
    let image = if options.no_build {
        image::image_size(sh, LATEST)
            .context("--no-build needs an existing accountservice:latest")?;
        println!("image: using the existing {LATEST}");
        None
    } else {
        Some(image::run(sh, project)?)
    };
    if let Some(image) = &image {
        println!("image: {} ({} bytes)", image.versioned_tag, image.size);
    }
    remove_leftovers(sh)?;
    let swarm_before = docker::swarm_state(sh)?;

    let mut report: Vec<(String, Duration, Vec<Timing>)> = Vec::new();
    let result = run_scenarios(sh, options, &mut report);

    println!("\n== e2e summary");
    for (name, took, timings) in &report {
        println!("  {name}: passed in {}", secs(*took));
        for timing in timings {
            println!("      {}: {}", timing.what, secs(timing.took));
        }
    }
    let leftovers = leftovers(sh);
    let swarm_after = docker::swarm_state(sh);
    result?;
    let leftovers = leftovers?;
    ensure!(
        leftovers.is_empty(),
        "resources left behind: {}",
        leftovers.join(", ")
    );
    let swarm_after = swarm_after?;
    ensure!(
        swarm_after == swarm_before,
        "the swarm was {swarm_before} before the run and is {swarm_after} after it"
    );
    println!(
        "  all {} scenario(s) passed in {}; no container, service, network or tag left behind; swarm {swarm_after} as before",
        report.len(),
        secs(started.elapsed())
    );
    Ok(())
}

fn run_scenarios(
    sh: &Shell,
    options: &Options,
    report: &mut Vec<(String, Duration, Vec<Timing>)>,
) -> Result<()> {
    let mut scenario =
        |number: u8, name: &str, body: &mut dyn FnMut() -> Result<Vec<Timing>>| -> Result<()> {
            if !options.wants(number) {
                return Ok(());
            }
            let title = format!("scenario {number}: {name}");
            println!("\n== {title}");
            let start = Instant::now();
            let timings = body().with_context(|| format!("{title} failed"))?;
            println!("  passed in {}", secs(start.elapsed()));
            report.push((title, start.elapsed(), timings));
            Ok(())
        };

    scenario(
        1,
        "docker run turns healthy, serves, runs as non-root",
        &mut || standalone::healthy_container(sh),
    )?;
    scenario(
        2,
        "a forced-unhealthy container turns unhealthy with the probe's reason",
        &mut || standalone::unhealthy_container(sh),
    )?;

    if !(3..=6).any(|number| options.wants(number)) {
        return Ok(());
    }
    let swarm = guards::Swarm::join(sh)?;
    if swarm.initialised() {
        println!(
            "\nswarm: initialised a single-node swarm for the run; the run leaves it again at the end"
        );
    }
    let images = if options.wants(5) {
        Some(rolling::prepare_images(sh)?)
    } else {
        None
    };
    let network = guards::Network::overlay(sh, heal::NETWORK)?;
    if (3..=5).any(|number| options.wants(number)) {
        let service = heal::create_service(sh, &network)?;
        scenario(3, "swarm replaces a replica forced unhealthy", &mut || {
            heal::replaces_unhealthy_replica(sh, &service, heal::Fault::ForcedUnhealthy)
        })?;
        scenario(
            4,
            "swarm replaces a replica whose database fails",
            &mut || heal::replaces_unhealthy_replica(sh, &service, heal::Fault::DatabaseDown),
        )?;
        scenario(
            5,
            "rolling update under load loses nothing; a broken image is rolled back",
            &mut || rolling::update_under_load(sh, &service),
        )?;
        // Containers before the network and the images they use.
        drop(service);
    }
    scenario(
        6,
        "the fleet seen from any replica while swarm replaces one",
        &mut || fleet::seen_from_any_replica(sh, &network),
    )?;
    // The order matters: containers before the network and the images they use, the swarm last.
    drop(network);
    drop(images);
    drop(swarm);
    Ok(())
}

/// Removes what an interrupted earlier run may have left (Ctrl-C skips destructors).
fn remove_leftovers(sh: &Shell) -> Result<()> {
    let found = leftovers(sh)?;
    if found.is_empty() {
        return Ok(());
    }
    println!("removing leftovers of an earlier run: {}", found.join(", "));
    let filter = format!("label={LABEL}");
    let services = cmd!(sh, "docker service ls --quiet --filter {filter}")
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_default();
    for service in services.lines() {
        guards::remove_service(sh, service)?;
    }
    let containers = cmd!(sh, "docker ps --all --quiet --filter {filter}")
        .quiet()
        .read()?;
    for container in containers.lines() {
        cmd!(sh, "docker rm --force --volumes {container}")
            .quiet()
            .ignore_stdout()
            .run()?;
    }
    if docker::network_exists(sh, heal::NETWORK)? {
        guards::remove_network(sh, heal::NETWORK)?;
    }
    for tag in rolling::TAGS {
        cmd!(sh, "docker rmi {tag}")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .ignore_status()
            .run()?;
    }
    let left = leftovers(sh)?;
    if !left.is_empty() {
        bail!("could not remove leftovers: {}", left.join(", "));
    }
    Ok(())
}

/// Everything the scenarios create that still exists.
fn leftovers(sh: &Shell) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let filter = format!("label={LABEL}");
    let containers = cmd!(sh, "docker ps --all --quiet --filter {filter}")
        .quiet()
        .read()?;
    found.extend(containers.lines().map(|id| format!("container {id}")));
    if docker::swarm_state(sh)? == "active" {
        let services = cmd!(sh, "docker service ls --quiet --filter {filter}")
            .quiet()
            .read()?;
        found.extend(services.lines().map(|id| format!("service {id}")));
    }
    if docker::network_exists(sh, heal::NETWORK)? {
        found.push(format!("network {}", heal::NETWORK));
    }
    let format = "{{.Repository}}:{{.Tag}}";
    let tags = cmd!(sh, "docker images --format {format}").quiet().read()?;
    found.extend(
        tags.lines()
            .filter(|tag| rolling::TAGS.contains(tag))
            .map(|tag| format!("image tag {tag}")),
    );
    Ok(found)
}
