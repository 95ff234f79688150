//! The lab as the scenarios see it once built: its nodes, the database, the in-lab client, and
//! what the scenarios ask of them (where tasks run, which containers run, a task's description).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use xshell::{Shell, cmd};

use super::client::Client;
use super::database::Database;
use super::names::{NODES, ROOT, SWITCH};
use super::node::Node;
use super::swarm::{self, NETWORK, REPLICAS, SERVICE};
use super::teardown;
use crate::docker::{Task, secs};
use crate::image::LATEST;
use crate::timing::Timing;
use crate::wait::{self, Poll};

/// The tag the rolling update moves to: the same build under a new name, which changes the spec
/// and so replaces every task.
pub const NEXT: &str = "accountservice:lab-next";

/// The release label the rolling update sets (`ACCOUNTSERVICE_RELEASE`), the tag of [`NEXT`]:
/// the new replicas report `<version>+lab-next`, which is how the fleet view tells them apart.
pub const NEXT_RELEASE: &str = "lab-next";

/// How long Swarm may take to converge after a fault before the scenario fails.
pub const CONVERGE: Duration = Duration::from_secs(90);

/// The lab, built: its nodes, the manager that is asked, and the in-lab client.
pub struct Lab {
    /// The nodes, first the manager every question goes to.
    pub nodes: Vec<Node>,
    /// Swarm node ID to index in `nodes` (a node keeps its ID across a power loss).
    ids: BTreeMap<String, usize>,
    /// The in-lab client.
    pub client: Client,
    /// A shell on the host, for namespaces and links.
    pub host: Shell,
    /// The database every replica uses.
    pub database: Database,
}

impl Lab {
    /// The first node: the leader, which every question about the Swarm goes to.
    pub fn manager(&self) -> &Shell {
        &self.nodes[0].sh
    }

    /// The lab node with this Swarm node ID.
    pub fn node_by_id(&self, id: &str) -> Result<usize> {
        self.ids
            .get(id)
            .copied()
            .with_context(|| format!("no swarm node {id}"))
    }

    /// Where each serving task runs: lab node index (0-based) per task.
    pub fn placement(&self, tasks: &[Task]) -> Result<Vec<usize>> {
        tasks
            .iter()
            .map(|task| self.node_by_id(task.node_id.as_deref().unwrap_or_default()))
            .collect()
    }

    /// A node other than the first that runs at least one serving task (the one with the
    /// fewest), to lose or cut.
    pub fn victim(&self) -> Result<usize> {
        let tasks = swarm::serving(self.manager())?;
        let placement = self.placement(&tasks)?;
        let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
        for index in placement {
            *counts.entry(index).or_default() += 1;
        }
        counts
            .into_iter()
            .filter(|(index, _)| *index != 0)
            .min_by_key(|(_, count)| *count)
            .map(|(index, _)| index)
            .context("no node but the first runs a replica")
    }

    /// Running containers of the service on each node's own engine.
    pub fn running_containers(&self) -> Result<Vec<RunningContainer>> {
        let filter = format!("label=com.docker.swarm.service.name={SERVICE}");
        let format = r#"{{.ID}} {{.Label "com.docker.swarm.task.name"}}"#;
        let mut found = Vec::new();
        for (node, lab_node) in self.nodes.iter().enumerate() {
            let lines = cmd!(
                lab_node.sh,
                "docker ps --no-trunc --filter {filter} --format {format}"
            )
            .quiet()
            .read()?;
            for line in lines.lines() {
                let (container, task) = line.split_once(' ').unwrap_or((line, ""));
                found.push(RunningContainer {
                    node,
                    container: container.to_owned(),
                    task: task.to_owned(),
                });
            }
        }
        Ok(found)
    }

    /// Waits until exactly [`REPLICAS`] containers of the service run across the lab and returns
    /// them. Right after a node comes back, Swarm may briefly run more than it asked for (a stale
    /// task not yet told to stop, a task the new leader re-creates) and then shuts the surplus
    /// down: each surplus container seen on the way is printed, as part of what happened.
    pub fn wait_only_replicas(&self, what: &str) -> Result<Vec<RunningContainer>> {
        let mut surplus: BTreeMap<String, String> = BTreeMap::new();
        let running = wait::until(what, CONVERGE, swarm::POLL, || {
            let running = self.running_containers()?;
            if running.len() == REPLICAS {
                return Ok(Poll::Ready(running));
            }
            let described: Vec<String> = running
                .iter()
                .map(|container| container.describe(&self.nodes))
                .collect();
            if running.len() > REPLICAS {
                for (container, text) in running.iter().zip(&described) {
                    surplus.insert(container.container.clone(), text.clone());
                }
            }
            Ok(Poll::Pending(format!(
                "{} running: {}",
                running.len(),
                described.join(", ")
            )))
        })?;
        let kept: BTreeSet<&str> = running.iter().map(|c| c.container.as_str()).collect();
        for (container, text) in &surplus {
            if !kept.contains(container.as_str()) {
                println!("    on the way, a surplus container that Swarm then stopped: {text}");
            }
        }
        Ok(running)
    }
}

/// A running container of the service, as a lab node's engine lists it.
#[derive(Debug)]
pub struct RunningContainer {
    /// The index of its node in the lab.
    pub node: usize,
    /// Its container ID.
    pub container: String,
    /// Swarm's task name for it: `<service>.<slot>.<task id>`.
    pub task: String,
}

impl RunningContainer {
    /// `accountservice.2.abc… on aslab-node3 (container 1234abcd)`, for messages.
    pub fn describe(&self, nodes: &[Node]) -> String {
        let node = nodes
            .get(self.node)
            .map_or("an unknown node", |node| node.name.as_str());
        let short = &self.container[..self.container.len().min(12)];
        format!("{} on {node} (container {short})", self.task)
    }
}

/// Builds the lab: switch, nodes, daemons, Swarm, image, overlay network and client container.
pub fn build() -> Result<Lab> {
    let host = Shell::new()?;
    println!("== lab: building {NODES} nodes");
    let start = Instant::now();
    std::fs::create_dir_all(ROOT)?;
    teardown::note_run_netns()?;
    cmd!(host, "ip netns add {SWITCH}").quiet().run()?;
    cmd!(host, "ip -n {SWITCH} link set lo up").quiet().run()?;
    cmd!(host, "ip -n {SWITCH} link add br0 type bridge")
        .quiet()
        .run()?;
    cmd!(host, "ip -n {SWITCH} link set br0 up").quiet().run()?;
    let mut nodes = (1..=NODES).map(Node::new).collect::<Result<Vec<_>>>()?;
    for node in &nodes {
        node.wire(&host)?;
    }
    for node in &mut nodes {
        node.power_on()?;
    }
    Timing::print("namespaces, links and 3 daemons up", start.elapsed());

    let database_start = Instant::now();
    let database = Database::create(&host)?;
    Timing::print(
        format!(
            "PostgreSQL in a namespace of its own at {}",
            database.server.endpoint()
        ),
        database_start.elapsed(),
    );

    let formed = Instant::now();
    swarm::form(&nodes)?;
    Timing::print("swarm of 3 managers formed", formed.elapsed());

    let loaded = Instant::now();
    let archive = format!("{ROOT}/image.tar");
    for node in &nodes {
        cmd!(node.sh, "docker load --quiet --input {archive}")
            .quiet()
            .ignore_stdout()
            .run()
            .with_context(|| format!("loading the image into {}", node.name))?;
        cmd!(node.sh, "docker tag {LATEST} {NEXT}").quiet().run()?;
    }
    Timing::print("image loaded into 3 nodes", loaded.elapsed());

    let manager = &nodes[0].sh;
    let leader = swarm::nodes(manager)?
        .into_iter()
        .find(|node| node.leader)
        .context("the swarm has no leader")?;
    ensure!(
        leader.hostname == nodes[0].name,
        "the leader is {}, expected the first node",
        leader.hostname
    );
    cmd!(
        manager,
        "docker network create --driver overlay --attachable {NETWORK}"
    )
    .quiet()
    .ignore_stdout()
    .run()?;
    // A plain container on the overlay network whose network namespace the in-lab client
    // enters. It is not a task of the service, so no update or fault of the service moves it.
    let client_id = cmd!(
        manager,
        "docker run --detach --name aslab-client --network {NETWORK} --no-healthcheck
            --read-only --env ACCOUNTSERVICE_SEED_ACCOUNTS=0 {LATEST}"
    )
    .quiet()
    .read()?;
    let format = "{{.State.Pid}}";
    let pid: u32 = cmd!(manager, "docker inspect --format {format} {client_id}")
        .quiet()
        .read()?
        .trim()
        .parse()
        .context("the client container's PID")?;
    let client = Client::new(pid)?;
    let ids = swarm::hostnames(manager)?
        .into_iter()
        .map(|(id, hostname)| {
            let index = nodes
                .iter()
                .position(|node| node.name == hostname)
                .with_context(|| format!("no lab node named {hostname}"))?;
            Ok((id, index))
        })
        .collect::<Result<_>>()?;
    println!("  lab built in {}", secs(start.elapsed()));
    Ok(Lab {
        nodes,
        ids,
        client,
        host,
        database,
    })
}

/// A task's name for messages: slot, node and address.
pub fn describe(lab: &Lab, task: &Task) -> String {
    let node = lab
        .node_by_id(task.node_id.as_deref().unwrap_or_default())
        .map(|index| lab.nodes[index].name.clone())
        .unwrap_or_else(|_| "?".to_owned());
    format!(
        "slot {} on {node} at {}",
        task.slot.unwrap_or(0),
        task.addresses.first().map_or("-", String::as_str)
    )
}
