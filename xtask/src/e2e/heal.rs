//! Scenarios 3 and 4: Swarm replaces a replica whose health check fails, with no one stepping in.
//!
//! The service runs two replicas on an overlay network. Without IPVS here, each task publishes
//! the service port in `mode=host` on a port of its own (no `published=`), which is how the
//! scenarios reach one chosen replica. Each task also publishes its management port (6768) the
//! same way, only so the scenarios can flip its testability switches from the host; Docker's
//! health check asks 6768 inside the container, as in the shipped stack.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use xshell::Shell;

use super::flags::HEALTH_FLAGS;
use super::guards::{Network, Service};
use super::http::Client;
use super::standalone::{short, wait_for_health};
use crate::docker::{self, MANAGEMENT_PORT, SERVICE_PORT, Task};
use crate::image::LATEST;
use crate::timing::Timing;
use crate::wait::{self, Poll};

/// The scenarios' overlay network.
pub const NETWORK: &str = "accountservice-e2e";

/// The scenarios' service.
pub const SERVICE: &str = "accountservice-e2e";

/// Replicas of the scenarios' service.
pub const REPLICAS: usize = 2;

/// The service's stop grace period: the ceiling before SIGKILL, which a prompt SIGTERM handler
/// stays far below.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// How long Swarm may take to bring the service back to full strength.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(90);

/// A fault injected into one replica through the testability routes.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// `/testability/healthy/false`.
    ForcedUnhealthy,
    /// `/testability/database/down`: the real database check fails.
    DatabaseDown,
}

impl Fault {
    fn path(self) -> &'static str {
        match self {
            Self::ForcedUnhealthy => "/testability/healthy/false",
            Self::DatabaseDown => "/testability/database/down",
        }
    }

    /// A word the probe's line must contain, naming the cause.
    fn reason(self) -> &'static str {
        match self {
            Self::ForcedUnhealthy => "forced unhealthy",
            Self::DatabaseDown => "database",
        }
    }
}

/// Creates the scenarios' service (testability on, short health checks, start-first updates
/// with automatic rollback) and waits until both replicas are healthy.
pub fn create_service(sh: &Shell, network: &Network) -> Result<Service> {
    let replicas = REPLICAS.to_string();
    let grace = format!("{}s", STOP_GRACE.as_secs());
    let (public, management) = publish_both();
    let mut args = vec![
        "--replicas",
        &replicas,
        "--network",
        &network.name,
        "--endpoint-mode",
        "dnsrr",
        "--publish",
        &public,
        "--publish",
        &management,
        "--env",
        "ACCOUNTSERVICE_TESTABILITY=true",
        "--read-only",
        "--stop-grace-period",
        &grace,
        "--restart-condition",
        "any",
        "--restart-delay",
        "0s",
        "--update-parallelism",
        "1",
        "--update-delay",
        "0s",
        "--update-order",
        "start-first",
        "--update-failure-action",
        "rollback",
        "--update-monitor",
        "5s",
        "--update-max-failure-ratio",
        "0",
        "--rollback-parallelism",
        "1",
        "--rollback-order",
        "start-first",
        "--rollback-monitor",
        "5s",
    ];
    args.extend(HEALTH_FLAGS);
    args.push(LATEST);
    let start = Instant::now();
    let service = Service::create(sh, SERVICE, &args)?;
    wait_for_full_strength(sh, SERVICE, |_| true)?;
    println!(
        "\nservice {SERVICE}: {REPLICAS}/{REPLICAS} healthy {:.1} s after `docker service create`",
        start.elapsed().as_secs_f64()
    );
    Ok(service)
}

/// `--publish` values for both ports of every task in `mode=host`, each on a host port of its own.
pub fn publish_both() -> (String, String) {
    (
        format!("mode=host,target={SERVICE_PORT}"),
        format!("mode=host,target={MANAGEMENT_PORT}"),
    )
}

/// Waits until the service has exactly [`REPLICAS`] serving tasks that satisfy `accept`.
pub fn wait_for_full_strength(
    sh: &Shell,
    service: &str,
    accept: impl Fn(&[Task]) -> bool,
) -> Result<Vec<Task>> {
    wait_for_replicas(sh, service, REPLICAS, accept)
}

/// Waits until the service has exactly `replicas` serving tasks that satisfy `accept`.
pub fn wait_for_replicas(
    sh: &Shell,
    service: &str,
    replicas: usize,
    accept: impl Fn(&[Task]) -> bool,
) -> Result<Vec<Task>> {
    wait::until(
        &format!("service {service} to be back to {replicas}/{replicas} healthy"),
        CONVERGE_DEADLINE,
        Duration::from_millis(250),
        || {
            let tasks = docker::service_tasks(sh, service)?;
            let serving: Vec<Task> = tasks.iter().filter(|t| t.is_serving()).cloned().collect();
            let wanted = tasks
                .iter()
                .filter(|t| t.desired_state == "running")
                .count();
            Ok(
                if serving.len() == replicas && wanted == replicas && accept(&serving) {
                    Poll::Ready(serving)
                } else {
                    Poll::Pending(describe(&tasks))
                },
            )
        },
    )
}

/// One line per task, for timeout messages.
fn describe(tasks: &[Task]) -> String {
    let lines: Vec<String> = tasks
        .iter()
        .map(|task| {
            format!(
                "{} {}/{} {}{}",
                short(&task.id),
                task.state,
                task.desired_state,
                task.image,
                task.error
                    .as_deref()
                    .map(|err| format!(" ({err})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    lines.join("; ")
}

/// Scenarios 3 and 4: inject `fault` into one replica, watch Swarm replace it.
pub fn replaces_unhealthy_replica(
    sh: &Shell,
    service: &Service,
    fault: Fault,
) -> Result<Vec<Timing>> {
    let mut timings = Vec::new();
    let tasks = wait_for_full_strength(sh, &service.name, |_| true)?;
    let victim = tasks[0].clone();
    let survivor = tasks[1].clone();
    let victim_container = victim
        .container_id
        .clone()
        .context("task without container")?;
    let port = victim.host_port.context("task without a published port")?;
    let management = victim
        .management_host_port
        .context("task without a published management port")?;
    let client = Client::new(Duration::from_secs(5))?;
    client.account(port, 10_001)?;
    println!(
        "    replica {} (container {}, port {port}, management port {management}): GET {}",
        short(&victim.id),
        short(&victim_container),
        fault.path()
    );

    let injected = Instant::now();
    client.switch(management, fault.path())?;
    let state = wait_for_health(sh, &victim_container, "unhealthy", Duration::from_secs(30))?;
    let detected = injected.elapsed();
    timings.push(Timing::print(
        "fault to Docker's `unhealthy` (detection)",
        detected,
    ));
    let reason = state
        .last_probe()
        .map(|probe| probe.output.trim().to_owned())
        .unwrap_or_default();
    println!("    probe: {reason}");
    ensure!(
        reason.starts_with("unhealthy") && reason.contains(fault.reason()),
        "the probe's line does not name the cause ({}): {reason:?}",
        fault.reason()
    );

    let unhealthy_at = Instant::now();
    let stopped = wait::until(
        "Swarm to stop the unhealthy container",
        STOP_GRACE + Duration::from_secs(15),
        Duration::from_millis(100),
        || {
            let state = docker::container_state(sh, &victim_container)?;
            Ok(if state.running {
                Poll::Pending(format!("{} ({})", state.status, state.health_status()))
            } else {
                Poll::Ready(state)
            })
        },
    )?;
    let stop_took = unhealthy_at.elapsed();
    timings.push(Timing::print(
        "`unhealthy` to old container exited (includes Swarm's 2 s load-balancer drain)",
        stop_took,
    ));
    println!(
        "    old container {} exited with code {} (health {})",
        short(&victim_container),
        stopped.exit_code,
        stopped.health_status()
    );
    // 3: drained cleanly, but stopped while its own health was DOWN (see `--help`), so Swarm
    // records a failure with the reason instead of a clean completion.
    ensure!(
        stopped.exit_code == 3 && stop_took < STOP_GRACE / 2,
        "the old task did not drain and exit 3 at once on SIGTERM: exit code {} after \
         {stop_took:?} (grace period {STOP_GRACE:?}; 0 means it reported a healthy stop, 137 that \
         Docker had to SIGKILL it)",
        stopped.exit_code
    );

    let replaced = wait_for_full_strength(sh, &service.name, |serving| {
        serving
            .iter()
            .all(|task| task.container_id.as_deref() != Some(victim_container.as_str()))
    })?;
    timings.push(Timing::print(
        "fault to service back at 2/2 healthy with a new container (replacement)",
        injected.elapsed(),
    ));
    let old_task = docker::service_tasks(sh, &service.name)?
        .into_iter()
        .find(|task| task.id == victim.id)
        .context("the old task vanished from the service's history")?;
    println!(
        "    swarm: old task {} is {} (desired {}): {}",
        short(&old_task.id),
        old_task.state,
        old_task.desired_state,
        old_task.error.as_deref().unwrap_or(&old_task.message)
    );
    ensure!(
        old_task.desired_state == "shutdown",
        "the old task is still meant to run: {old_task:?}"
    );
    // What an operator sees: the replaced task's error says why it was replaced.
    let record = docker::service_ps_line(sh, &service.name, &old_task.id)?;
    println!("    docker service ps --no-trunc: {record}");
    ensure!(
        record.contains("unhealthy container"),
        "`docker service ps --no-trunc` does not say the old task was unhealthy: {record:?}"
    );
    ensure!(
        replaced.iter().any(|task| task.id == survivor.id),
        "the healthy replica {} was replaced too",
        short(&survivor.id)
    );
    let new_task = replaced
        .iter()
        .find(|task| task.id != survivor.id)
        .context("no new task")?;
    let new_port = new_task.host_port.context("new task without a port")?;
    let new_container = new_task.container_id.as_deref().unwrap_or("?");
    let account = client.account(new_port, 10_000)?;
    println!(
        "    new task {} in new container {} (port {new_port}) serves {}",
        short(&new_task.id),
        short(new_container),
        account.name
    );
    Ok(timings)
}
