//! Scenario 7: a database outage that restarts nothing, on the local engine. Two replicas use a
//! real PostgreSQL server running on this host outside Swarm (listening on the address of
//! `docker_gwbridge`, which every task's container reaches); the server is stopped for a few
//! health intervals and started again. No task is replaced, every lookup meanwhile is a 503 with
//! `Retry-After` and the shared outage's reason, and both replicas serve again once the server is
//! back.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use xshell::{Shell, cmd};

use super::guards::{Network, Service};
use super::heal::{self, publish_both};
use super::http::Client;
use crate::docker::{self, Task, secs};
use crate::image::LATEST;
use crate::postgres::{self, Server};
use crate::timing::Timing;
use crate::wait::{self, Poll};

/// The scenario's service.
pub const SERVICE: &str = "accountservice-e2e-outage";

/// How long the database stays down: several health intervals and the health check's retries,
/// long enough for a restart signal that wrongly failed to have Swarm replace a task.
const OUTAGE: Duration = Duration::from_secs(8);

/// The health interval of the replicas (the service's default).
const INTERVAL: Duration = Duration::from_secs(1);

/// Every task ID of the service, current and past.
fn task_ids(sh: &Shell) -> Result<BTreeSet<String>> {
    Ok(docker::service_tasks(sh, SERVICE)?
        .into_iter()
        .map(|task| task.id)
        .collect())
}

/// Scenario 7.
pub fn database_outage_restarts_nothing(sh: &Shell, network: &Network) -> Result<Vec<Timing>> {
    let mut timings = Vec::new();
    // The tasks reach this host through docker_gwbridge, which Docker makes when the first task
    // joins an overlay network: the service starts on its embedded store, then a rolling update
    // points it at the server, as an operator moving to a shared database would.
    let (public, management) = publish_both();
    let peers = format!(
        "ACCOUNTSERVICE_PEERS=tasks.{SERVICE}:{}",
        docker::MANAGEMENT_PORT
    );
    let replicas = heal::REPLICAS.to_string();
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
        &peers,
        "--read-only",
        "--restart-condition",
        "any",
        "--restart-delay",
        "0s",
        "--update-order",
        "start-first",
        "--update-delay",
        "0s",
    ];
    args.extend(super::flags::HEALTH_FLAGS);
    args.push(LATEST);
    let start = Instant::now();
    let service = Service::create(sh, SERVICE, &args)?;
    heal::wait_for_full_strength(sh, SERVICE, |_| true)?;
    timings.push(Timing::print(
        "`docker service create` to 2/2 healthy",
        start.elapsed(),
    ));
    let server = postgres::for_swarm_tasks(sh, "accountservice-e2e-pg")?;
    let result = run(sh, &server, &mut timings);
    // The service before the server, whose removal would otherwise be an outage it reports.
    drop(service);
    let removed = server.remove();
    result?;
    removed?;
    Ok(timings)
}

fn run(sh: &Shell, server: &Server, timings: &mut Vec<Timing>) -> Result<()> {
    println!("    PostgreSQL on this host at {}", server.endpoint());
    let url = format!("ACCOUNTSERVICE_DATABASE_URL={}", server.url());
    let old = task_ids(sh)?;
    let start = Instant::now();
    cmd!(
        sh,
        "docker service update --detach --env-add {url} {SERVICE}"
    )
    .quiet()
    .ignore_stdout()
    .run()
    .context("pointing the service at the database")?;
    let tasks = heal::wait_for_full_strength(sh, SERVICE, |tasks| {
        tasks.iter().all(|task| !old.contains(&task.id))
    })?;
    // An old replica still draining is still in Swarm's DNS, and so one of the peers the new
    // ones ask: the outage starts once it is gone.
    wait::until(
        "the old replicas to stop",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            let draining: Vec<String> = docker::service_tasks(sh, SERVICE)?
                .into_iter()
                .filter(|task| old.contains(&task.id) && task.state == "running")
                .map(|task| task.id)
                .collect();
            Ok(if draining.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("still running: {draining:?}"))
            })
        },
    )?;
    timings.push(Timing::print(
        "rolling update onto the database to 2/2 healthy",
        start.elapsed(),
    ));
    let ports: Vec<u16> = tasks
        .iter()
        .map(|task: &Task| task.host_port.context("a task without a published port"))
        .collect::<Result<_>>()?;
    let client = Client::new(Duration::from_secs(5))?;
    for port in &ports {
        client.account(*port, 10001)?;
    }
    let before = task_ids(sh)?;

    server.stop()?;
    let stopped = Instant::now();
    println!("    PostgreSQL stopped");
    let mut seen_shared = None;
    let mut slowest = Duration::ZERO;
    let mut refused = 0;
    let watched = (|| -> Result<()> {
        while stopped.elapsed() < OUTAGE {
            for port in &ports {
                let asked = Instant::now();
                let answer = client.get(*port, "/accounts/10001")?;
                slowest = slowest.max(asked.elapsed());
                if answer.status == 200 {
                    continue;
                }
                // Before the verdict a lookup is a plain 503 (the store failed); once the
                // shared outage is known, a 503 at once that says when to retry.
                let shared = answer.body.contains("shared outage");
                ensure!(
                    answer.status == 503 && (answer.retry_after.is_some() || !shared),
                    "a lookup during the outage answered {} (Retry-After {:?}): {}",
                    answer.status,
                    answer.retry_after,
                    answer.body
                );
                refused += 1;
                if shared && seen_shared.is_none() {
                    seen_shared = Some(stopped.elapsed());
                    println!(
                        "    lookup: 503, Retry-After: {}, {}",
                        answer.retry_after.as_deref().unwrap_or_default(),
                        answer.body
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    })();
    server.start()?;
    let returned = Instant::now();
    watched?;
    let shared =
        seen_shared.context("no lookup named a shared outage while the database was down")?;
    timings.push(Timing::print(
        "database stopped to lookups answering 503 `shared outage`",
        shared,
    ));
    println!(
        "    {refused} lookups answered 503 in {}; the slowest took {} ms",
        secs(OUTAGE),
        slowest.as_millis()
    );
    let back = wait::until(
        "both replicas to answer 200 again",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let mut waiting = Vec::new();
            for port in &ports {
                let answer = client.get(*port, "/accounts/10001")?;
                if answer.status != 200 {
                    waiting.push(format!("{port}: {} {}", answer.status, answer.body));
                }
            }
            Ok(if waiting.is_empty() {
                Poll::Ready(returned.elapsed())
            } else {
                Poll::Pending(waiting.join("; "))
            })
        },
    )?;
    timings.push(Timing::print(
        "database back to 200 from both replicas",
        back,
    ));
    let after = task_ids(sh)?;
    ensure!(
        after == before,
        "Swarm replaced tasks during the outage: before {before:?}, after {after:?}"
    );
    println!(
        "    `docker service ps`: the same {} tasks before and after, none replaced",
        before.len()
    );
    ensure!(
        slowest < Duration::from_secs(3),
        "a lookup during the outage took {} ms",
        slowest.as_millis()
    );
    ensure!(
        back <= INTERVAL * 3,
        "the replicas served again only {} after the database returned",
        secs(back)
    );
    Ok(())
}
