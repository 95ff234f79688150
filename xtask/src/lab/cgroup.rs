//! The lab's control groups: where its processes are tracked, frozen and killed.
//!
//! Every process the lab starts lives in a cgroup whose top-level name starts with the lab's
//! prefix: each node's `dockerd`, `containerd` and shims in `<node>/daemon`, its containers in
//! `<node>/<id>` (Docker's `--cgroup-parent`), the in-lab clients in `<prefix>-client`. That is
//! what lets a power loss kill every process of one node and nothing else, and what lets the
//! tear-down find every lab process even after the task that started them was killed.
//!
//! Both cgroup v1 (the freezer hierarchy tracks and freezes) and v2 (the unified root) are
//! handled; this machine runs v1.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::proc;
use crate::wait::{self, Poll};

const ROOT: &str = "/sys/fs/cgroup";

/// The hierarchy that tracks and freezes lab processes: v1's freezer, or v2's unified root.
pub fn tracking_root() -> PathBuf {
    let freezer = Path::new(ROOT).join("freezer");
    if freezer.join("cgroup.procs").exists() {
        freezer
    } else {
        PathBuf::from(ROOT)
    }
}

/// Every mounted hierarchy (v1: one per controller plus named ones; v2: the root), since Docker
/// creates a container's cgroup in each of them.
pub fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new(ROOT);
    if root.join("cgroup.procs").exists() {
        return vec![root.to_path_buf()];
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.join("cgroup.procs").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Top-level cgroups whose name starts with `prefix`, in every hierarchy.
pub fn find(prefix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for hierarchy in hierarchies() {
        let Ok(entries) = std::fs::read_dir(&hierarchy) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(prefix) && entry.path().is_dir() {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

/// Creates `name` (a path relative to the tracking hierarchy, e.g. `aslab-node1/daemon`) and
/// returns its `cgroup.procs` file, which a process joins by writing its PID into.
pub fn create(name: &str) -> Result<PathBuf> {
    let dir = tracking_root().join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating cgroup {}", dir.display()))?;
    Ok(dir.join("cgroup.procs"))
}

/// Every PID in a cgroup and its descendants.
pub fn procs(dir: &Path) -> BTreeSet<u32> {
    let mut pids = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(
                text.lines()
                    .filter_map(|line| line.trim().parse::<u32>().ok()),
            );
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            stack.extend(
                entries
                    .flatten()
                    .map(|entry| entry.path())
                    .filter(|path| path.is_dir()),
            );
        }
    }
    pids
}

/// Freezes (or thaws) a cgroup and its descendants, so that a kill hits them all at one instant
/// and none can start a replacement in between. A cgroup without a freezer is left as it is.
pub fn freeze(dir: &Path, frozen: bool) -> Result<()> {
    let v1 = dir.join("freezer.state");
    let v2 = dir.join("cgroup.freeze");
    let (file, value) = if v1.exists() {
        (v1, if frozen { "FROZEN" } else { "THAWED" })
    } else if v2.exists() {
        (v2, if frozen { "1" } else { "0" })
    } else {
        return Ok(());
    };
    std::fs::write(&file, value).with_context(|| format!("writing {value} to {}", file.display()))
}

/// Kills every process of a cgroup (and of its descendants) with SIGKILL, frozen first, and waits
/// until it is empty. Returns how many processes were killed.
pub fn kill_all(dir: &Path) -> Result<usize> {
    let mut killed = BTreeSet::new();
    freeze(dir, true)?;
    let pids = procs(dir);
    proc::kill(&pids);
    killed.extend(pids);
    // A SIGKILLed process in a frozen cgroup dies only once thawed.
    freeze(dir, false)?;
    wait::until(
        &format!("every process of {} to exit", dir.display()),
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            let left = procs(dir);
            if left.is_empty() {
                return Ok(Poll::Ready(()));
            }
            // Anything that got in after the freeze is killed too.
            proc::kill(&left);
            killed.extend(left.iter().copied());
            Ok(Poll::Pending(format!("PIDs {left:?}")))
        },
    )?;
    Ok(killed.len())
}

/// Removes a cgroup tree, leaves first (a cgroup directory is removed with `rmdir`, never by
/// deleting its files).
pub fn remove(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let children: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect();
    for child in children {
        remove(&child)?;
    }
    // The kernel may still be releasing the last exited process.
    wait::until(
        &format!("cgroup {} to be removable", dir.display()),
        Duration::from_secs(10),
        Duration::from_millis(50),
        || match std::fs::remove_dir(dir) {
            Ok(()) => Ok(Poll::Ready(())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Poll::Ready(())),
            Err(err) => Ok(Poll::Pending(err.to_string())),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procs_reads_a_cgroup_and_all_its_descendants() {
        let dir = tempfile::tempdir().unwrap();
        let child = dir.path().join("daemon");
        let grandchild = dir.path().join("c0ffee").join("inner");
        std::fs::create_dir_all(&child).unwrap();
        std::fs::create_dir_all(&grandchild).unwrap();
        std::fs::write(dir.path().join("cgroup.procs"), "").unwrap();
        std::fs::write(child.join("cgroup.procs"), "10\n11\n").unwrap();
        std::fs::write(grandchild.join("cgroup.procs"), "12\n").unwrap();
        assert_eq!(procs(dir.path()), BTreeSet::from([10, 11, 12]));
    }

    #[test]
    fn removing_a_cgroup_that_is_gone_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        remove(&dir.path().join("never-made")).unwrap();
    }
}
