//! One lab node: a network namespace joined to the lab's switch, and a Docker daemon of its own
//! running inside it, which can be powered off (every process killed at once), powered on again
//! (same data, so it rejoins the Swarm), cut from the switch and healed.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use xshell::{Shell, cmd};

use super::names::{PREFIX, ROOT, SWITCH};
use super::{cgroup, proc};
use crate::wait::{self, Poll};

/// The address prefix of the lab's private test network: node N is `.1N`, the bridge has none.
/// It exists only inside the lab's namespaces.
pub const SUBNET: &str = "172.31.250";

/// How the node's daemon is started inside its namespace. `ip netns exec` cannot be used: it
/// remounts `/sys`, after which dockerd fails ("Devices cgroup isn't mounted"). Instead the script
/// runs under `nsenter --net` + `unshare --mount --uts` and, in its own mount namespace (slave, so
/// nothing it mounts reaches the host): joins the node's cgroup, sets the node's hostname (else
/// every node has the same name), mounts a sysfs of this network namespace on `/sys` with the
/// host's cgroup tree put back on `/sys/fs/cgroup`, and execs dockerd.
const DAEMON_SCRIPT: &str = r#"set -e
name=$1; dir=$2; procs=$3; shift 3
echo $$ > "$procs"
hostname "$name"
mkdir -p "$dir/cgroup"
mount --rbind /sys/fs/cgroup "$dir/cgroup"
umount -l /sys
mount -t sysfs sysfs /sys
mount --rbind "$dir/cgroup" /sys/fs/cgroup
umount -l "$dir/cgroup"
exec dockerd "$@"
"#;

/// One node of the lab.
pub struct Node {
    /// 1, 2 or 3.
    pub index: usize,
    /// `aslab-node<N>`: the network namespace, hostname and cgroup of the node.
    pub name: String,
    /// The node's address on the lab network.
    pub addr: String,
    /// `/run/aslab/node<N>`: data root, exec root, pidfile, socket, config file and log.
    pub dir: PathBuf,
    /// A shell whose `docker` talks to this node's daemon (`DOCKER_HOST` set), never the host's.
    pub sh: Shell,
    daemon: Option<Child>,
}

impl Node {
    /// Describes node `index` (nothing is created yet).
    pub fn new(index: usize) -> Result<Self> {
        let name = format!("{}-node{index}", PREFIX);
        let dir = PathBuf::from(ROOT).join(format!("node{index}"));
        let sh = Shell::new()?;
        sh.set_var(
            "DOCKER_HOST",
            format!("unix://{}", dir.join("docker.sock").display()),
        );
        Ok(Self {
            index,
            addr: format!("{SUBNET}.{}", 10 + index),
            name,
            dir,
            sh,
            daemon: None,
        })
    }

    /// `/run/netns/<name>`.
    pub fn netns(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// The switch-side end of the node's veth pair (the node side is `eth0`).
    fn port(&self) -> String {
        format!("node{}", self.index)
    }

    /// Creates the node's namespace and plugs it into the switch.
    pub fn wire(&self, host: &Shell) -> Result<()> {
        let (name, port, cidr) = (&self.name, self.port(), format!("{}/24", self.addr));
        cmd!(host, "ip netns add {name}").quiet().run()?;
        cmd!(host, "ip -n {name} link set lo up").quiet().run()?;
        cmd!(
            host,
            "ip -n {SWITCH} link add {port} type veth peer name eth0 netns {name}"
        )
        .quiet()
        .run()?;
        cmd!(host, "ip -n {SWITCH} link set {port} master br0 up")
            .quiet()
            .run()?;
        cmd!(host, "ip -n {name} addr add {cidr} dev eth0")
            .quiet()
            .run()?;
        cmd!(host, "ip -n {name} link set eth0 up").quiet().run()?;
        std::fs::create_dir_all(&self.dir)?;
        // An empty configuration: without --config-file dockerd reads the host's daemon.json.
        std::fs::write(self.dir.join("daemon.json"), "{}\n")?;
        Ok(())
    }

    /// Starts the node's daemon and waits until it answers. Returns how long that took.
    pub fn power_on(&mut self) -> Result<Duration> {
        let start = Instant::now();
        let procs = cgroup::create(&format!("{}/daemon", self.name))?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))?;
        let dir = self.dir.display().to_string();
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.netns().display()))
            .args([
                "--",
                "unshare",
                "--mount",
                "--propagation",
                "slave",
                "--uts",
            ])
            .args(["--", "sh", "-c", DAEMON_SCRIPT, "sh"])
            .arg(&self.name)
            .arg(&dir)
            .arg(&procs)
            .arg(format!("--data-root={dir}/data"))
            .arg(format!("--exec-root={dir}/exec"))
            .arg(format!("--pidfile={dir}/dockerd.pid"))
            .arg(format!("--host=unix://{dir}/docker.sock"))
            .arg(format!("--config-file={dir}/daemon.json"))
            .arg(format!("--cgroup-parent=/{}", self.name))
            .args(["--bridge=none", "--storage-driver=overlay2"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting dockerd with nsenter")?;
        self.daemon = Some(child);
        let log_path = self.dir.join("dockerd.log");
        let format = "{{.Server.Version}}";
        wait::until(
            &format!("the daemon of {} to answer", self.name),
            Duration::from_secs(30),
            Duration::from_millis(50),
            || {
                if let Some(child) = self.daemon.as_mut()
                    && let Some(status) = child.try_wait()?
                {
                    anyhow::bail!(
                        "dockerd of {} exited with {status}; its log: {}",
                        self.name,
                        tail(&log_path, 15)
                    );
                }
                let answered = cmd!(self.sh, "docker version --format {format}")
                    .quiet()
                    .ignore_stderr()
                    .ignore_stdout()
                    .run()
                    .is_ok();
                Ok(if answered {
                    Poll::Ready(())
                } else {
                    Poll::Pending("no answer on its socket".to_owned())
                })
            },
        )?;
        Ok(start.elapsed())
    }

    /// A power loss: every process of the node (its cgroup: daemon, containerd, shims and
    /// containers; and anything else in its network namespace) is killed at the same instant.
    /// Returns how many processes died.
    pub fn power_off(&mut self) -> Result<usize> {
        let dir = cgroup::tracking_root().join(&self.name);
        let mut killed = cgroup::kill_all(&dir)?;
        let inode = proc::netns_inode(&self.netns()).context("the node has no namespace")?;
        let strays = proc::in_netns(&[inode].into());
        killed += strays.len();
        proc::kill(&strays);
        if let Some(mut child) = self.daemon.take() {
            // Reaps the killed daemon; it was SIGKILLed, so this returns at once.
            child.wait()?;
        }
        ensure!(
            proc::in_netns(&[inode].into()).is_empty(),
            "processes survived in {}",
            self.name
        );
        Ok(killed)
    }

    /// Cuts the node from the switch (its link goes down), as a pulled cable would.
    pub fn cut(&self, host: &Shell) -> Result<()> {
        let port = self.port();
        cmd!(host, "ip -n {SWITCH} link set {port} down")
            .quiet()
            .run()?;
        Ok(())
    }

    /// Plugs the node back into the switch.
    pub fn heal(&self, host: &Shell) -> Result<()> {
        let port = self.port();
        cmd!(host, "ip -n {SWITCH} link set {port} up")
            .quiet()
            .run()?;
        Ok(())
    }

    /// The last lines of the daemon's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.dir.join("dockerd.log"), lines)
    }
}

/// The last `lines` lines of a file (empty if it cannot be read).
fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
