//! The lab's Swarm: formed from the three nodes (all managers, so it survives the loss of one),
//! the node list as a manager sees it, and the service the scenarios run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use xshell::{Shell, cmd};

use super::node::Node;
use crate::docker::{self, Task};
use crate::wait::{self, Poll};

/// The service every scenario uses.
pub const SERVICE: &str = "accountservice";

/// Its attachable overlay network (attachable so the in-lab client container can join it).
pub const NETWORK: &str = "accountservice-lab";

/// Replicas: one per node when spread.
pub const REPLICAS: usize = 3;

/// How often the Swarm is looked at while waiting. Each look is a `docker` CLI call, which costs
/// CPU the two cores also need for the nodes themselves.
pub const POLL: Duration = Duration::from_millis(200);

/// The service's health check in the lab: a probe every 500 ms (a replacement turns healthy, and
/// so counts, half a second after it starts), unhealthy after two failures, the probe's own 2 s
/// timeout below Docker's, five seconds of start-up grace.
const HEALTH_FLAGS: [&str; 8] = [
    "--health-interval",
    "500ms",
    "--health-timeout",
    "3s",
    "--health-retries",
    "2",
    "--health-start-period",
    "5s",
];

/// A node as a manager sees it.
#[derive(Debug, Clone)]
pub struct SwarmNode {
    /// The node ID.
    pub id: String,
    /// Its hostname (`aslab-node<N>`).
    pub hostname: String,
    /// `ready`, `down`, `unknown`, `disconnected`.
    pub state: String,
    /// Whether it is the Raft leader.
    pub leader: bool,
    /// As a manager: `reachable` when its Raft member takes part, else `unreachable`.
    pub reachability: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawNode {
    #[serde(rename = "ID")]
    id: String,
    description: RawDescription,
    status: RawStatus,
    manager_status: Option<RawManagerStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawDescription {
    hostname: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawStatus {
    state: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawManagerStatus {
    #[serde(default)]
    leader: bool,
    #[serde(default)]
    reachability: String,
}

/// The Swarm's nodes, as the manager behind `sh` sees them.
pub fn nodes(sh: &Shell) -> Result<Vec<SwarmNode>> {
    let ids = cmd!(sh, "docker node ls --quiet")
        .quiet()
        .ignore_stderr()
        .read()
        .context("`docker node ls` failed (no leader?)")?;
    let ids: Vec<&str> = ids.lines().collect();
    let json = cmd!(sh, "docker node inspect {ids...}")
        .quiet()
        .ignore_stderr()
        .read()?;
    let raw: Vec<RawNode> = serde_json::from_str(&json).context("parsing node JSON")?;
    Ok(raw
        .into_iter()
        .map(|node| SwarmNode {
            id: node.id,
            hostname: node.description.hostname,
            state: node.status.state,
            leader: node
                .manager_status
                .as_ref()
                .is_some_and(|status| status.leader),
            reachability: node
                .manager_status
                .map(|status| status.reachability)
                .unwrap_or_default(),
        })
        .collect())
}

/// Every task of the service (current and history), as the manager behind `sh` sees them,
/// without the CLI's complaints on stderr while the Swarm has no leader.
///
/// Swarm prunes a slot's oldest tasks from its history as new ones come: one listed a moment ago
/// may be gone when inspected, and then the listing is taken again (a few times at most).
pub fn tasks(sh: &Shell) -> Result<Vec<Task>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let ids = cmd!(sh, "docker service ps --quiet --no-trunc {SERVICE}")
            .quiet()
            .ignore_stderr()
            .read()
            .context("`docker service ps` failed (no leader?)")?;
        let ids: Vec<&str> = ids.lines().filter(|line| !line.is_empty()).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let inspected = cmd!(sh, "docker inspect --type task {ids...}")
            .quiet()
            .ignore_stderr()
            .read();
        match inspected {
            Ok(json) => return docker::parse_tasks(&json),
            Err(err) if attempt >= 3 => return Err(err.into()),
            Err(_) => continue,
        }
    }
}

/// Polls `look` every [`POLL`] until it is ready, for at most `deadline`. Unlike
/// [`wait::until`], an error is something to wait out: while a Swarm re-elects its leader every
/// question to a manager fails, and that is a state the scenarios must sit through. The last
/// error is in the timeout message.
pub fn until<T>(
    what: &str,
    deadline: Duration,
    mut look: impl FnMut() -> Result<Poll<T>>,
) -> Result<T> {
    wait::until(what, deadline, POLL, || {
        Ok(look().unwrap_or_else(|err| Poll::Pending(format!("{err:#}"))))
    })
}

/// Node ID to hostname.
pub fn hostnames(sh: &Shell) -> Result<BTreeMap<String, String>> {
    Ok(nodes(sh)?
        .into_iter()
        .map(|node| (node.id, node.hostname))
        .collect())
}

/// Forms the Swarm: `swarm init` on the first node with a 1 s dispatcher heartbeat (a lost node
/// is noticed in seconds, for one heartbeat a second per node), then every other node joins as a
/// manager. Waits until the first node sees them all ready.
pub fn form(nodes: &[Node]) -> Result<()> {
    let first = &nodes[0];
    let addr = &first.addr;
    let listen = format!("{addr}:2377");
    cmd!(
        first.sh,
        "docker swarm init --advertise-addr {addr} --listen-addr {listen} --dispatcher-heartbeat 1s"
    )
    .quiet()
    .ignore_stdout()
    .run()
    .context("swarm init")?;
    let token = cmd!(first.sh, "docker swarm join-token --quiet manager")
        .quiet()
        .read()?;
    for node in &nodes[1..] {
        let addr = &node.addr;
        let listen_addr = format!("{addr}:2377");
        cmd!(
            node.sh,
            "docker swarm join --token {token} --advertise-addr {addr} --listen-addr {listen_addr} {listen}"
        )
        .quiet()
        .ignore_stdout()
        .run()
        .with_context(|| format!("{} joining the swarm", node.name))?;
    }
    wait_ready(nodes, Duration::from_secs(60))?;
    Ok(())
}

/// Waits until the first node sees every node ready and a reachable manager, and every node's
/// own manager answers a question that needs the Raft leader (`docker node ls`). A node whose
/// agent is back is `ready`, and even `reachable`, before its Raft member has rejoined; a fault in
/// between would leave the Swarm without a quorum.
pub fn wait_ready(nodes: &[Node], deadline: Duration) -> Result<()> {
    let count = nodes.len();
    until(
        &format!("{count} swarm nodes to be ready managers that reach the leader"),
        deadline,
        || {
            let seen = self::nodes(&nodes[0].sh)?;
            let ready = seen
                .iter()
                .filter(|node| node.state == "ready" && node.reachability == "reachable")
                .count();
            if ready != count {
                return Ok(Poll::Pending(describe_nodes(&seen)));
            }
            for node in nodes {
                let answered = cmd!(node.sh, "docker node ls --quiet")
                    .quiet()
                    .ignore_stdout()
                    .ignore_stderr()
                    .run()
                    .is_ok();
                if !answered {
                    return Ok(Poll::Pending(format!(
                        "{} cannot list the nodes yet (no leader known to it)",
                        node.name
                    )));
                }
            }
            Ok(Poll::Ready(()))
        },
    )
}

/// One line for a list of nodes.
pub fn describe_nodes(nodes: &[SwarmNode]) -> String {
    let parts: Vec<String> = nodes
        .iter()
        .map(|node| {
            format!(
                "{} {} {}{}",
                node.hostname,
                node.state,
                node.reachability,
                if node.leader { " (leader)" } else { "" }
            )
        })
        .collect();
    parts.join(", ")
}

/// The service's serving tasks (meant to run, and running: healthy), as a manager sees them.
pub fn serving(sh: &Shell) -> Result<Vec<Task>> {
    Ok(tasks(sh)?.into_iter().filter(Task::is_serving).collect())
}

/// Waits until the service has exactly [`REPLICAS`] serving tasks and nothing else meant to run,
/// and `accept` agrees. Returns the serving tasks.
pub fn wait_full_strength(
    sh: &Shell,
    what: &str,
    deadline: Duration,
    accept: impl Fn(&[Task]) -> bool,
) -> Result<Vec<Task>> {
    until(what, deadline, || {
        let tasks = tasks(sh)?;
        let serving: Vec<Task> = tasks.iter().filter(|t| t.is_serving()).cloned().collect();
        let wanted = tasks
            .iter()
            .filter(|t| t.desired_state == "running")
            .count();
        Ok(
            if serving.len() == REPLICAS && wanted == REPLICAS && accept(&serving) {
                Poll::Ready(serving)
            } else {
                Poll::Pending(describe_tasks(&tasks))
            },
        )
    })
}

/// One line per task, for timeout messages.
pub fn describe_tasks(tasks: &[Task]) -> String {
    let lines: Vec<String> = tasks
        .iter()
        .filter(|task| task.desired_state == "running" || task.state == "running")
        .map(|task| {
            format!(
                "{} slot {} on {} {}/{}",
                &task.id[..task.id.len().min(8)],
                task.slot.unwrap_or(0),
                task.node_id
                    .as_deref()
                    .map_or("-", |id| &id[..id.len().min(6)]),
                task.state,
                task.desired_state
            )
        })
        .collect();
    lines.join("; ")
}

/// Creates the service: three replicas spread over the nodes on the attachable overlay, DNS
/// round robin (no IPVS here), testability on, each replica told its task slot, short health
/// checks, start-first updates, and a pre-stop delay that covers the time Swarm's DNS takes to forget a stopping task on every node.
/// Waits until the three replicas are healthy; returns how long that took.
pub fn create_service(sh: &Shell, extra_env: &[String]) -> Result<Duration> {
    let start = Instant::now();
    let replicas = REPLICAS.to_string();
    let mut args: Vec<String> = [
        "--detach",
        "--no-resolve-image",
        "--name",
        SERVICE,
        "--replicas",
        &replicas,
        "--network",
        NETWORK,
        "--endpoint-mode",
        "dnsrr",
        "--placement-pref",
        "spread=node.id",
        "--env",
        "ACCOUNTSERVICE_TESTABILITY=true",
        "--env",
        "ACCOUNTSERVICE_PRE_STOP_DELAY=2",
        // Each replica reports its task slot, so the fleet view can tell a stale task from its
        // replacement when both answer (after a partition heals).
        "--env",
        "ACCOUNTSERVICE_SLOT={{.Task.Slot}}",
        "--read-only",
        "--stop-grace-period",
        "20s",
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
        "2s",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    for env in extra_env {
        args.push("--env".to_owned());
        args.push(env.clone());
    }
    args.extend(HEALTH_FLAGS.iter().map(|arg| (*arg).to_owned()));
    args.push(crate::image::LATEST.to_owned());
    cmd!(sh, "docker service create {args...}")
        .quiet()
        .ignore_stdout()
        .run()
        .context("creating the lab service")?;
    wait_full_strength(
        sh,
        "the service to be 3/3 healthy",
        Duration::from_secs(120),
        |_| true,
    )?;
    Ok(start.elapsed())
}

/// The container of a task, on whichever node runs it.
pub fn container_of(task: &Task) -> Result<&str> {
    match task.container_id.as_deref() {
        Some(id) => Ok(id),
        None => bail!("task {} has no container", task.id),
    }
}
