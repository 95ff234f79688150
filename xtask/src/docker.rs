//! The Docker CLI calls the tasks need, each returning typed values parsed from its JSON output.
//!
//! Everything goes through the `docker` client, as a user would type it, so a failure can be
//! reproduced by hand. The engine here is 20.10 (API 1.41) with a newer client, which negotiates
//! down to the engine's API.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use xshell::{Shell, cmd};

/// The port the service listens on inside its container: the public one.
pub const SERVICE_PORT: u16 = 6767;

/// The image's management port: every health route, `/metrics`, the fleet view and the
/// testability switches. Published by the tasks only where a test must reach it from the host.
pub const MANAGEMENT_PORT: u16 = 6768;

/// The engine's version (`docker version`), which also proves an engine answers.
pub fn engine_version(sh: &Shell) -> Result<String> {
    let format = "{{.Server.Version}} (API {{.Server.APIVersion}})";
    cmd!(sh, "docker version --format {format}")
        .quiet()
        .read()
        .context("no Docker Engine answers (`docker version` failed); start dockerd first")
}

/// This node's Swarm state: `inactive`, `active`, `pending`, `error` or `locked`.
pub fn swarm_state(sh: &Shell) -> Result<String> {
    let format = "{{.Swarm.LocalNodeState}}";
    cmd!(sh, "docker info --format {format}")
        .quiet()
        .read()
        .context("reading the Swarm state with `docker info`")
}

/// Makes this node a single-node Swarm manager if it is not in a Swarm yet.
///
/// Returns whether it initialised the Swarm (the caller then decides whether to leave it).
pub fn ensure_swarm(sh: &Shell) -> Result<bool> {
    match swarm_state(sh)?.as_str() {
        "active" => Ok(false),
        "inactive" => {
            cmd!(sh, "docker swarm init --advertise-addr 127.0.0.1")
                .quiet()
                .ignore_stdout()
                .run()
                .context("initialising a single-node Swarm")?;
            Ok(true)
        }
        other => bail!("this node's Swarm state is {other:?}; expected active or inactive"),
    }
}

/// Whether a network with this exact name exists.
pub fn network_exists(sh: &Shell, name: &str) -> Result<bool> {
    let format = "{{.Name}}";
    let names = cmd!(sh, "docker network ls --format {format}")
        .quiet()
        .read()
        .context("listing networks")?;
    Ok(names.lines().any(|line| line == name))
}

/// Creates an attachable overlay network (attachable so that `docker run --network` containers,
/// such as a debugging client, can join the services on it).
pub fn create_overlay_network(sh: &Shell, name: &str) -> Result<()> {
    cmd!(
        sh,
        "docker network create --driver overlay --attachable {name}"
    )
    .quiet()
    .ignore_stdout()
    .run()
    .with_context(|| format!("creating overlay network {name}"))
}

/// Whether a Swarm service with this exact name exists.
pub fn service_exists(sh: &Shell, name: &str) -> Result<bool> {
    let format = "{{.Name}}";
    let names = cmd!(sh, "docker service ls --format {format}")
        .quiet()
        .read()
        .context("listing services")?;
    Ok(names.lines().any(|line| line == name))
}

/// IDs of the containers (running or not) that belong to a Swarm service.
pub fn service_containers(sh: &Shell, service: &str) -> Result<Vec<String>> {
    let filter = format!("label=com.docker.swarm.service.name={service}");
    let ids = cmd!(sh, "docker ps --all --quiet --no-trunc --filter {filter}")
        .quiet()
        .read()
        .with_context(|| format!("listing containers of service {service}"))?;
    Ok(ids.lines().map(str::to_owned).collect())
}

/// A container's state, as `docker inspect` reports it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// `created`, `running`, `exited`...
    pub status: String,
    /// Whether the process runs.
    pub running: bool,
    /// The exit code once it has stopped.
    pub exit_code: i64,
    /// Health, when the container has a health check.
    pub health: Option<Health>,
}

/// A container's health as Docker tracks it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// The last probes (Docker keeps five), oldest first.
    #[serde(default)]
    pub log: Vec<ProbeResult>,
}

/// One run of the health check.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProbeResult {
    /// The probe's exit code.
    pub exit_code: i64,
    /// What the probe printed (Docker keeps the first 4096 bytes).
    pub output: String,
}

impl ContainerState {
    /// The health status, or `none` for a container without a health check.
    pub fn health_status(&self) -> &str {
        self.health
            .as_ref()
            .map_or("none", |health| health.status.as_str())
    }

    /// The output of the most recent probe, if any ran.
    pub fn last_probe(&self) -> Option<&ProbeResult> {
        self.health.as_ref().and_then(|health| health.log.last())
    }
}

/// Reads a container's state.
pub fn container_state(sh: &Shell, container: &str) -> Result<ContainerState> {
    let format = "{{json .State}}";
    let json = cmd!(sh, "docker container inspect --format {format} {container}")
        .quiet()
        .read()
        .with_context(|| format!("inspecting container {container}"))?;
    serde_json::from_str(&json).with_context(|| format!("parsing the state of {container}"))
}

/// The host port published for a container port (`SERVICE_PORT`, `MANAGEMENT_PORT`) of a
/// standalone container.
pub fn published_port(sh: &Shell, container: &str, container_port: u16) -> Result<u16> {
    let spec = format!("{container_port}/tcp");
    let mapping = cmd!(sh, "docker port {container} {spec}")
        .quiet()
        .read()
        .with_context(|| format!("reading the published port of {container}"))?;
    parse_port_mapping(&mapping)
}

/// Parses `docker port` output (`127.0.0.1:49153`, possibly one line per address family).
fn parse_port_mapping(mapping: &str) -> Result<u16> {
    let first = mapping.lines().next().unwrap_or_default();
    let port = first.rsplit(':').next().unwrap_or_default();
    port.trim()
        .parse()
        .with_context(|| format!("no port in `docker port` output {mapping:?}"))
}

/// One Swarm task, reduced to what the tasks look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Task ID.
    pub id: String,
    /// What the orchestrator wants: `running`, `shutdown`...
    pub desired_state: String,
    /// Where it is: `starting` (up, not yet healthy), `running` (healthy), `failed`...
    pub state: String,
    /// Why it failed, e.g. `task: non-zero exit (143): dockerexec: unhealthy container`.
    pub error: Option<String>,
    /// The engine's last message about it (`started`, `finished`...).
    pub message: String,
    /// Its container, once created.
    pub container_id: Option<String>,
    /// The host port of the service port, when published in `mode=host`.
    pub host_port: Option<u16>,
    /// The host port of the management port, when a test publishes it in `mode=host`.
    pub management_host_port: Option<u16>,
    /// The image of the task's spec.
    pub image: String,
    /// The node it is assigned to, once scheduled.
    pub node_id: Option<String>,
    /// The replica slot it fills (a replacement takes over the slot of the task it replaces).
    pub slot: Option<u64>,
    /// Its addresses on the overlay networks, without the prefix length.
    pub addresses: Vec<String>,
}

impl Task {
    /// Whether the task is what Swarm would route to: meant to run, and running (Swarm marks a
    /// task with a health check `running` only once it is healthy).
    pub fn is_serving(&self) -> bool {
        self.desired_state == "running" && self.state == "running"
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawTask {
    #[serde(rename = "ID")]
    id: String,
    desired_state: String,
    status: RawTaskStatus,
    spec: RawTaskSpec,
    #[serde(rename = "NodeID", default)]
    node_id: Option<String>,
    #[serde(default)]
    slot: Option<u64>,
    #[serde(default)]
    networks_attachments: Vec<RawAttachment>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawAttachment {
    #[serde(default)]
    addresses: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawTaskStatus {
    state: String,
    err: Option<String>,
    #[serde(default)]
    message: String,
    container_status: Option<RawContainerStatus>,
    port_status: Option<RawPortStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawContainerStatus {
    #[serde(rename = "ContainerID")]
    container_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawPortStatus {
    #[serde(default)]
    ports: Vec<RawPort>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawPort {
    target_port: u16,
    published_port: u16,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawTaskSpec {
    container_spec: RawContainerSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawContainerSpec {
    image: String,
}

/// Parses `docker inspect` output for tasks.
pub fn parse_tasks(json: &str) -> Result<Vec<Task>> {
    let raw: Vec<RawTask> = serde_json::from_str(json).context("parsing task JSON")?;
    Ok(raw
        .into_iter()
        .map(|task| Task {
            id: task.id,
            desired_state: task.desired_state,
            state: task.status.state,
            error: task.status.err.filter(|err| !err.is_empty()),
            message: task.status.message,
            container_id: task
                .status
                .container_status
                .and_then(|status| status.container_id)
                .filter(|id| !id.is_empty()),
            host_port: published(task.status.port_status.as_ref(), SERVICE_PORT),
            management_host_port: published(task.status.port_status.as_ref(), MANAGEMENT_PORT),
            image: task.spec.container_spec.image,
            node_id: task.node_id.filter(|id| !id.is_empty()),
            slot: task.slot,
            addresses: task
                .networks_attachments
                .iter()
                .flat_map(|attachment| &attachment.addresses)
                .map(|cidr| cidr.split('/').next().unwrap_or(cidr).to_owned())
                .collect(),
        })
        .collect())
}

/// The host port a task publishes `target` on, if it does.
fn published(ports: Option<&RawPortStatus>, target: u16) -> Option<u16> {
    ports?
        .ports
        .iter()
        .find(|port| port.target_port == target && port.published_port != 0)
        .map(|port| port.published_port)
}

/// Every task of a service (current and history, as `docker service ps` lists them).
pub fn service_tasks(sh: &Shell, service: &str) -> Result<Vec<Task>> {
    let ids = cmd!(sh, "docker service ps --quiet --no-trunc {service}")
        .quiet()
        .read()
        .with_context(|| format!("listing the tasks of service {service}"))?;
    let ids: Vec<&str> = ids.lines().filter(|line| !line.is_empty()).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let json = cmd!(sh, "docker inspect --type task {ids...}")
        .quiet()
        .read()
        .with_context(|| format!("inspecting the tasks of service {service}"))?;
    parse_tasks(&json)
}

/// One task's line in `docker service ps --no-trunc` (ID, current state and error, tab-separated),
/// as an operator would read it.
pub fn service_ps_line(sh: &Shell, service: &str, task: &str) -> Result<String> {
    let filter = format!("id={task}");
    let format = "{{.ID}}\t{{.CurrentState}}\t{{.Error}}";
    let line = cmd!(
        sh,
        "docker service ps --no-trunc --filter {filter} --format {format} {service}"
    )
    .quiet()
    .read()
    .with_context(|| format!("listing task {task} of service {service}"))?;
    Ok(line.trim().to_owned())
}

/// A service's rolling update status, when an update or rollback has happened.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStatus {
    /// `updating`, `paused`, `completed`, `rollback_started`, `rollback_paused`,
    /// `rollback_completed`.
    pub state: String,
    /// The engine's explanation, e.g. `update rolled back due to failure or early termination of
    /// task ...`.
    #[serde(default)]
    pub message: String,
    /// When this update (or rollback) started; tells one update from the next.
    #[serde(default)]
    pub started_at: Option<String>,
}

/// Reads a service's update status (`None` before its first update).
pub fn update_status(sh: &Shell, service: &str) -> Result<Option<UpdateStatus>> {
    let format = "{{json .UpdateStatus}}";
    let json = cmd!(sh, "docker service inspect --format {format} {service}")
        .quiet()
        .read()
        .with_context(|| format!("inspecting service {service}"))?;
    serde_json::from_str(&json).with_context(|| format!("parsing update status {json:?}"))
}

/// Formats a duration as seconds with one decimal, for timing lines.
pub fn secs(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_mapping_with_both_address_families_gives_the_first_port() {
        assert_eq!(
            parse_port_mapping("0.0.0.0:32768\n[::]:32768").unwrap(),
            32768
        );
        assert_eq!(parse_port_mapping("127.0.0.1:49153").unwrap(), 49153);
    }

    #[test]
    fn an_empty_port_mapping_is_an_error() {
        assert!(parse_port_mapping("").is_err());
    }

    /// Trimmed from real `docker inspect --type task` output of Engine 20.10.
    const TASKS: &str = r#"[
      {"ID": "gwxq820723zp", "DesiredState": "running", "NodeID": "n8a4", "Slot": 2,
       "NetworksAttachments": [{"Network": {"ID": "x"}, "Addresses": ["10.0.1.5/24"]}],
       "Spec": {"ContainerSpec": {"Image": "accountservice:latest"}},
       "Status": {"Timestamp": "2026-11-24T13:57:29.308759014Z", "State": "running",
                  "Message": "started",
                  "ContainerStatus": {"ContainerID": "73e351dcac05", "PID": 12973, "ExitCode": 0},
                  "PortStatus": {"Ports": [{"Protocol": "tcp", "TargetPort": 6767,
                                            "PublishedPort": 32768, "PublishMode": "host"},
                                           {"Protocol": "tcp", "TargetPort": 6768,
                                            "PublishedPort": 32769, "PublishMode": "host"}]}}},
      {"ID": "vde5vlx93npc", "DesiredState": "shutdown",
       "Spec": {"ContainerSpec": {"Image": "accountservice:latest"}},
       "Status": {"State": "failed", "Err": "task: non-zero exit (143): dockerexec: unhealthy container",
                  "ContainerStatus": {"ContainerID": "46fee625e608", "ExitCode": 143},
                  "PortStatus": {}}},
      {"ID": "pending1", "DesiredState": "running",
       "Spec": {"ContainerSpec": {"Image": "accountservice:next"}},
       "Status": {"State": "pending", "PortStatus": {}}}
    ]"#;

    #[test]
    fn tasks_are_parsed_with_their_container_port_and_error() {
        let tasks = parse_tasks(TASKS).unwrap();
        assert_eq!(tasks.len(), 3);
        assert_eq!(tasks[0].host_port, Some(32768));
        assert_eq!(tasks[0].management_host_port, Some(32769));
        assert_eq!(tasks[0].container_id.as_deref(), Some("73e351dcac05"));
        assert_eq!(tasks[0].node_id.as_deref(), Some("n8a4"));
        assert_eq!(tasks[0].slot, Some(2));
        assert_eq!(tasks[0].addresses, ["10.0.1.5"]);
        assert_eq!(tasks[2].node_id, None);
        assert!(tasks[0].is_serving());
        assert!(!tasks[1].is_serving());
        assert!(
            tasks[1]
                .error
                .as_deref()
                .unwrap()
                .contains("unhealthy container")
        );
        assert_eq!(tasks[2].container_id, None);
        assert_eq!(tasks[2].host_port, None);
        assert_eq!(tasks[2].management_host_port, None);
        assert_eq!(tasks[2].image, "accountservice:next");
    }

    #[test]
    fn a_container_state_exposes_health_and_the_last_probe() {
        let state: ContainerState = serde_json::from_str(
            r#"{"Status":"running","Running":true,"ExitCode":0,
                "FinishedAt":"0001-01-01T00:00:00Z",
                "Health":{"Status":"unhealthy","FailingStreak":2,"Log":[
                  {"Start":"x","End":"y","ExitCode":0,"Output":"healthy: 200 OK in 0.4 ms\n"},
                  {"Start":"x","End":"y","ExitCode":1,"Output":"unhealthy: 503 Service Unavailable\n"}]}}"#,
        )
        .unwrap();
        assert_eq!(state.health_status(), "unhealthy");
        assert_eq!(state.last_probe().unwrap().exit_code, 1);
    }

    #[test]
    fn a_container_without_a_health_check_reports_none() {
        let state: ContainerState = serde_json::from_str(
            r#"{"Status":"exited","Running":false,"ExitCode":0,"FinishedAt":"2026-11-24T13:57:29Z"}"#,
        )
        .unwrap();
        assert_eq!(state.health_status(), "none");
        assert!(state.last_probe().is_none());
    }

    #[test]
    fn a_service_never_updated_has_no_update_status() {
        let status: Option<UpdateStatus> = serde_json::from_str("null").unwrap();
        assert_eq!(status, None);
    }
}
