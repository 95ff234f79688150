//! The memory of an open connection: bytes per idle and per busy connection, as the process
//! counts them (resident memory) and as its control group does (which the kernel also charges
//! the connections' socket buffers to), for the service and for the bare hyper yardstick
//! holding the same connections in the same run.
//!
//! Each figure comes from a fresh server, so that no memory freed by an earlier phase is reused
//! and hides what a connection costs: the server is started, moved into a memory control group
//! of its own (when this process may make one: root, and cgroup v1 or a delegated v2 tree), and
//! its memory is read before the connections open and once it has settled with them open.
//! An idle connection was served one `GET /health` and is kept alive; a busy one was sent a
//! burst of pipelined requests by a client that reads nothing (a small receive buffer), so the
//! server holds its answers: its buffers are as full as that client can make them.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::server::Server;

/// Bound on every connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server's memory may take to settle once the connections are open, and how
/// often it is read meanwhile.
const SETTLE: Duration = Duration::from_secs(10);
const SETTLE_EVERY: Duration = Duration::from_millis(250);
/// The receive buffer of a busy connection's client: the smallest the kernel allows, near
/// enough, so the server's answers pile up on the server's side.
const BUSY_RECEIVE_BUFFER: usize = 4096;

/// What a connection of one kind holds open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Served one `GET /health`, kept alive.
    Idle,
    /// Sent pipelined requests, reads nothing.
    Busy,
}

/// Bytes per connection of one server.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct PerConnection {
    /// Resident memory of the process.
    pub rss: f64,
    /// The control group's charge (v1 `memory.usage_in_bytes` plus `memory.kmem.tcp.usage_in_bytes`,
    /// v2 `memory.current`); `None` when no group could be made.
    pub cgroup: Option<f64>,
}

/// One kind of connection, both servers, and the service's figures over the yardstick's.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Cost {
    pub connections: usize,
    pub service: PerConnection,
    pub yardstick: PerConnection,
    pub rss_ratio: f64,
    pub cgroup_ratio: Option<f64>,
}

impl Cost {
    /// The figures of both servers holding `connections`, with their ratios.
    pub fn of(connections: usize, service: PerConnection, yardstick: PerConnection) -> Self {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::INFINITY };
        Self {
            connections,
            service,
            yardstick,
            rss_ratio: ratio(service.rss, yardstick.rss),
            cgroup_ratio: service
                .cgroup
                .zip(yardstick.cgroup)
                .map(|(a, b)| ratio(a, b)),
        }
    }
}

/// Both kinds.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct ConnectionCost {
    pub idle: Cost,
    pub busy: Cost,
}

/// A memory control group of its own for one server, removed when dropped (after the server).
pub struct Group {
    dir: PathBuf,
    v1: bool,
}

impl Group {
    /// A new group `name` under this process's own memory group, or `None` if none can be made.
    pub fn create(name: &str) -> Option<Self> {
        let groups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        for line in groups.lines() {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let (root, v1) = if controllers.split(',').any(|c| c == "memory") {
                (Path::new("/sys/fs/cgroup/memory"), true)
            } else if controllers.is_empty() {
                (Path::new("/sys/fs/cgroup"), false)
            } else {
                continue;
            };
            let dir = root.join(path.trim_start_matches('/')).join(name);
            if std::fs::create_dir(&dir).is_ok() {
                let group = Self { dir, v1 };
                if v1 {
                    // TCP buffers are charged to a v1 group only once its TCP limit is set.
                    let tcp = group.dir.join("memory.kmem.tcp.limit_in_bytes");
                    let _ = std::fs::write(tcp, "9223372036854771712");
                }
                if group.usage().is_some() {
                    return Some(group);
                }
                // A v2 group without the memory controller: of no use (dropping removes it).
                drop(group);
            }
        }
        None
    }

    /// Moves process `pid` into the group.
    pub fn add(&self, pid: u32) -> Result<()> {
        let procs = self.dir.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string()).with_context(|| format!("writing {procs:?}"))
    }

    /// What the group is charged now, in bytes.
    pub fn usage(&self) -> Option<u64> {
        let read = |file: &str| -> Option<u64> {
            std::fs::read_to_string(self.dir.join(file))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        if self.v1 {
            let tcp = read("memory.kmem.tcp.usage_in_bytes").unwrap_or(0);
            Some(read("memory.usage_in_bytes")? + tcp)
        } else {
            read("memory.current")
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // Empty once its server has exited; a group that still holds one is left, and says so.
        if let Err(error) = std::fs::remove_dir(&self.dir) {
            eprintln!("bench: cannot remove {:?}: {error}", self.dir);
        }
    }
}

/// The memory of `server` (in `group`, if any): resident, and the group's.
fn reading(server: &Server, group: Option<&Group>) -> Result<(u64, Option<u64>)> {
    Ok((server.memory()?.rss, group.and_then(Group::usage)))
}

/// Opens `count` connections of `kind` to `server` (in `group`) and returns the bytes each
/// costs, then closes them.
pub fn measure(
    server: &mut Server,
    group: Option<&Group>,
    kind: Kind,
    count: usize,
) -> Result<PerConnection> {
    server.ensure_alive()?;
    let before = reading(server, group)?;
    let streams = match kind {
        Kind::Idle => super::hold::open(server, count)?,
        Kind::Busy => busy(server.addr, count)?,
    };
    // Settled: two readings a period apart within 1% of each other.
    let (deadline, mut last) = (Instant::now() + SETTLE, reading(server, group)?);
    loop {
        std::thread::sleep(SETTLE_EVERY);
        let now = reading(server, group)?;
        let close = now.0.abs_diff(last.0) * 100 <= now.0;
        last = now;
        if close || Instant::now() > deadline {
            break;
        }
    }
    server.ensure_alive()?;
    drop(streams);
    let per = |after: u64, before: u64| after.saturating_sub(before) as f64 / count as f64;
    Ok(PerConnection {
        rss: per(last.0, before.0),
        cgroup: last
            .1
            .zip(before.1)
            .map(|(after, before)| per(after, before)),
    })
}

/// `count` connections to `addr`, each sent a burst of pipelined `GET /health` by a client with
/// a small receive buffer that reads nothing.
fn busy(addr: SocketAddr, count: usize) -> Result<Vec<TcpStream>> {
    let burst = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n".repeat(400);
    let mut streams = Vec::with_capacity(count);
    for index in 0..count {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.set_recv_buffer_size(BUSY_RECEIVE_BUFFER)?;
        socket
            .connect_timeout(&addr.into(), CONNECT_TIMEOUT)
            .with_context(|| format!("busy connection {index}"))?;
        let mut stream = TcpStream::from(socket);
        // One write, whatever part of it the kernel takes now: never a wait on the server.
        stream.set_nonblocking(true)?;
        let _ = stream.write(&burst);
        streams.push(stream);
    }
    Ok(streams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratios_are_the_service_over_the_yardstick() {
        let service = PerConnection {
            rss: 13_000.0,
            cgroup: Some(20_000.0),
        };
        let yardstick = PerConnection {
            rss: 10_000.0,
            cgroup: None,
        };
        let cost = Cost::of(10, service, yardstick);
        assert!((cost.rss_ratio - 1.3).abs() < 1e-9);
        assert_eq!(cost.cgroup_ratio, None);
    }
}
