//! `cargo xtask lab` (also `cargo xtask e2e --nodes 3`): a real three-node Swarm on this one
//! machine, the scenarios that need several nodes, and a tear-down that leaves nothing behind.
//!
//! The lab: a switch namespace holding a bridge, three node namespaces plugged into it by veth
//! pairs (172.31.250.11-13, an address range that exists only inside the lab), and one Docker
//! daemon per node with its own data root, exec root, pidfile, socket, cgroup parent and empty
//! configuration, run as an unprivileged-looking host would be. The three nodes form a Swarm of
//! three managers with a 1 s dispatcher heartbeat. The image is built on the host's engine, saved
//! once and loaded into each node; nothing else touches the host's engine.
//!
//! The task runs in two processes. The outer one owns the clean-up: it runs the lab in a child
//! process (this binary with `--inner`), and when the child ends — passed, failed, crashed, or
//! killed because the outer one got SIGINT, SIGTERM or SIGHUP — it tears the lab down from what it
//! finds (cgroups, namespaces, pidfiles, the lab directory; never by process name) and checks
//! that nothing is left. A clean-up that never races the scenarios is what makes Ctrl-C safe.

mod cgroup;
pub mod client;
mod database;
mod fleet;
mod names;
mod node;
mod outage;
mod proc;
mod rollout;
mod scenarios;
mod swarm;
mod teardown;
mod testbed;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use xshell::{Shell, cmd};

use crate::docker::secs;
use crate::image::{self, LATEST};
use crate::project::Project;

use self::names::{NODES, ROOT};
use self::node::Node;

/// Options of `cargo xtask lab`.
#[derive(Debug, Args, Clone, Default)]
pub struct Options {
    /// Use the existing accountservice:latest of the host's engine instead of building it.
    #[arg(long)]
    pub no_build: bool,
    /// Load the image from this `docker save` archive and never touch the host's engine.
    #[arg(long, conflicts_with = "no_build")]
    pub image_archive: Option<PathBuf>,
    /// Run only these scenarios (2-8; repeatable); scenario 1 always runs, as it sets the service
    /// up. All of them by default, as CI runs them. Scenario 8 compares with 6 and needs it.
    #[arg(long = "scenario", value_parser = clap::value_parser!(u8).range(1..=8))]
    pub scenarios: Vec<u8>,
    /// Internal: run the lab itself (the outer process cleans up after it).
    #[arg(long, hide = true)]
    pub inner: bool,
}

/// Runs the task: the outer process, or the inner one with `--inner`.
pub fn run(sh: &Shell, project: &Project, options: &Options) -> Result<()> {
    if options.inner {
        return scenarios::run_inner(&options.scenarios);
    }
    let uid = cmd!(sh, "id -u").quiet().read()?;
    ensure!(
        uid == "0",
        "the lab needs root (network namespaces, cgroups, dockerd)"
    );
    let started = Instant::now();

    // Leftovers of an earlier run that was killed too hard to clean up (SIGKILL of this process).
    let before = teardown::leftovers(true);
    if !before.is_empty() {
        println!(
            "removing leftovers of an earlier lab: {}",
            before.join(", ")
        );
        teardown::teardown(sh)?;
    }
    let netns_mounted_before = teardown::run_netns_mounted();

    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&interrupted))
            .context("installing the signal handlers")?;
    }

    let mut host_before = None;
    let result = prepare_and_run(sh, project, options, &interrupted, &mut host_before);

    let teardown_start = Instant::now();
    if result.is_err() {
        print_logs();
    }
    keep_logs(&project.target_dir.join("lab-logs"));
    let cleaned = teardown::teardown(sh);
    let left = teardown::leftovers(netns_mounted_before);
    println!("\n== lab tear-down: {}", secs(teardown_start.elapsed()));
    if left.is_empty() {
        println!(
            "  nothing left: no lab namespace, mount, cgroup, process or file; /run/netns as before"
        );
    } else {
        eprintln!("  the lab left behind: {}", left.join(", "));
    }
    let host_after = host_before.as_ref().map(|_| host_engine(sh));
    result?;
    cleaned.context("tearing the lab down")?;
    ensure!(left.is_empty(), "the lab left behind: {}", left.join(", "));
    match (host_before, host_after) {
        (Some(before), Some(after)) => {
            let after = after?;
            ensure!(
                before == after,
                "the host's engine changed during the run:\nbefore: {before}\nafter: {after}"
            );
            println!("  the host's engine as found: {after}");
        }
        _ => println!("  the host's engine was not used (--image-archive)"),
    }
    println!("lab: passed in {}", secs(started.elapsed()));
    Ok(())
}

/// Saves the image into the lab directory and runs the inner process until it ends or a signal
/// comes.
fn prepare_and_run(
    sh: &Shell,
    project: &Project,
    options: &Options,
    interrupted: &AtomicBool,
    host_before: &mut Option<String>,
) -> Result<()> {
    std::fs::create_dir_all(ROOT).with_context(|| format!("creating {ROOT}"))?;
    let archive = Path::new(ROOT).join("image.tar");
    match &options.image_archive {
        Some(given) => {
            std::fs::copy(given, &archive)
                .with_context(|| format!("copying {}", given.display()))?;
        }
        None => {
            if options.no_build {
                image::image_size(sh, LATEST)
                    .context("--no-build needs an existing accountservice:latest")?;
            } else {
                image::run(sh, project)?;
            }
            cmd!(sh, "docker save --output {archive} {LATEST}")
                .quiet()
                .run()
                .context("saving the image from the host's engine")?;
            *host_before = Some(host_engine(sh)?);
        }
    }

    let exe = std::env::current_exe().context("locating xtask's own binary")?;
    let mut command = Command::new(exe);
    command.args(["lab", "--inner"]);
    for scenario in &options.scenarios {
        command.arg(format!("--scenario={scenario}"));
    }
    let mut child = command.spawn().context("starting the lab process")?;
    loop {
        if let Some(status) = child.try_wait()? {
            ensure!(status.success(), "the lab failed ({status})");
            return Ok(());
        }
        if interrupted.load(Ordering::Relaxed) {
            // The child is ours; stop it before tearing down what it may still be creating.
            child.kill()?;
            child.wait()?;
            bail!("interrupted: the lab was stopped and is torn down");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the host's engine holds (containers, networks, volumes, images, Swarm state), to show
/// that the lab left it as it found it.
fn host_engine(sh: &Shell) -> Result<String> {
    let swarm = crate::docker::swarm_state(sh)?;
    let containers = cmd!(sh, "docker ps --all --quiet --no-trunc")
        .quiet()
        .read()?;
    let networks = cmd!(sh, "docker network ls --quiet --no-trunc")
        .quiet()
        .read()?;
    let volumes = cmd!(sh, "docker volume ls --quiet").quiet().read()?;
    let images = cmd!(sh, "docker images --quiet --no-trunc")
        .quiet()
        .read()?;
    let count = |text: &str| text.lines().count();
    Ok(format!(
        "swarm {swarm}, {} containers, {} networks, {} volumes, {} images (ids {:x})",
        count(&containers),
        count(&networks),
        count(&volumes),
        count(&images),
        fingerprint(&[&containers, &networks, &volumes, &images])
    ))
}

/// A stable fingerprint of some listings (FNV-1a), so the summary line stays short.
fn fingerprint(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|part| part.bytes().chain([0])) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Copies each node's daemon log out of the lab before tear-down removes it (best effort: a
/// missing log only means that node never started).
fn keep_logs(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    for index in 1..=NODES {
        let log = Path::new(ROOT).join(format!("node{index}/dockerd.log"));
        let _ = std::fs::copy(&log, dir.join(format!("node{index}-dockerd.log")));
    }
}

/// The end of each node's daemon log, when a run failed.
fn print_logs() {
    for index in 1..=NODES {
        if let Ok(node) = Node::new(index) {
            let tail = node.log_tail(8);
            if !tail.is_empty() {
                eprintln!("\n-- {} dockerd log (last lines):\n{tail}", node.name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_tells_listings_apart_and_is_stable() {
        assert_eq!(fingerprint(&["a", "b"]), fingerprint(&["a", "b"]));
        assert_ne!(fingerprint(&["a", "b"]), fingerprint(&["ab", ""]));
        assert_ne!(fingerprint(&["c1\nc2"]), fingerprint(&["c1"]));
    }
}
