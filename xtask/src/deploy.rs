//! `cargo xtask deploy`: what the original's copyall.sh did, for this machine.
//!
//! Builds the image, makes this node a Swarm manager if it is not one, creates the overlay
//! network `my_network`, then removes and recreates the `accountservice` service and waits until
//! every replica is healthy.
//!
//! Why `docker service create` here and not `docker stack deploy -c deploy/swarm/stack.yml`: the
//! stack file is for real Swarms and publishes through the ingress routing mesh, which needs IPVS
//! in the kernel. This machine (and CI) has no IPVS, so here the port is published in `mode=host`
//! (the task binds the node's port itself) and services resolve each other with
//! `--endpoint-mode dnsrr` instead of a virtual IP. The policies (health check from the image,
//! restart, rollback) are the stack file's, and so are the ports: only the public port is
//! published; the management port 6768 (health, metrics) is reached inside `my_network`.

use std::time::Duration;

use anyhow::{Result, ensure};
use clap::Args;
use xshell::{Shell, cmd};

use crate::docker::{self, SERVICE_PORT};
use crate::image::{self, LATEST};
use crate::project::Project;
use crate::wait::{self, Poll};

/// The service name, as in the original.
const SERVICE: &str = "accountservice";

/// The overlay network, as in the original.
const NETWORK: &str = "my_network";

/// Options of `cargo xtask deploy`.
#[derive(Debug, Args)]
pub struct Options {
    /// Number of replicas. With one, it is published on --port; with more, each replica gets its
    /// own host port (a fixed host port can be bound by only one task per node without the
    /// routing mesh), listed at the end.
    #[arg(long, default_value_t = 1)]
    replicas: u32,
    /// Host port for a single replica.
    #[arg(long, default_value_t = SERVICE_PORT)]
    port: u16,
    /// Deploy the existing accountservice:latest instead of building the image first.
    #[arg(long)]
    no_build: bool,
}

/// Deploys and waits until every replica is healthy.
pub fn run(sh: &Shell, project: &Project, options: &Options) -> Result<()> {
    ensure!(options.replicas >= 1, "--replicas must be at least 1");
    let image = if options.no_build {
        LATEST.to_owned()
    } else {
        image::run(sh, project)?.versioned_tag
    };
    println!("engine: Docker {}", docker::engine_version(sh)?);

    if docker::ensure_swarm(sh)? {
        println!("swarm: initialised a single-node swarm (advertise address 127.0.0.1)");
    } else {
        println!("swarm: this node is already a swarm manager");
    }
    if docker::network_exists(sh, NETWORK)? {
        println!("network: {NETWORK} exists");
    } else {
        docker::create_overlay_network(sh, NETWORK)?;
        println!("network: created overlay network {NETWORK} (attachable)");
    }

    if docker::service_exists(sh, SERVICE)? {
        cmd!(sh, "docker service rm {SERVICE}")
            .quiet()
            .ignore_stdout()
            .run()?;
        // The old containers must be gone before a new task can bind the same host port.
        wait::until(
            "the old service's containers to be removed",
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
        )?;
        println!("service: removed the previous {SERVICE}");
    }

    let replicas = options.replicas.to_string();
    let single = options.replicas == 1;
    let publish = if single {
        format!("mode=host,published={},target={SERVICE_PORT}", options.port)
    } else {
        format!("mode=host,target={SERVICE_PORT}")
    };
    // A fixed host port cannot be held by the old and the new task at once, so a single replica
    // on a fixed port updates stop-first; with per-task ports, start-first keeps it serving.
    let order = if single { "stop-first" } else { "start-first" };
    cmd!(
        sh,
        "docker service create --detach --no-resolve-image
            --name {SERVICE} --replicas {replicas} --network {NETWORK}
            --endpoint-mode dnsrr --publish {publish}
            --read-only --stop-grace-period 15s
            --restart-condition any --restart-delay 2s
            --update-parallelism 1 --update-delay 5s --update-order {order}
            --update-failure-action rollback --update-monitor 30s
            --rollback-parallelism 1 --rollback-order {order} --rollback-monitor 30s
            {image}"
    )
    .quiet()
    .ignore_stdout()
    .run()?;
    println!("service: created {SERVICE} from {image}, {replicas} replica(s), waiting for health");

    let tasks = wait::until(
        "every replica to be healthy",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || {
            let tasks: Vec<_> = docker::service_tasks(sh, SERVICE)?
                .into_iter()
                .filter(|task| task.desired_state == "running")
                .collect();
            let serving = tasks.iter().filter(|task| task.is_serving()).count();
            Ok(
                if serving == tasks.len() && serving == usize::try_from(options.replicas)? {
                    Poll::Ready(tasks)
                } else {
                    Poll::Pending(format!(
                        "{serving}/{} healthy; states: {:?}",
                        options.replicas,
                        tasks
                            .iter()
                            .map(|task| task.state.as_str())
                            .collect::<Vec<_>>()
                    ))
                },
            )
        },
    )?;

    cmd!(sh, "docker service ps {SERVICE}").run()?;
    let filter = format!("label=com.docker.swarm.service.name={SERVICE}");
    cmd!(sh, "docker ps --filter {filter}").run()?;
    for task in &tasks {
        if let Some(port) = task.host_port {
            println!("replica {} answers on http://127.0.0.1:{port}/", task.id);
        }
    }
    Ok(())
}
