//! Processes, as `/proc` shows them: which belong to a network namespace, which name a path in
//! their command line, and killing a set of them by PID.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Every PID on the machine, with its `/proc` directory.
fn all() -> Vec<(u32, std::path::PathBuf)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((pid, entry.path()))
        })
        .collect()
}

/// The inode of a network namespace file (`/run/netns/<name>` or `/proc/<pid>/ns/net`), which
/// identifies the namespace.
pub fn netns_inode(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|meta| meta.ino())
}

/// PIDs of the processes whose network namespace is one of `inodes`.
pub fn in_netns(inodes: &BTreeSet<u64>) -> BTreeSet<u32> {
    if inodes.is_empty() {
        return BTreeSet::new();
    }
    all()
        .into_iter()
        .filter(|(_, dir)| {
            netns_inode(&dir.join("ns/net")).is_some_and(|ino| inodes.contains(&ino))
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// PIDs (with their command lines) of processes whose command line mentions `needle`.
pub fn mentioning(needle: &str) -> Vec<(u32, String)> {
    let own = std::process::id();
    all()
        .into_iter()
        .filter(|(pid, _)| *pid != own)
        .filter_map(|(pid, dir)| {
            let raw = std::fs::read(dir.join("cmdline")).ok()?;
            let line = String::from_utf8_lossy(&raw).replace('\0', " ");
            line.contains(needle).then(|| (pid, line.trim().to_owned()))
        })
        .collect()
}

/// The short command name of a process (`/proc/<pid>/comm`), if it still exists.
pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|name| name.trim().to_owned())
}

/// Sends SIGKILL to each PID; ones that have exited already are ignored.
pub fn kill(pids: &BTreeSet<u32>) {
    if pids.is_empty() {
        return;
    }
    let args: Vec<String> = pids.iter().map(u32::to_string).collect();
    // The exit status only says that some PID was gone already, which is fine.
    let _ = Command::new("kill")
        .arg("-KILL")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
