//! `cargo xtask prometheus --swarm`: the Swarm discovery of the shipped `prometheus.yml`, run by
//! Prometheus' own code against a real Swarm service on the local engine.
//!
//! A two-replica service named `promcheck_accountservice` (as `docker stack deploy` would name
//! it, which the file's relabelling must accept) is created on `my_network`, published in
//! `mode=host` as this machine needs. `promtool check service-discovery` then runs the file's
//! `dockerswarm_sd_configs` and relabelling: each running task must be exactly one target, at
//! its `my_network` address and the management port 6768 (where `/metrics` is; the service
//! publishes only 6767, as the shipped stack does), labelled with its service, slot and task, and
//! the host-mode port targets of the same tasks must be dropped. Each target address must answer
//! `/metrics` from inside `my_network` (the image's own probe in a throwaway container, since
//! the overlay is not reachable from the host).
//!
//! Then the real Prometheus server runs the shipped file (intervals cut to one second, nothing
//! else changed) inside the network namespace of a throwaway container on `my_network`, with its
//! API published to the host: it must discover and scrape both replicas (`up == 1`). One replica
//! is forced unhealthy through its testability switch (on its management port, from inside
//! `my_network` too); Prometheus must show `AccountServiceReplicaNotUp` for its slot, and once
//! Swarm has replaced it, `AccountServiceReplicaReplaced` firing for that slot.
//!
//! Everything it creates is removed at the end, also when it fails; a Swarm or network it had to
//! create is removed too.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use xshell::{Shell, cmd};

use crate::docker::{self, MANAGEMENT_PORT, SERVICE_PORT};
use crate::image::{self, LATEST};
use crate::project::Project;
use crate::server::Server;
use crate::wait::{self, Poll};

use super::{Api, POLL, STOP_GRACE};

/// The test service: a stack-style name, so the relabelling's `(.+_)?accountservice` is tested.
const SERVICE: &str = "promcheck_accountservice";

/// The network prometheus.yml keeps targets on.
const NETWORK: &str = "my_network";

/// Replicas of the test service.
const REPLICAS: usize = 2;

/// How long Swarm may take to replace a replica forced unhealthy, and Prometheus to notice.
const REPLACE_TIMEOUT: Duration = Duration::from_secs(120);

/// What the task created, to remove at the end whatever happens.
struct Cleanup<'a> {
    sh: &'a Shell,
    /// The container whose network namespace Prometheus runs in.
    helper: Option<String>,
    service: bool,
    network: bool,
    swarm: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let sh = self.sh;
        if let Some(helper) = &self.helper {
            let _ = cmd!(sh, "docker rm --force {helper}")
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run();
        }
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

/// Runs the discovery check, then the server against the Swarm; `build` builds the image first,
/// else `accountservice:latest` is used.
pub fn run(sh: &Shell, project: &Project, config: &Path, rules: &Path, build: bool) -> Result<()> {
    let image = if build {
        image::run(sh, project)?.versioned_tag
    } else {
        LATEST.to_owned()
    };
    println!("prometheus --swarm: Docker {}", docker::engine_version(sh)?);
    let mut cleanup = Cleanup {
        sh,
        helper: None,
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
    // Testability on, to force one replica unhealthy; Docker's health check every second, so
    // Swarm replaces it within seconds.
    cmd!(
        sh,
        "docker service create --detach --no-resolve-image --name {SERVICE}
            --replicas {replicas} --network {NETWORK} --endpoint-mode dnsrr
            --publish {publish} --read-only --env ACCOUNTSERVICE_TESTABILITY=true
            --health-interval 1s --health-retries 2 --health-timeout 3s
            --restart-condition any --restart-delay 1s {image}"
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
    // Task id to target address.
    let mut targets_of_tasks = BTreeMap::new();
    let mut slots = BTreeSet::new();
    let mut addresses = Vec::new();
    for target in &kept {
        let labels = &target["labels"];
        let text = |name: &str| labels[name].as_str().unwrap_or_default().to_owned();
        let address = text("__address__");
        ensure!(
            address.ends_with(&format!(":{MANAGEMENT_PORT}"))
                && target["discoveredLabels"]["__meta_dockerswarm_network_name"] == NETWORK,
            "a target is not a task's {NETWORK} address at the management port \
             {MANAGEMENT_PORT}: {target}"
        );
        ensure!(
            text("service") == SERVICE && text("job") == "accountservice",
            "a target lacks its service or job label: {target}"
        );
        targets_of_tasks.insert(text("task"), address.clone());
        slots.insert(text("slot"));
        addresses.push(address);
    }
    ensure!(
        targets_of_tasks
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
            == task_ids,
        "the targets' task labels {:?} are not the running tasks {task_ids:?}",
        targets_of_tasks.keys()
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
        let answer = get_inside(sh, &image, &url)?;
        println!("prometheus --swarm: GET {url} from inside {NETWORK}: {answer}");
    }

    let helper = cmd!(
        sh,
        "docker run --detach --network {NETWORK} --publish 127.0.0.1::9090 {image}"
    )
    .quiet()
    .read()
    .context("starting the container Prometheus runs beside")?;
    cleanup.helper = Some(helper.clone());
    let result = scrape_the_swarm(sh, &helper, config, rules, &image, &targets_of_tasks);
    drop(cleanup);
    result
}

/// `GET url` from a throwaway container on `my_network` (the overlay is not reachable from the
/// host), with the image's own probe; its line when the answer is 2xx.
fn get_inside(sh: &Shell, image: &str, url: &str) -> Result<String> {
    cmd!(
        sh,
        "docker run --rm --network {NETWORK} --entrypoint /healthchecker {image} --url {url}"
    )
    .quiet()
    .ignore_stderr()
    .read()
    .with_context(|| format!("{url} does not answer 2xx from inside {NETWORK}"))
}

/// The shipped configuration with one-second intervals and the rules file's absolute path, so
/// the run is short; the discovery and relabelling are untouched.
fn fast_config(shipped: &str, rules: &Path) -> Result<String> {
    let mut config = shipped.to_owned();
    for (from, to) in [
        ("scrape_interval: 15s", "scrape_interval: 1s".to_owned()),
        (
            "evaluation_interval: 15s",
            "evaluation_interval: 1s".to_owned(),
        ),
        ("scrape_timeout: 5s", "scrape_timeout: 1s".to_owned()),
        ("refresh_interval: 15s", "refresh_interval: 1s".to_owned()),
        ("  - alerts.yml", format!("  - {}", rules.display())),
    ] {
        ensure!(
            config.contains(from),
            "prometheus.yml no longer has `{from}`; update the --swarm check"
        );
        config = config.replace(from, &to);
    }
    Ok(config)
}

/// Runs Prometheus with the shipped file in `helper`'s network namespace (on `my_network`) and
/// follows one replica (of `targets`, task id to management address) from forced unhealthy to
/// replaced through its API.
fn scrape_the_swarm(
    sh: &Shell,
    helper: &str,
    config: &Path,
    rules: &Path,
    image: &str,
    targets: &BTreeMap<String, String>,
) -> Result<()> {
    let format = "{{.State.Pid}}";
    let pid = cmd!(sh, "docker inspect --format {format} {helper}")
        .quiet()
        .read()?;
    let api_port = cmd!(sh, "docker port {helper} 9090/tcp").quiet().read()?;
    let api_addr: SocketAddr = api_port
        .lines()
        .next()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("no address in `docker port` output {api_port:?}"))?;
    let temp = tempfile::Builder::new()
        .prefix("accountservice-prometheus-swarm-")
        .tempdir()?;
    let fast = temp.path().join("prometheus.yml");
    std::fs::write(
        &fast,
        fast_config(&std::fs::read_to_string(config)?, rules)?,
    )?;
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net=/proc/{}/ns/net", pid.trim()))
        .arg("prometheus")
        .arg(format!("--config.file={}", fast.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            temp.path().join("data").display()
        ))
        .arg("--web.listen-address=0.0.0.0:9090")
        .arg("--log.level=warn");
    let started = Instant::now();
    let mut prometheus = Server::spawn_at("prometheus", command, api_addr)?;
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let api = Api {
        client: &client,
        base: format!("http://{api_addr}"),
    };
    let up = format!(r#"up{{job="accountservice",service="{SERVICE}"}} == 1"#);
    wait::until(
        "Prometheus to scrape both replicas",
        REPLACE_TIMEOUT,
        POLL,
        || {
            prometheus.ensure_alive()?;
            Ok(match api.query(&up) {
                Ok(values) if values.len() == REPLICAS => Poll::Ready(()),
                Ok(values) => Poll::Pending(format!("{} up", values.len())),
                Err(error) => Poll::Pending(format!("{error:#}")),
            })
        },
    )?;
    println!(
        "prometheus --swarm: the shipped prometheus.yml inside {NETWORK} scrapes both replicas \
         (up == 1) {:.1} s after start",
        started.elapsed().as_secs_f64()
    );

    let (victim, victim_address) = targets
        .iter()
        .next()
        .context("no target to force unhealthy")?;
    let slot = api.get(&format!(
        "/api/v1/query?query={}",
        super::percent_encode(&format!(r#"up{{task="{victim}"}}"#))
    ))?["data"]["result"][0]["metric"]["slot"]
        .as_str()
        .context("the forced replica's target has no slot label")?
        .to_owned();
    get_inside(
        sh,
        image,
        &format!("http://{victim_address}/testability/healthy/false"),
    )
    .with_context(|| format!("forcing task {victim} unhealthy"))?;
    let forced = Instant::now();
    println!("prometheus --swarm: forced task {victim} (slot {slot}) unhealthy");
    let mut seen_not_up = None;
    wait::until(
        "AccountServiceReplicaNotUp, then AccountServiceReplicaReplaced firing, for the slot",
        REPLACE_TIMEOUT,
        POLL,
        || {
            prometheus.ensure_alive()?;
            let alerts = api.get("/api/v1/alerts")?;
            let list = alerts["data"]["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let find = |name: &str| {
                list.iter().find(|alert| {
                    alert["labels"]["alertname"] == name
                        && alert["labels"]["service"] == SERVICE
                        && alert["labels"]["slot"] == slot.as_str()
                })
            };
            if seen_not_up.is_none()
                && let Some(alert) = find("AccountServiceReplicaNotUp")
            {
                seen_not_up = Some(forced.elapsed());
                println!(
                    "prometheus --swarm: AccountServiceReplicaNotUp {} for slot {slot} after {:.1} s",
                    alert["state"].as_str().unwrap_or("?"),
                    forced.elapsed().as_secs_f64()
                );
            }
            Ok(match find("AccountServiceReplicaReplaced") {
                Some(alert) if alert["state"] == "firing" && seen_not_up.is_some() => {
                    Poll::Ready(())
                }
                _ => Poll::Pending(
                    list.iter()
                        .map(|alert| {
                            format!(
                                "{} {} slot {}",
                                alert["labels"]["alertname"],
                                alert["state"],
                                alert["labels"]["slot"]
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            })
        },
    )?;
    println!(
        "prometheus --swarm: Swarm replaced it; AccountServiceReplicaReplaced firing for slot \
         {slot} {:.1} s after the fault",
        forced.elapsed().as_secs_f64()
    );
    prometheus.stop(STOP_GRACE, true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_config_of_the_shipped_file_only_shortens_intervals_and_finds_the_rules() {
        let shipped = include_str!("../../../deploy/prometheus/prometheus.yml");
        let fast = fast_config(shipped, Path::new("/x/alerts.yml")).unwrap();
        assert!(!fast.contains("15s"), "{fast}");
        assert!(fast.contains("  - /x/alerts.yml\n"), "{fast}");
        assert!(fast.contains("role: tasks"), "{fast}");
        assert_eq!(fast.lines().count(), shipped.lines().count());
    }

    #[test]
    fn a_config_without_the_expected_settings_is_refused() {
        let error = fast_config("global: {}\n", Path::new("/x")).unwrap_err();
        assert!(error.to_string().contains("scrape_interval"), "{error}");
    }
}
