//! The inner lab process: builds the lab, forms the Swarm, loads the image, then runs the
//! multi-node scenarios, each printing its timings.
//!
//! 1. Spread: three replicas land on three nodes, and each answers across the overlay network.
//! 2. Power loss of a node: Swarm marks it down and runs a replacement elsewhere; the node comes
//!    back, rejoins, and runs nothing stale.
//! 3. Network cut of a node and heal: the cut replica is replaced elsewhere while it keeps running
//!    on the cut node; after the link returns, Swarm stops the stale task. Throughout, the fleet
//!    view never shows two replicas serving one slot for longer than one health interval: once
//!    the stale replica answers again, it is shown superseded by its replacement.
//! 4. A rolling update across the nodes, to a new image and release label, under continuous load
//!    from inside the lab network: no failed request, and the fleet view, sampled from a replica
//!    all along, shows the versions changing replica by replica (old and new side by side, one
//!    replica at a time, every replica on the new version at the end).
//! 5. A replica forced unhealthy on a node that is not the one asked is replaced, and
//!    `docker service ps` on the manager says `unhealthy container`.
//! 6. The database stopped for 30 s: a shared outage that restarts nothing (see [`outage`]).
//! 7. One replica cut off from the database alone: out of readiness, then replaced.
//! 8. The same outage with the original's health check on `/health`, side by side with 6.
//!
//! Every replica uses the lab's PostgreSQL server, outside Swarm in a namespace of its own.
//!
//! The nodes that lose power or get cut are never the first node: it holds the Raft leadership
//! (losing the leader costs a re-election, a different scenario; the README has its time) and
//! the client container.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use xshell::cmd;

use super::fleet;
use super::names::NODES;
use super::outage::{self, Figures};
use super::rollout;
use super::swarm::{self, REPLICAS, SERVICE};
use super::testbed::{self, CONVERGE, Lab, NEXT, NEXT_RELEASE, describe};
use crate::docker::{self, Task, secs};
use crate::timing::Timing;
use crate::wait::{self, Poll};

/// The pause between two replicas of the rolling update (`--update-delay`).
const UPDATE_DELAY: &str = "1s";

/// The target for a node power loss with a 1 s heartbeat: back to full strength within 5 s.
const POWER_LOSS_TARGET: Duration = Duration::from_secs(5);

/// How long a healed node may take to stop its stale tasks (its agent reconnects with back-off).
const HEAL: Duration = Duration::from_secs(150);

/// A scenario: runs on the lab and returns its timings.
type Scenario = fn(&mut Lab, &mut Figures) -> Result<Vec<Timing>>;

/// Runs the inner process: build, scenarios, summary. The outer process tears down.
pub fn run_inner(selected: &[u8]) -> Result<()> {
    let mut report: Vec<(String, Duration, Vec<Timing>)> = Vec::new();
    let lab = testbed::build()?;
    let mut figures = Figures::default();
    let wants = |number: u8| selected.is_empty() || selected.contains(&number);
    let mut lab = lab;
    let scenarios: [(u8, &str, Scenario); 8] = [
        (1, "three replicas spread over three nodes", |lab, _| {
            spread(lab)
        }),
        (
            2,
            "power loss of a node: replaced elsewhere, back to full strength",
            |lab, _| power_loss(lab),
        ),
        (
            3,
            "network cut of a node and heal: replaced, then the stale task stopped",
            |lab, _| network_cut(lab),
        ),
        (
            4,
            "rolling update across the nodes under load from inside the lab, \
             the fleet view showing the versions change replica by replica",
            |lab, _| rolling_update(lab),
        ),
        (
            5,
            "a replica forced unhealthy on another node is replaced (`unhealthy container`)",
            |lab, _| unhealthy(lab),
        ),
        (
            6,
            "the database stopped for 30 s under load: a shared outage that restarts nothing",
            outage::shared_outage,
        ),
        (
            7,
            "one replica cut off from the database alone: out of readiness, then replaced",
            |lab, _| outage::cut_off_alone(lab),
        ),
        (
            8,
            "the same outage with the original's health check (`/health`), side by side",
            outage::original_semantics,
        ),
    ];
    for (number, name, body) in scenarios {
        if number != 1 && !wants(number) {
            continue;
        }
        let title = format!("lab scenario {number}: {name}");
        println!("\n== {title}");
        let start = Instant::now();
        let timings = body(&mut lab, &mut figures).with_context(|| format!("{title} failed"))?;
        println!("  passed in {}", secs(start.elapsed()));
        report.push((title, start.elapsed(), timings));
    }
    println!("\n== lab summary");
    for (name, took, timings) in &report {
        println!("  {name}: passed in {}", secs(*took));
        for timing in timings {
            println!("      {}: {}", timing.what, secs(timing.took));
        }
    }
    Ok(())
}

/// Scenario 1.
fn spread(lab: &mut Lab) -> Result<Vec<Timing>> {
    let mut timings = Vec::new();
    let mut env = vec![fleet::PEERS.to_owned()];
    env.extend(outage::service_env(lab.database.env()));
    let took = swarm::create_service(lab.manager(), &env)?;
    timings.push(Timing::print(
        "`docker service create` to 3/3 healthy",
        took,
    ));
    let tasks = swarm::serving(lab.manager())?;
    let placement = lab.placement(&tasks)?;
    for task in &tasks {
        println!("    {}", describe(lab, task));
    }
    let distinct: BTreeSet<usize> = placement.iter().copied().collect();
    ensure!(
        distinct.len() == NODES,
        "the replicas are not spread over the {NODES} nodes: {placement:?}"
    );

    // Swarm's DNS on the client's node learns of tasks on other nodes by gossip.
    let start = Instant::now();
    let expected: BTreeSet<String> = tasks
        .iter()
        .filter_map(|task| task.addresses.first())
        .map(|addr| format!("{addr}:6767"))
        .collect();
    let target = format!("tasks.{SERVICE}:6767");
    let resolved = wait::until(
        &format!("{target} to resolve to the 3 tasks inside the lab"),
        Duration::from_secs(30),
        swarm::POLL,
        || {
            let addrs: BTreeSet<String> = lab.client.resolve(&target)?.into_iter().collect();
            Ok(if addrs == expected {
                Poll::Ready(addrs)
            } else {
                Poll::Pending(format!("{addrs:?}, expected {expected:?}"))
            })
        },
    )?;
    timings.push(Timing::print(
        "3/3 healthy to `tasks.accountservice` resolving to all 3 in the lab",
        start.elapsed(),
    ));
    let urls: Vec<String> = resolved
        .iter()
        .map(|addr| format!("http://{addr}/accounts/10001"))
        .collect();
    let mut served_by = BTreeSet::new();
    for answer in lab.client.get(&urls)? {
        ensure!(
            answer.status == Some(200) && answer.body.contains("Person_1"),
            "{} answered {:?}: {}",
            answer.url,
            answer.status,
            answer.body
        );
        println!("    {} -> 200 {}", answer.url, answer.body);
        let account: serde_json::Value = serde_json::from_str(&answer.body)?;
        served_by.insert(account["servedBy"].as_str().unwrap_or_default().to_owned());
    }
    ensure!(
        served_by.len() == REPLICAS,
        "expected {REPLICAS} different servers, got {served_by:?}"
    );

    // The fleet view, asked of the replica on the second node, lists all three UP.
    let observer = tasks
        .iter()
        .zip(&placement)
        .find(|(_, index)| **index == 1)
        .and_then(|(task, _)| task.addresses.first().cloned())
        .context("no replica on the second node")?;
    let start = Instant::now();
    let ips = fleet::ips(&tasks);
    let view = wait::until(
        "the fleet view to list the 3 replicas UP",
        Duration::from_secs(20),
        swarm::POLL,
        || {
            let view = fleet::ask(&lab.client, &observer)?;
            Ok(
                if ips.iter().all(|ip| view.status_of(ip) == Some("UP"))
                    && view.replicas.len() == REPLICAS
                {
                    Poll::Ready(view)
                } else {
                    Poll::Pending(format!("{:?}", view.replicas))
                },
            )
        },
    )?;
    timings.push(Timing::print(
        "fleet view from one replica listing all 3 UP",
        start.elapsed(),
    ));
    println!(
        "    /health/fleet asked of {} ({}):",
        view.instance, lab.nodes[1].name
    );
    for task in &tasks {
        let ip = task.addresses.first().map_or("-", String::as_str);
        println!(
            "      {ip}: {} ({})",
            view.status_of(ip).unwrap_or("missing"),
            describe(lab, task)
        );
    }
    Ok(timings)
}

/// Waits until the fleet view shows every address of `lost` that no task serves any more as
/// `GONE` and every serving replica as `UP`; prints it.
///
/// The view is asked of `preferred` while it serves, else of any serving replica, and which
/// replicas serve is read anew at each look: after a node comes back Swarm may re-elect its
/// leader and move tasks again (and reuse a freed address), and a question to a manager or a
/// replica that fails meanwhile is waited out like any other not-yet. A replica asked instead of
/// `preferred` may have started after the lost ones went, and so never have known them: it may
/// leave them out, but never show them UP.
fn wait_fleet(lab: &Lab, preferred: &str, lost: &BTreeSet<String>) -> Result<()> {
    let (view, knew_them) = swarm::until(
        "the fleet view to show the lost replicas GONE and the serving ones UP",
        Duration::from_secs(30),
        || {
            let up = fleet::ips(&swarm::serving(lab.manager())?);
            let knew_them = up.contains(preferred);
            let observer = if knew_them {
                preferred
            } else {
                up.first()
                    .map(String::as_str)
                    .context("no serving replica")?
            };
            let view = fleet::ask(&lab.client, observer)?;
            let shown_gone = |ip: &String| match view.status_of(ip) {
                Some(status) => status == "GONE",
                None => !knew_them,
            };
            Ok(
                if lost.difference(&up).all(shown_gone)
                    && up.iter().all(|ip| view.status_of(ip) == Some("UP"))
                {
                    Poll::Ready((view, knew_them))
                } else {
                    Poll::Pending(format!("{:?}", view.replicas))
                },
            )
        },
    )?;
    if !knew_them {
        println!(
            "    {preferred} no longer serves (Swarm replaced it after the fault): the view is \
             asked of a replica that may not have known the lost ones"
        );
    }
    let listing: Vec<String> = view
        .replicas
        .iter()
        .map(|replica| format!("{} {}", replica.address, replica.status))
        .collect();
    println!(
        "    /health/fleet asked of {}: {}",
        view.instance,
        listing.join(", ")
    );
    Ok(())
}

/// When a fault on node `victim` was handled, counted from the fault.
struct Handled {
    /// The manager marked the node down.
    down: Duration,
    /// A replacement task's container started on another node (not yet healthy).
    started: Duration,
    /// Back at full strength: three healthy tasks, none on the victim.
    full: Duration,
}

/// Waits for a fault on node `victim` to be handled: the manager marks it down, and the service
/// is back at full strength with no serving task there.
fn wait_replaced(lab: &Lab, victim: usize, since: Instant) -> Result<Handled> {
    let hostname = lab.nodes[victim].name.clone();
    let before: BTreeSet<String> = swarm::tasks(lab.manager())?
        .into_iter()
        .map(|task| task.id)
        .collect();
    let mut down: Option<Duration> = None;
    let mut started: Option<Duration> = None;
    let full = swarm::until(
        &format!("the replicas of {hostname} to be replaced elsewhere"),
        CONVERGE,
        || {
            if down.is_none() {
                let nodes = swarm::nodes(lab.manager())?;
                if nodes
                    .iter()
                    .any(|node| node.hostname == hostname && node.state == "down")
                {
                    down = Some(since.elapsed());
                }
            }
            let tasks = swarm::tasks(lab.manager())?;
            if started.is_none()
                && tasks.iter().any(|task| {
                    !before.contains(&task.id)
                        && task.desired_state == "running"
                        && (task.state == "starting" || task.state == "running")
                })
            {
                started = Some(since.elapsed());
            }
            let serving: Vec<Task> = tasks.iter().filter(|t| t.is_serving()).cloned().collect();
            let placement = lab.placement(&serving)?;
            Ok(
                if down.is_some() && serving.len() == REPLICAS && !placement.contains(&victim) {
                    Poll::Ready(since.elapsed())
                } else {
                    Poll::Pending(swarm::describe_tasks(&tasks))
                },
            )
        },
    )?;
    Ok(Handled {
        down: down.unwrap_or(full),
        started: started.unwrap_or(full),
        full,
    })
}

/// Scenario 2.
fn power_loss(lab: &mut Lab) -> Result<Vec<Timing>> {
    let mut timings = Vec::new();
    let victim = lab.victim()?;
    let name = lab.nodes[victim].name.clone();
    let lost: Vec<Task> = swarm::serving(lab.manager())?
        .into_iter()
        .filter(|task| {
            lab.node_by_id(task.node_id.as_deref().unwrap_or_default())
                .ok()
                == Some(victim)
        })
        .collect();
    for task in &lost {
        println!("    losing {}", describe(lab, task));
    }
    let start = Instant::now();
    let killed = lab.nodes[victim].power_off()?;
    println!(
        "    {name}: power off, {killed} processes killed at once ({} to kill)",
        secs(start.elapsed())
    );
    let handled = wait_replaced(lab, victim, start)?;
    let full = handled.full;
    timings.push(Timing::print(
        format!("power loss to {name} marked down"),
        handled.down,
    ));
    timings.push(Timing::print(
        "power loss to a replacement container started elsewhere",
        handled.started,
    ));
    timings.push(Timing::print(
        "power loss to back at 3/3 healthy elsewhere",
        full,
    ));
    println!(
        "    target {}: {}",
        secs(POWER_LOSS_TARGET),
        if full <= POWER_LOSS_TARGET {
            "met"
        } else {
            "NOT met"
        }
    );
    let now = swarm::serving(lab.manager())?;
    for task in &now {
        println!("    now {}", describe(lab, task));
    }
    let observer = now
        .first()
        .and_then(|task| task.addresses.first().cloned())
        .context("no serving replica")?;
    wait_fleet(lab, &observer, &fleet::ips(&lost))?;
    timings.push(Timing::print(
        "power loss to the fleet view showing the lost replica GONE, the new one UP",
        start.elapsed(),
    ));

    let power_on = Instant::now();
    lab.nodes[victim].power_on()?;
    swarm::wait_ready(&lab.nodes, CONVERGE)?;
    timings.push(Timing::print(
        format!("power on to {name} ready in the swarm again"),
        power_on.elapsed(),
    ));
    let running = lab.wait_only_replicas(&format!(
        "{REPLICAS} containers of the service to run after {name} came back"
    ))?;
    let again: Vec<String> = running
        .iter()
        .filter(|container| container.node == victim)
        .map(|container| container.describe(&lab.nodes))
        .collect();
    ensure!(
        again.is_empty(),
        "{name} runs containers of the service again after power on: {again:?}"
    );
    timings.push(Timing::print(
        format!("power on to {REPLICAS} containers of the service running, none on {name}"),
        power_on.elapsed(),
    ));
    Ok(timings)
}

/// Scenario 3.
fn network_cut(lab: &mut Lab) -> Result<Vec<Timing>> {
    let mut timings = Vec::new();
    swarm::wait_ready(&lab.nodes, CONVERGE)?;
    let victim = lab.victim()?;
    let name = lab.nodes[victim].name.clone();
    let cut_tasks: Vec<Task> = swarm::serving(lab.manager())?
        .into_iter()
        .filter(|task| {
            lab.node_by_id(task.node_id.as_deref().unwrap_or_default())
                .ok()
                == Some(victim)
        })
        .collect();
    for task in &cut_tasks {
        println!("    cutting {}", describe(lab, task));
    }
    let stale: Vec<String> = cut_tasks
        .iter()
        .map(|task| swarm::container_of(task).map(str::to_owned))
        .collect::<Result<_>>()?;

    let observer = swarm::serving(lab.manager())?
        .into_iter()
        .find(|task| !cut_tasks.iter().any(|cut| cut.id == task.id))
        .and_then(|task| task.addresses.first().cloned())
        .context("no replica outside the cut node")?;
    let watch = fleet::Watch::start(&lab.client, &observer)?;
    let start = Instant::now();
    lab.nodes[victim].cut(&lab.host)?;
    let handled = wait_replaced(lab, victim, start)?;
    timings.push(Timing::print(
        format!("cut to {name} marked down"),
        handled.down,
    ));
    timings.push(Timing::print(
        "cut to a replacement container started elsewhere",
        handled.started,
    ));
    timings.push(Timing::print(
        "cut to back at 3/3 healthy elsewhere",
        handled.full,
    ));
    // A partition, not a crash: the cut replicas still run on their node, which cannot hear
    // that they were replaced.
    for container in &stale {
        let state = docker::container_state(&lab.nodes[victim].sh, container)?;
        ensure!(
            state.running,
            "the cut replica {container} stopped during the cut ({})",
            state.status
        );
    }
    println!(
        "    during the cut: {} stale replica(s) still running on {name}, {REPLICAS} serving elsewhere",
        stale.len()
    );

    let healed = Instant::now();
    lab.nodes[victim].heal(&lab.host)?;
    let sh = &lab.nodes[victim].sh;
    wait::until(
        &format!("{name} to stop its stale replicas"),
        HEAL,
        swarm::POLL,
        || {
            let mut running = Vec::new();
            for container in &stale {
                if docker::container_state(sh, container)?.running {
                    running.push(container.clone());
                }
            }
            Ok(if running.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("still running: {running:?}"))
            })
        },
    )?;
    let stopped = Instant::now();
    timings.push(Timing::print(
        format!("heal to the stale task(s) stopped on {name}"),
        stopped.duration_since(healed),
    ));
    swarm::wait_ready(&lab.nodes, CONVERGE)?;
    timings.push(Timing::print(
        format!("heal to {name} ready in the swarm again"),
        healed.elapsed(),
    ));
    lab.wait_only_replicas(&format!(
        "{REPLICAS} containers of the service to run after the heal"
    ))?;
    timings.push(Timing::print(
        format!("heal to {REPLICAS} containers of the service running"),
        healed.elapsed(),
    ));
    swarm::wait_full_strength(
        lab.manager(),
        "3/3 healthy after the heal",
        CONVERGE,
        |_| true,
    )?;
    timings.push(Timing::print("heal to 3/3 healthy", healed.elapsed()));
    wait_fleet(lab, &observer, &fleet::ips(&cut_tasks))?;
    let watched = watch.finish()?;
    let window = match (watched.first_duplicate, watched.last_duplicate) {
        (Some(first), Some(last)) => format!(
            "from {} to {} after the heal",
            secs(first.saturating_duration_since(healed)),
            secs(last.saturating_duration_since(healed))
        ),
        _ => "never".to_owned(),
    };
    println!(
        "    fleet view sampled {} times ({} unreadable) from the cut until after the heal; \
         a slot claimed by two replicas UP (neither superseded): {window}, longest run {}{}",
        watched.samples,
        watched.unread,
        secs(watched.longest_run),
        watched
            .example
            .as_deref()
            .map(|example| format!(" ({example})"))
            .unwrap_or_default()
    );
    let resolved = match (watched.first_superseded, watched.last_superseded) {
        (Some(first), Some(last)) => format!(
            "from {} to {} after the heal ({} views)",
            secs(first.saturating_duration_since(healed)),
            secs(last.saturating_duration_since(healed)),
            watched.superseded_samples
        ),
        _ => "never".to_owned(),
    };
    println!("    a stale replica shown SUPERSEDED while it answered UP: {resolved}");
    ensure!(
        watched.samples > 0,
        "the fleet view could not be read during the cut"
    );
    // During the cut the stale replicas are out of reach: no view may count them UP. After the
    // heal the cut node rejoins Swarm's DNS with its stale tasks, which still answer UP until
    // Swarm stops them; each reports its slot, and the view shows the one that started first
    // (the stale one) superseded by its replacement, so at no point may two replicas serve one
    // slot in the view for longer than the one health interval a view may lag.
    ensure!(
        watched.first_duplicate.is_none_or(|first| first >= healed),
        "the fleet view showed a slot claimed twice during the cut ({window})"
    );
    ensure!(
        watched.longest_run <= fleet::INTERVAL,
        "the fleet view showed a slot claimed by two replicas UP, neither superseded, for {} \
         in a row, longer than one health interval ({}; {window})",
        secs(watched.longest_run),
        secs(fleet::INTERVAL)
    );
    Ok(timings)
}

/// Scenario 4.
fn rolling_update(lab: &mut Lab) -> Result<Vec<Timing>> {
    let mut timings = Vec::new();
    swarm::wait_full_strength(
        lab.manager(),
        "3/3 healthy before the update",
        CONVERGE,
        |_| true,
    )?;
    let target = format!("tasks.{SERVICE}:6767");
    let load = lab.client.load(&target, 4)?;
    let warm = wait::until(
        "the load to get answers",
        Duration::from_secs(20),
        swarm::POLL,
        || {
            Ok(match load.progress() {
                Some(report) if report.ok > 50 => Poll::Ready(report),
                other => Poll::Pending(format!("{other:?}")),
            })
        },
    )?;
    println!(
        "    before the update: {} ok, {} failed, over {:?}",
        warm.ok, warm.failed, warm.backends
    );

    // Asked by the service's name, so that whichever replica is running answers: every one of
    // them is replaced during the update.
    let sampler = rollout::Sampler::start(&lab.client, &format!("tasks.{SERVICE}"));
    let baseline = wait::until(
        "the fleet view to show the replicas on one version",
        Duration::from_secs(20),
        swarm::POLL,
        || {
            Ok(match sampler.latest() {
                Some(sample)
                    if sample.live.len() == REPLICAS && sample.single_version().is_some() =>
                {
                    Poll::Ready(sample)
                }
                other => Poll::Pending(format!("{other:?}")),
            })
        },
    )?;
    let old = baseline.single_version().unwrap_or_default().to_owned();
    let crate_version = old.split('+').next().unwrap_or_default();
    let new = format!("{crate_version}+{NEXT_RELEASE}");
    println!(
        "    the fleet view shows {REPLICAS} replicas on {old}; updating to {NEXT} with \
         ACCOUNTSERVICE_RELEASE={NEXT_RELEASE}, so the new ones report {new}"
    );

    let start = Instant::now();
    let before = docker::update_status(lab.manager(), SERVICE)?.and_then(|s| s.started_at);
    let release = format!("ACCOUNTSERVICE_RELEASE={NEXT_RELEASE}");
    // A pause between replicas (the stack file's is 5 s) makes each step of the update last
    // longer than a fleet view can lag (one health interval) plus the sampling period, so the
    // samples see every step: two replicas moving in one sample is then a real finding.
    cmd!(
        lab.manager(),
        "docker service update --detach --no-resolve-image --update-delay {UPDATE_DELAY}
            --env-add {release} --image {NEXT} {SERVICE}"
    )
    .quiet()
    .ignore_stdout()
    .run()?;
    wait::until(
        "the rolling update to complete",
        Duration::from_secs(180),
        Duration::from_millis(500),
        || {
            let status = docker::update_status(lab.manager(), SERVICE)?;
            match status {
                Some(status) if status.started_at != before && status.state == "completed" => {
                    Ok(Poll::Ready(()))
                }
                Some(status)
                    if status.started_at != before
                        && ["paused", "rollback_completed", "rollback_paused"]
                            .contains(&status.state.as_str()) =>
                {
                    bail!("the update ended {}: {}", status.state, status.message)
                }
                other => Ok(Poll::Pending(format!("{other:?}"))),
            }
        },
    )?;
    let tasks = swarm::wait_full_strength(lab.manager(), "3/3 on the new image", CONVERGE, |t| {
        t.iter().all(|task| task.image == NEXT)
    })?;
    timings.push(Timing::print(
        format!(
            "start-first rolling update of 3 replicas on 3 nodes (--update-delay {UPDATE_DELAY})"
        ),
        start.elapsed(),
    ));
    let placement: BTreeSet<usize> = lab.placement(&tasks)?.into_iter().collect();
    println!("    new replicas on {} node(s)", placement.len());

    // The view asks the replicas at most once per health interval, so it may lag Swarm by that.
    let new_ips = fleet::ips(&tasks);
    wait::until(
        &format!("the fleet view to show the new replicas, and only them, on {new}"),
        Duration::from_secs(20),
        swarm::POLL,
        || {
            Ok(match sampler.latest() {
                Some(sample)
                    if sample.count(&new) == REPLICAS
                        && sample.live.keys().cloned().collect::<BTreeSet<_>>() == new_ips =>
                {
                    Poll::Ready(())
                }
                other => Poll::Pending(format!("{other:?}, new tasks {new_ips:?}")),
            })
        },
    )?;
    let (mut samples, unread) = sampler.finish()?;
    samples.retain(|sample| sample.at >= baseline.at);
    let observers: BTreeSet<&str> = samples.iter().map(|s| s.observer.as_str()).collect();
    println!(
        "    fleet view sampled {} times ({unread} unread) every {} ms from {} replica(s), \
         from the last look before the update; each change of the live replicas, timed from \
         the update command (a replica's view may be one health interval old, so a line may \
         step back):",
        samples.len(),
        rollout::EVERY.as_millis(),
        observers.len()
    );
    rollout::print_timeline(&samples, start, &old, &new);
    let progress = rollout::check(&samples, &old, &new, REPLICAS)?;
    let since_start = |index: usize| samples[index].at.saturating_duration_since(start);
    timings.push(Timing::print(
        format!("update command to the fleet view showing {old} and {new} side by side"),
        since_start(progress.first_mixed),
    ));
    for (k, index) in progress.new_reached.iter().enumerate() {
        timings.push(Timing::print(
            format!(
                "update command to the fleet view showing {}/{REPLICAS} on {new}",
                k + 1
            ),
            since_start(*index),
        ));
    }
    if let Some(last) = progress.old_left.last() {
        timings.push(Timing::print(
            format!("update command to the fleet view showing no replica on {old}"),
            since_start(*last),
        ));
    }
    // Every new replica must have served, which takes a few DNS refreshes after the last one.
    let new_addrs: BTreeSet<String> = tasks
        .iter()
        .filter_map(|task| task.addresses.first().cloned())
        .collect();
    wait::until(
        "every new replica to answer the load",
        Duration::from_secs(20),
        swarm::POLL,
        || {
            let report = load.progress().unwrap_or_default();
            let served: BTreeSet<String> = report.served_by.keys().cloned().collect();
            Ok(if served.is_superset(&new_addrs) {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("answered by {served:?}, new tasks {new_addrs:?}"))
            })
        },
    )?;
    let report = load.finish()?;
    println!(
        "    requests from inside the lab: {} ok, {} failed; answered by {} instances: {:?}",
        report.ok,
        report.failed,
        report.served_by.len(),
        report.served_by
    );
    for error in &report.errors {
        println!("      failed {error}");
    }
    ensure!(
        report.failed == 0,
        "{} request(s) failed during the rolling update",
        report.failed
    );
    ensure!(
        report.ok > warm.ok && report.served_by.len() > REPLICAS,
        "the load did not reach both old and new replicas: {:?}",
        report.served_by
    );
    Ok(timings)
}

/// Scenario 5.
fn unhealthy(lab: &mut Lab) -> Result<Vec<Timing>> {
    let mut timings = Vec::new();
    let tasks = swarm::wait_full_strength(lab.manager(), "3/3 healthy", CONVERGE, |_| true)?;
    let placement = lab.placement(&tasks)?;
    let (task, victim) = tasks
        .iter()
        .zip(placement)
        .find(|(_, index)| *index != 0)
        .context("no replica on a node other than the manager")?;
    let node = &lab.nodes[victim];
    let container = swarm::container_of(task)?.to_owned();
    let addr = task.addresses.first().context("task without address")?;
    println!("    forcing unhealthy: {}", describe(lab, task));
    let url = format!(
        "http://{addr}:{}/testability/healthy/false",
        docker::MANAGEMENT_PORT
    );
    let start = Instant::now();
    let answer = lab.client.get(std::slice::from_ref(&url))?;
    ensure!(
        answer.first().and_then(|answer| answer.status) == Some(200),
        "{url} answered {answer:?}"
    );
    wait::until(
        "Docker on the node to mark the container unhealthy",
        Duration::from_secs(30),
        swarm::POLL,
        || {
            let state = docker::container_state(&node.sh, &container)?;
            Ok(if state.health_status() == "unhealthy" {
                Poll::Ready(())
            } else {
                Poll::Pending(state.health_status().to_owned())
            })
        },
    )?;
    timings.push(Timing::print(
        format!("forced unhealthy to `unhealthy` on {}", node.name),
        start.elapsed(),
    ));
    let old_id = task.id.clone();
    swarm::wait_full_strength(
        lab.manager(),
        "a replacement to be healthy",
        CONVERGE,
        |t| t.iter().all(|task| task.id != old_id),
    )?;
    timings.push(Timing::print(
        "forced unhealthy to back at 3/3 healthy",
        start.elapsed(),
    ));
    let format = "{{.ID}}  {{.Node}}  {{.DesiredState}}  {{.CurrentState}}  {{.Error}}";
    let listing = cmd!(
        lab.manager(),
        "docker service ps --no-trunc --format {format} {SERVICE}"
    )
    .quiet()
    .read()?;
    let line = listing
        .lines()
        .find(|line| line.starts_with(&old_id))
        .context("the old task is not in `docker service ps`")?;
    println!("    docker service ps (on {}): {line}", lab.nodes[0].name);
    ensure!(
        line.contains("unhealthy container"),
        "`docker service ps` does not say `unhealthy container` for the replaced task: {line}"
    );
    Ok(timings)
}
