//! Scenario 6: the fleet, seen from any replica, while Swarm heals a replica.
//!
//! Three replicas with `--peers tasks.<service>:6768` (Swarm's DNS name listing every task, asked
//! on the management port, where `/health/history` is). One is forced unhealthy; within two
//! health intervals another replica's `/health/fleet` shows it `DOWN` with its reason. Once Swarm
//! has replaced it, the old replica is listed `GONE` with its last reason and the new one `UP`;
//! the status page, rendered by headless Chromium, shows the same. The view and the page answer
//! on the management port only (404 on the public one).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use xshell::Shell;

use super::flags::HEALTH_FLAGS;
use super::guards::{Network, Service};
use super::heal::{publish_both, wait_for_replicas};
use super::http::{Client, Ports};
use super::standalone::short;
use crate::browser::{Chromium, Dom};
use crate::docker::MANAGEMENT_PORT;
use crate::image::LATEST;
use crate::timing::Timing;
use crate::wait::{self, Poll};

/// The scenario's service.
pub const SERVICE: &str = "accountservice-e2e-fleet";

/// Replicas of the scenario's service.
const REPLICAS: usize = 3;

/// The replicas' health interval (the service's default, set explicitly because the scenario's
/// deadline is counted in it).
const INTERVAL: Duration = Duration::from_secs(1);

/// How long Swarm may take to replace the replica and the view to show it.
const REPLACE_DEADLINE: Duration = Duration::from_secs(120);

/// Virtual time the status page gets before its DOM is dumped.
const RENDER_BUDGET: Duration = Duration::from_secs(5);

/// Runs the scenario on its own service in `network`, removed at the end.
pub fn seen_from_any_replica(sh: &Shell, network: &Network) -> Result<Vec<Timing>> {
    let mut timings = Vec::new();
    let browser = Chromium::ensure(sh)?;
    let peers = format!("ACCOUNTSERVICE_PEERS=tasks.{SERVICE}:{MANAGEMENT_PORT}");
    let (public, management) = publish_both();
    let interval = format!("ACCOUNTSERVICE_HEALTH_INTERVAL={}", INTERVAL.as_secs());
    let replicas = REPLICAS.to_string();
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
        "--env",
        &peers,
        "--env",
        &interval,
        "--read-only",
        "--restart-condition",
        "any",
        "--restart-delay",
        "0s",
    ];
    args.extend(HEALTH_FLAGS);
    args.push(LATEST);
    let created = Instant::now();
    let service = Service::create(sh, SERVICE, &args)?;
    let tasks = wait_for_replicas(sh, SERVICE, REPLICAS, |_| true)?;
    println!(
        "    service {SERVICE}: {REPLICAS}/{REPLICAS} healthy {:.1} s after `docker service create`, --peers tasks.{SERVICE}:{MANAGEMENT_PORT}",
        created.elapsed().as_secs_f64()
    );
    let client = Client::new(Duration::from_secs(5))?;
    let victim = tasks[0].clone();
    let observer = tasks[1].clone();
    let victim_port = victim.host_port.context("task without a published port")?;
    let victim_management = victim
        .management_host_port
        .context("task without a published management port")?;
    let observer_ports = Ports {
        public: observer
            .host_port
            .context("task without a published port")?,
        management: observer
            .management_host_port
            .context("task without a published management port")?,
    };
    let observer_port = observer_ports.management;
    let victim_instance = client.account(victim_port, 10_001)?.served_by;
    client.expect_split(
        observer_ports,
        &[("/health/fleet", 404, 200), ("/status", 404, 200)],
    )?;
    println!(
        "    /health/fleet and /status: 404 on the public port, 200 on the management port {}",
        observer_ports.management
    );

    let view = |port| -> Result<Value> {
        let answer = client.get(port, "/health/fleet")?;
        ensure!(
            answer.status == 200,
            "/health/fleet answered {}: {}",
            answer.status,
            answer.body
        );
        serde_json::from_str(&answer.body).with_context(|| format!("fleet JSON {}", answer.body))
    };
    let first = wait::until(
        "every replica UP in the fleet view",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let view = view(observer_port)?;
            Ok(if view["counts"]["UP"] == REPLICAS {
                Poll::Ready(view)
            } else {
                Poll::Pending(view.to_string())
            })
        },
    )?;
    let victim_address = by_instance(&first, &victim_instance)
        .and_then(|r| r["address"].as_str())
        .with_context(|| format!("{victim_instance} is not in the fleet view: {first}"))?
        .to_owned();
    println!(
        "    fleet view from replica {} (management port {observer_port}): {} UP; victim {} is {victim_address}",
        short(&observer.id),
        first["counts"]["UP"],
        short(&victim.id)
    );

    client.switch(victim_management, "/testability/healthy/false")?;
    let injected = Instant::now();
    let down = wait::until(
        "the fleet view to show the victim DOWN with its reason",
        INTERVAL * 10,
        Duration::from_millis(50),
        || {
            let view = view(observer_port)?;
            let replica = by_address(&view, &victim_address).cloned();
            Ok(match replica {
                Some(r) if r["status"] == "DOWN" => Poll::Ready(r),
                other => Poll::Pending(format!("{other:?}")),
            })
        },
    )?;
    let shown = injected.elapsed();
    timings.push(Timing::print(
        "fault to DOWN in another replica's /health/fleet",
        shown,
    ));
    ensure!(
        down["reason"] == "testability: forced unhealthy",
        "the fleet view does not give the victim's reason: {down}"
    );
    ensure!(
        shown <= INTERVAL * 2,
        "the fleet view took {shown:?}, more than two health intervals ({:?})",
        INTERVAL * 2
    );

    let healed = wait::until(
        "the fleet view to list the old replica GONE and three UP",
        REPLACE_DEADLINE,
        Duration::from_millis(250),
        || {
            let view = view(observer_port)?;
            // The victim stays forced unhealthy: three UP means a new replica took its place.
            let old = gone_at(&view, &victim_address);
            Ok(if old.is_some() && view["counts"]["UP"] == REPLICAS {
                Poll::Ready(view)
            } else {
                Poll::Pending(format!(
                    "old: {}; counts {}",
                    by_address(&view, &victim_address)
                        .map_or("not listed".to_owned(), Value::to_string),
                    view["counts"]
                ))
            })
        },
    )?;
    timings.push(Timing::print(
        "fault to old replica GONE and a new one UP in the view (replacement)",
        injected.elapsed(),
    ));
    let old = gone_at(&healed, &victim_address).context("old replica")?;
    ensure!(
        old["lastReason"] == "testability: forced unhealthy",
        "the gone replica does not keep its last reason: {old}"
    );
    let up: Vec<&str> = healed["replicas"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"] == "UP")
        .filter_map(|r| r["address"].as_str())
        .collect();
    println!(
        "    old {victim_address}: {} ({}), last answer {} ({}); UP now: {}",
        old["status"],
        old["reason"],
        old["lastStatus"],
        old["lastReason"],
        up.join(", ")
    );

    let url = format!("http://127.0.0.1:{observer_port}/status");
    let dom = wait::until(
        "the status page rendered by Chromium to show the same",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            let dom = Dom(browser.dump_dom(&url, RENDER_BUDGET)?);
            let Some(table) = dom.by_id("replicas") else {
                return Ok(Poll::Pending("no replicas table".into()));
            };
            let rows = Dom::rows(table);
            let old_row = rows.iter().find(|row| {
                row.contains(&format!("data-address=\"{victim_address}\""))
                    && row.contains("data-status=\"GONE\"")
            });
            let up = rows
                .iter()
                .filter(|row| row.contains("data-status=\"UP\""))
                .count();
            let ok = old_row.is_some_and(|row| {
                let text = Dom::text(row);
                text.contains("gone") && text.contains("testability: forced unhealthy")
            }) && up == REPLICAS;
            Ok(if ok {
                Poll::Ready(Dom::text(table))
            } else {
                Poll::Pending(Dom::text(table))
            })
        },
    )?;
    println!("    status page (rendered): {dom}");
    // Kept for the README: the view and the page of a real healing, as seen from a replica.
    let out = sh.current_dir().join("target").join("status-page");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("swarm-fleet.json"),
        serde_json::to_string_pretty(&view(observer_port)?)?,
    )?;
    let screenshot = out.join("swarm-status.png");
    browser.screenshot(&url, &screenshot, (1280, 720), RENDER_BUDGET)?;
    println!("    screenshot: {}", screenshot.display());
    drop(service);
    Ok(timings)
}

fn by_address<'a>(view: &'a Value, address: &str) -> Option<&'a Value> {
    view["replicas"]
        .as_array()?
        .iter()
        .find(|r| r["address"] == address)
}

/// The replica listed `GONE` at `address` (a new one may have been given the same address).
fn gone_at<'a>(view: &'a Value, address: &str) -> Option<&'a Value> {
    view["replicas"]
        .as_array()?
        .iter()
        .find(|r| r["address"] == address && r["status"] == "GONE")
}

fn by_instance<'a>(view: &'a Value, instance: &str) -> Option<&'a Value> {
    view["replicas"]
        .as_array()?
        .iter()
        .find(|r| r["instance"] == instance)
}
