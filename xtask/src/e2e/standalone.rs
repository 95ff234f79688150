//! Scenarios 1 and 2: one container under `docker run`, as Docker's health check sees it.
//!
//! The image serves clients on 6767 and the operator endpoints on its management port 6768, and
//! its health check asks 6768. Both ports are published on loopback here (only 6767 in the
//! shipped deployments), so the scenarios can check which port answers what.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use xshell::{Shell, cmd};

use super::flags::HEALTH_FLAGS;
use super::guards::Container;
use super::http::{Client, Ports};
use crate::dist::mib;
use crate::docker::{self, ContainerState, MANAGEMENT_PORT, SERVICE_PORT};
use crate::image::{LATEST, image_size};
use crate::timing::Timing;
use crate::wait::{self, Poll};

/// The budget for the image, uncompressed: both binaries, the service with its PostgreSQL client
/// and TLS (what that costs is in docs/postgresql.md; without it the image stayed under 6 MB).
const IMAGE_BUDGET: u64 = 8 * 1000 * 1000;

/// How long a container may take to turn healthy or unhealthy with the e2e health flags.
const HEALTH_DEADLINE: Duration = Duration::from_secs(30);

/// Starts the image read-only, without capabilities or privilege escalation, with both ports
/// published on loopback and the e2e health flags.
fn start_container(sh: &Shell, extra: &[&str]) -> Result<Container> {
    let public = format!("127.0.0.1::{SERVICE_PORT}");
    let management = format!("127.0.0.1::{MANAGEMENT_PORT}");
    let mut args = vec![
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--publish",
        &public,
        "--publish",
        &management,
    ];
    args.extend(HEALTH_FLAGS);
    args.extend(extra);
    args.push(LATEST);
    Container::run(sh, &args)
}

/// Waits until the container's health status is `wanted`, and returns its state then.
pub fn wait_for_health(
    sh: &Shell,
    container: &str,
    wanted: &str,
    deadline: Duration,
) -> Result<ContainerState> {
    wait::until(
        &format!("container {} to be {wanted}", short(container)),
        deadline,
        Duration::from_millis(200),
        || {
            let state = docker::container_state(sh, container)?;
            Ok(if state.health_status() == wanted {
                Poll::Ready(state)
            } else {
                let last = state
                    .last_probe()
                    .map(|probe| probe.output.trim().to_owned())
                    .unwrap_or_default();
                Poll::Pending(format!(
                    "status {}, health {}, last probe {last:?}",
                    state.status,
                    state.health_status()
                ))
            })
        },
    )
}

/// The host ports a standalone container publishes its two ports on.
fn ports(sh: &Shell, container: &str) -> Result<Ports> {
    Ok(Ports {
        public: docker::published_port(sh, container, SERVICE_PORT)?,
        management: docker::published_port(sh, container, MANAGEMENT_PORT)?,
    })
}

/// What each port answers with testability and the fleet view off: `(path, public,
/// management)`. The public port keeps the accounts, `/openapi.json` and `GET /health` (the
/// original's contract); everything an operator or orchestrator asks is on the management port.
const SPLIT: [(&str, u16, u16); 8] = [
    ("/accounts/10000", 200, 404),
    ("/openapi.json", 200, 404),
    ("/health", 200, 200),
    ("/health/live", 404, 200),
    ("/health/ready", 404, 200),
    ("/health/started", 404, 200),
    ("/health/history", 404, 200),
    ("/metrics", 404, 200),
];

/// The first 12 characters of an ID, as `docker ps` shows them.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Scenario 1.
pub fn healthy_container(sh: &Shell) -> Result<Vec<Timing>> {
    let mut timings = Vec::new();
    let size = image_size(sh, LATEST)?;
    println!("    image size: {size} bytes ({:.2} MiB)", mib(size));
    ensure!(
        size <= IMAGE_BUDGET,
        "the image is {size} bytes, over the {IMAGE_BUDGET}-byte budget"
    );

    // The same image with its management port moved to where the health check does not ask:
    // it must turn unhealthy with the probe saying nothing answers on 6768, which shows that
    // Docker's health check goes through the management port. It plays out meanwhile.
    let moved_port = format!("ACCOUNTSERVICE_MANAGEMENT_PORT={}", MANAGEMENT_PORT + 1);
    let moved = start_container(sh, &["--env", &moved_port])?;

    let start = Instant::now();
    let container = start_container(sh, &[])?;
    wait_for_health(sh, &container.id, "healthy", HEALTH_DEADLINE)?;
    timings.push(Timing::print(
        "started read-only, healthy after",
        start.elapsed(),
    ));

    let ports = ports(sh, &container.id)?;
    let port = ports.public;
    let client = Client::new(Duration::from_secs(5))?;
    let account = client.account(port, 10_000)?;
    client.account(port, 10_042)?;
    ensure!(!account.served_by.is_empty(), "servedBy is empty");
    println!(
        "    GET 127.0.0.1:{port}/accounts/10000 -> {} {} (servedBy {})",
        account.id, account.name, account.served_by
    );

    client.expect_split(ports, &SPLIT)?;
    let health = client.get(ports.public, "/health")?;
    ensure!(
        health.body.starts_with(r#"{"status":"UP""#),
        "GET /health on the public port answered {}",
        health.body
    );
    let metrics = client.get(ports.management, "/metrics")?;
    ensure!(
        metrics.body.contains("http_requests_total{"),
        "/metrics on the management port has no request counter: {}",
        metrics.body
    );
    println!(
        "    {SERVICE_PORT} (host port {}): /accounts, /openapi.json, GET /health {{\"status\":\"UP\"}}; \
         {MANAGEMENT_PORT} (host port {}): every health route and /metrics; each 404 on the other",
        ports.public, ports.management
    );

    let id = &container.id;
    let format = "{{json .Config.Healthcheck.Test}}";
    let test = cmd!(sh, "docker inspect --format {format} {id}")
        .quiet()
        .read()?;
    // The restart signal: liveness, which fails only on faults a restart can cure.
    let wanted =
        format!(r#"["CMD","/healthchecker","--port","{MANAGEMENT_PORT}","--path","/health/live"]"#);
    ensure!(
        test.trim() == wanted,
        "the image's health check is {test}, expected {wanted}"
    );
    // The original's probe, as its Dockerfile ran it, still passes against the public port.
    let port_flag = format!("-port={SERVICE_PORT}");
    let original = cmd!(sh, "docker exec {id} /healthchecker {port_flag}")
        .quiet()
        .ignore_status()
        .output()?;
    let line = String::from_utf8_lossy(&original.stdout).trim().to_owned();
    ensure!(
        original.status.success() && line.starts_with("healthy: 200"),
        "`healthchecker -port={SERVICE_PORT}` inside the container: {line} ({})",
        original.status
    );
    println!(
        "    health check {test}; the original's `healthchecker -port={SERVICE_PORT}`: {line}"
    );

    // The process's real uid, as the host's ps sees it, not only what the image declares.
    let format = "{{.Config.User}}";
    let user = cmd!(sh, "docker inspect --format {format} {id}")
        .quiet()
        .read()?;
    // docker top runs ps on the engine's host and needs a PID column to match processes.
    let top = cmd!(sh, "docker top {id} -eo pid,uid,comm")
        .quiet()
        .read()?;
    let uids = uid_column(&top)?;
    ensure!(!uids.is_empty(), "docker top listed no process: {top}");
    for uid in &uids {
        let uid: u32 = uid.parse().with_context(|| format!("uid {uid:?}"))?;
        ensure!(uid != 0, "a process of the container runs as root: {top}");
    }
    println!(
        "    image user {user}; processes run as uid {}",
        uids.join(",")
    );

    let files = shipped_files(sh, id)?;
    ensure!(
        files == ["accountservice", "healthchecker"],
        "the image should hold only the two binaries, it holds {files:?}"
    );
    println!("    files in the image: {} (no shell)", files.join(", "));

    let stop = Instant::now();
    cmd!(sh, "docker stop --time 20 {id}")
        .quiet()
        .ignore_stdout()
        .run()?;
    let took = stop.elapsed();
    let state = docker::container_state(sh, &container.id)?;
    ensure!(
        state.exit_code == 0,
        "the service exited {} on SIGTERM, expected 0",
        state.exit_code
    );
    ensure!(
        took < Duration::from_secs(10),
        "stopping took {took:?}: SIGTERM was not handled promptly (grace period 20 s)"
    );
    timings.push(Timing::print("docker stop (SIGTERM) to exit 0 took", took));

    let state = wait_for_health(sh, &moved.id, "unhealthy", HEALTH_DEADLINE)?;
    let probe = state
        .last_probe()
        .map(|probe| probe.output.trim().to_owned())
        .unwrap_or_default();
    ensure!(
        probe.starts_with("unhealthy: connection refused")
            && probe.contains(&format!(":{MANAGEMENT_PORT}")),
        "with the management port on {}, the health check should find nothing on \
         {MANAGEMENT_PORT}; its last line: {probe:?}",
        MANAGEMENT_PORT + 1
    );
    println!(
        "    management port moved to {}: Docker's `unhealthy`, probe: {probe}",
        MANAGEMENT_PORT + 1
    );
    Ok(timings)
}

/// The regular files of a container's filesystem, apart from those Docker itself injects into
/// every container (`.dockerenv`, `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`,
/// `/dev/console`).
fn shipped_files(sh: &Shell, container: &str) -> Result<Vec<String>> {
    let dir = sh.create_temp_dir()?;
    let tar = dir.path().join("fs.tar");
    cmd!(sh, "docker export --output {tar} {container}")
        .quiet()
        .run()?;
    let listing = cmd!(sh, "tar -tf {tar}").quiet().read()?;
    Ok(listing
        .lines()
        .map(|line| line.trim_start_matches("./"))
        .filter(|name| !name.is_empty() && !name.ends_with('/'))
        .filter(|name| {
            *name != ".dockerenv" && !name.starts_with("etc/") && !name.starts_with("dev/")
        })
        .map(str::to_owned)
        .collect())
}

/// The UID column of `docker top` output.
fn uid_column(top: &str) -> Result<Vec<&str>> {
    let mut lines = top.lines();
    let header = lines.next().unwrap_or_default();
    let column = header
        .split_whitespace()
        .position(|name| name == "UID")
        .with_context(|| format!("no UID column in docker top output {top:?}"))?;
    Ok(lines
        .filter_map(|line| line.split_whitespace().nth(column))
        .collect())
}

/// Scenario 2.
pub fn unhealthy_container(sh: &Shell) -> Result<Vec<Timing>> {
    let mut timings = Vec::new();
    let container = start_container(sh, &["--env", "ACCOUNTSERVICE_TESTABILITY=true"])?;
    wait_for_health(sh, &container.id, "healthy", HEALTH_DEADLINE)?;
    let ports = ports(sh, &container.id)?;
    let client = Client::new(Duration::from_secs(5))?;

    // The switches exist only on the management port: on the public port they are 404 and
    // change nothing.
    for path in ["/testability/healthy/false", "/testability/database/down"] {
        let answer = client.get(ports.public, path)?;
        ensure!(
            answer.status == 404,
            "GET {path} on the public port answered {}: {}",
            answer.status,
            answer.body
        );
    }
    client.expect_split(
        ports,
        &[("/health", 200, 200), ("/accounts/10001", 200, 404)],
    )?;
    println!("    the testability switches answer 404 on {SERVICE_PORT} and change nothing");

    let port = ports.management;
    let flipped = Instant::now();
    client.switch(port, "/testability/healthy/false")?;
    let state = wait_for_health(sh, &container.id, "unhealthy", HEALTH_DEADLINE)?;
    timings.push(Timing::print(
        "forced unhealthy to Docker's `unhealthy`",
        flipped.elapsed(),
    ));
    let probe = state
        .last_probe()
        .context("unhealthy, but no probe in the health log")?;
    let reason = probe.output.trim();
    println!("    docker inspect .State.Health.Log[-1].Output: {reason}");
    ensure!(
        probe.exit_code == 1,
        "the probe exited {}, expected 1",
        probe.exit_code
    );
    ensure!(
        reason.starts_with("unhealthy") && reason.contains("503"),
        "the probe's line does not explain the failure: {reason:?}"
    );
    ensure!(
        reason.contains("forced unhealthy"),
        "the probe's line does not carry the service's reason (forced unhealthy): {reason:?}"
    );

    let restored = Instant::now();
    client.switch(port, "/testability/healthy/true")?;
    wait_for_health(sh, &container.id, "healthy", HEALTH_DEADLINE)?;
    timings.push(Timing::print(
        "restored to Docker's `healthy`",
        restored.elapsed(),
    ));
    Ok(timings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uid_column_is_found_by_its_header() {
        let top = "PID                 UID                 COMMAND\n12601               10001               accountservice\n";
        assert_eq!(uid_column(top).unwrap(), ["10001"]);
    }

    #[test]
    fn docker_top_output_without_a_uid_column_is_an_error() {
        assert!(uid_column("PID COMMAND\n1 x\n").is_err());
    }
}
