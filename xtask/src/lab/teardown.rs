//! Tearing the lab down, and proving that nothing of it is left.
//!
//! Tear-down works from what it can find, not from what a run remembers, so it also cleans up
//! after a run that was killed half-way: every process in a lab cgroup, in a lab network
//! namespace, named by a lab pidfile or running from the lab directory is killed (and nothing
//! else), then the namespaces, cgroups, mounts and files go. The host's own Docker engine is
//! never touched.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

use super::names::{PREFIX, ROOT};
use super::{cgroup, proc};
use crate::wait::{self, Poll};

/// Where `ip netns` keeps its namespace files.
const NETNS_DIR: &str = "/run/netns";

/// Written into the lab directory when the lab, not someone before it, made `/run/netns` a mount
/// point (as the first `ip netns add` does), so tear-down knows to undo it.
const NETNS_MARKER: &str = "made-run-netns-mount";

/// The lab's network namespaces, by name.
pub fn namespaces() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(PREFIX))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Mount points of the host's mount namespace (the fifth field of each mountinfo line).
fn mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4).map(str::to_owned))
        .collect()
}

/// Whether `/run/netns` is a mount point now.
pub fn run_netns_mounted() -> bool {
    mount_points().iter().any(|point| point == NETNS_DIR)
}

/// Records, before the first namespace is made, whether the lab will be the one making
/// `/run/netns` a mount point.
pub fn note_run_netns() -> Result<()> {
    if !run_netns_mounted() {
        let marker = Path::new(ROOT).join(NETNS_MARKER);
        std::fs::write(&marker, "").with_context(|| format!("writing {}", marker.display()))?;
    }
    Ok(())
}

/// Every process attributable to the lab.
fn lab_processes() -> BTreeSet<u32> {
    let mut pids = BTreeSet::new();
    for dir in cgroup::find(PREFIX) {
        pids.extend(cgroup::procs(&dir));
    }
    let inodes: BTreeSet<u64> = namespaces()
        .iter()
        .filter_map(|name| proc::netns_inode(&Path::new(NETNS_DIR).join(name)))
        .collect();
    pids.extend(proc::in_netns(&inodes));
    pids.extend(pidfile_daemons());
    pids.extend(
        proc::mentioning(ROOT)
            .into_iter()
            .filter(|(pid, _)| {
                proc::comm(*pid)
                    .is_some_and(|comm| LAB_PROGRAMS.iter().any(|p| comm.starts_with(p)))
            })
            .map(|(pid, _)| pid),
    );
    pids
}

/// Programs the lab runs with its directory on the command line. Others that mention it (a
/// `tail -f` of a node's log) are not the lab's.
const LAB_PROGRAMS: [&str; 6] = [
    "dockerd",
    "containerd",
    "runc",
    "docker-proxy",
    "xtask",
    "nsenter",
];

/// Daemons named by the lab's pidfiles that are still dockerd (a PID can be reused).
fn pidfile_daemons() -> BTreeSet<u32> {
    let Ok(entries) = std::fs::read_dir(ROOT) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("dockerd.pid")).ok())
        .filter_map(|text| text.trim().parse::<u32>().ok())
        .filter(|pid| proc::comm(*pid).as_deref() == Some("dockerd"))
        .collect()
}

/// Removes everything of the lab that exists. Safe to call at any time, any number of times.
pub fn teardown(host: &Shell) -> Result<()> {
    // Processes first: cgroup by cgroup (frozen, then killed), then any stragglers.
    for dir in cgroup::find(PREFIX) {
        if dir.starts_with(cgroup::tracking_root()) {
            cgroup::kill_all(&dir)?;
        }
    }
    wait::until(
        "every lab process to exit",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let left = lab_processes();
            if left.is_empty() {
                return Ok(Poll::Ready(()));
            }
            proc::kill(&left);
            Ok(Poll::Pending(format!("PIDs {left:?}")))
        },
    )?;
    // Deleting a namespace deletes its end of each veth pair, and so the pair.
    for name in namespaces() {
        cmd!(host, "ip netns delete {name}").quiet().run()?;
    }
    for dir in cgroup::find(PREFIX) {
        cgroup::remove(&dir)?;
    }
    // Nothing of the nodes is mounted in the host's namespace (their mounts lived and died in
    // their own), but a daemon killed at the wrong moment must not keep the directory.
    let mut inside: Vec<String> = mount_points()
        .into_iter()
        .filter(|point| point.starts_with(ROOT))
        .collect();
    inside.sort_by_key(|point| std::cmp::Reverse(point.len()));
    for point in inside {
        cmd!(host, "umount --lazy {point}").quiet().run()?;
    }
    let root = PathBuf::from(ROOT);
    let made_netns_mount = root.join(NETNS_MARKER).exists();
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("removing {ROOT}"))?;
    }
    let netns_empty = std::fs::read_dir(NETNS_DIR).is_ok_and(|mut dir| dir.next().is_none());
    if made_netns_mount && netns_empty && run_netns_mounted() {
        cmd!(host, "umount {NETNS_DIR}").quiet().run()?;
        std::fs::remove_dir(NETNS_DIR).with_context(|| format!("removing {NETNS_DIR}"))?;
    }
    Ok(())
}

/// Everything of the lab that still exists: namespaces, mounts, cgroups, processes, files, and a
/// `/run/netns` mount that was not there before the run (`netns_mounted_before`).
pub fn leftovers(netns_mounted_before: bool) -> Vec<String> {
    let mut found = Vec::new();
    found.extend(
        namespaces()
            .into_iter()
            .map(|name| format!("network namespace {name}")),
    );
    found.extend(
        mount_points()
            .into_iter()
            .filter(|point| {
                point.starts_with(ROOT) || point.starts_with(&format!("{NETNS_DIR}/{PREFIX}"))
            })
            .map(|point| format!("mount {point}")),
    );
    if run_netns_mounted() && !netns_mounted_before {
        found.push(format!("mount {NETNS_DIR} (made by the lab)"));
    }
    found.extend(
        cgroup::find(PREFIX)
            .into_iter()
            .map(|dir| format!("cgroup {}", dir.display())),
    );
    found.extend(
        lab_processes()
            .into_iter()
            .map(|pid| format!("process {pid} ({})", proc::comm(pid).unwrap_or_default())),
    );
    if Path::new(ROOT).exists() {
        found.push(format!("directory {ROOT}"));
    }
    found
}
