//! `cargo xtask prometheus --swarm`: the Swarm discovery of the shipped `prometheus.yml`, run by
//! Prometheus' own code against a real Swarm service on the local engine.
//!
//! A two-replica service named `promcheck_accountservice` (as `docker stack deploy` would name
//! it, which the file's relabelling must accept) is created on `my_network`, published in
//! `mode=host` as this machine needs. `promtool check service-discovery` then runs the file's
//! `dockerswarm_sd_configs` and relabelling: each running task must be exactly one target, at
//! its `my_network` address and port 6767, labelled with its service, slot and task, and the
//! host-mode port targets of the same tasks must be dropped. Each target address must answer
//! `/metrics` from inside `my_network` (the image's own probe in a throwaway container, since
//! the overlay is not reachable from the host). Everything it creates is removed at the end,
//! also when it fails; a Swarm or network it had to create is removed too.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use xshell::{Shell, cmd};

use crate::docker::{self, SERVICE_PORT};
use crate::image::{self, LATEST};
use crate::project::Project;
use crate::wait::{self, Poll};

/// The test service: a stack-style name, so the relabelling's `(.+_)?accountservice` is tested.
const SERVICE: &str = "promcheck_accountservice";

/// The network prometheus.yml keeps targets on.
const NETWORK: &str = "my_network";

/// Replicas of the test service.
const REPLICAS: usize = 2;

/// What the task created, to remove at the end whatever happens.
struct Cleanup<'a> {
    sh: &'a Shell,
    service: bool,
    network: bool,
    swarm: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let sh = self.sh;
        if self.service {
            let _ = cmd!(sh, "docker service rm {SERVICE}")
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run();
            // The network can only go once the service's containers have.
            let _ = wait::until(
                "the test service's containers to be removed",
                Duration::from_secs(60),
                Duration::from_millis(250),
                || {
                    let left = docker::service_containers(sh, SERVICE)?;
                    Ok(if left.is_empty() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending(format!("{} containers left", left.len()))
                    })
                },
            );
        }
        if self.network {
            let _ = cmd!(sh, "docker network rm {NETWORK}")
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run();
        }
        if self.swarm {
            let _ = cmd!(sh, "docker swarm leave --force")
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run();
        }
    }
}

/// Runs the discovery check; `build` builds the image first, else `accountservice:latest` is used.
pub fn run(sh: &Shell, project: &Project, config: &Path, build: bool) -> Result<()> {
    let image = if build {
        image::run(sh, project)?.versioned_tag
    } else {
        LATEST.to_owned()
    };
    println!("prometheus --swarm: Docker {}", docker::engine_version(sh)?);
    let mut cleanup = Cleanup {
        sh,
        service: false,
        network: false,
        swarm: false,
    };
    cleanup.swarm = docker::ensure_swarm(sh)?;
    if !docker::network_exists(sh, NETWORK)? {
        docker::create_overlay_network(sh, NETWORK)?;
        cleanup.network = true;
    }
    if docker::service_exists(sh, SERVICE)? {
        cmd!(sh, "docker service rm {SERVICE}")
            .quiet()
            .ignore_stdout()
            .run()?;
    }
    let replicas = REPLICAS.to_string();
    let publish = format!("mode=host,target={SERVICE_PORT}");
    cleanup.service = true;
    cmd!(
        sh,
        "docker service create --detach --no-resolve-image --name {SERVICE}
            --replicas {replicas} --network {NETWORK} --endpoint-mode dnsrr
            --publish {publish} --read-only {image}"
    )
    .quiet()
    .ignore_stdout()
    .run()
    .context("creating the test service")?;
    let tasks = wait::until(
        "both replicas of the test service to be running",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || {
            let tasks: Vec<_> = docker::service_tasks(sh, SERVICE)?
                .into_iter()
                .filter(|task| task.desired_state == "running")
                .collect();
            Ok(
                if tasks.len() == REPLICAS && tasks.iter().all(|task| task.state == "running") {
                    Poll::Ready(tasks)
                } else {
                    Poll::Pending(format!(
                        "{:?}",
                        tasks.iter().map(|task| &task.state).collect::<Vec<_>>()
                    ))
                },
            )
        },
    )?;

    let output = cmd!(
        sh,
        "timeout 60 promtool check service-discovery {config} accountservice"
    )
    .quiet()
    .read()
    .context("promtool check service-discovery")?;
    let targets: Vec<Value> =
        serde_json::from_str(&output).context("parsing promtool's service discovery output")?;
    let ours: Vec<&Value> = targets
        .iter()
        .filter(|target| target["discoveredLabels"]["__meta_dockerswarm_service_name"] == SERVICE)
        .collect();
    let kept: Vec<&Value> = ours
        .iter()
        .copied()
        .filter(|target| {
            target["labels"]
                .as_object()
                .is_some_and(|labels| !labels.is_empty())
        })
        .collect();
    ensure!(
        kept.len() == REPLICAS,
        "prometheus.yml makes {} targets of the {REPLICAS} tasks (want one each): {output}",
        kept.len()
    );
    let task_ids: BTreeSet<&str> = tasks.iter().map(|task| task.id.as_str()).collect();
    let mut seen_tasks = BTreeSet::new();
    let mut slots = BTreeSet::new();
    let mut addresses = Vec::new();
    for target in &kept {
        let labels = &target["labels"];
        let text = |name: &str| labels[name].as_str().unwrap_or_default().to_owned();
        let address = text("__address__");
        ensure!(
            address.ends_with(&format!(":{SERVICE_PORT}"))
                && target["discoveredLabels"]["__meta_dockerswarm_network_name"] == NETWORK,
            "a target is not a task's {NETWORK} address at port {SERVICE_PORT}: {target}"
        );
        ensure!(
            text("service") == SERVICE && text("job") == "accountservice",
            "a target lacks its service or job label: {target}"
        );
        seen_tasks.insert(text("task"));
        slots.insert(text("slot"));
        addresses.push(address);
    }
    ensure!(
        seen_tasks
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
            == task_ids,
        "the targets' task labels {seen_tasks:?} are not the running tasks {task_ids:?}"
    );
    ensure!(
        slots.len() == REPLICAS,
        "the targets' slots {slots:?} are not one per replica"
    );
    println!(
        "prometheus --swarm: promtool check service-discovery: {} tasks discovered as {} \
         candidates, kept one target per task: {} (slots {}), the host-port ones dropped",
        REPLICAS,
        ours.len(),
        addresses.join(", "),
        slots.into_iter().collect::<Vec<_>>().join(", ")
    );

    for address in &addresses {
        let url = format!("http://{address}/metrics");
        let answer = cmd!(
            sh,
            "docker run --rm --network {NETWORK} --entrypoint /healthchecker {image} --url {url}"
        )
        .quiet()
        .ignore_stderr()
        .read()
        .with_context(|| format!("{url} does not answer from inside {NETWORK}"))?;
        println!("prometheus --swarm: GET {url} from inside {NETWORK}: {answer}");
    }
    drop(cleanup);
    Ok(())
}
