//! A real PostgreSQL server outside Swarm, as a managed database would be: Debian's server
//! binaries, `initdb` and `pg_ctl` run as the unprivileged `postgres` user, listening on one
//! address the replicas reach, optionally inside a network namespace of its own (the lab's).
//! Stopped and started again by the outage scenarios; removed with its directory.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, ensure};
use xshell::{Shell, cmd};

/// The service's tests' PostgreSQL server (`crates/accountservice/tests/support/postgres.rs`),
/// shared as a file: the benchmark starts it as is; [`Server`] differs in where it listens, whom
/// it lets in and how long it lives, but finds the binaries and creates its cluster the same way.
#[allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#[path = "../../crates/accountservice/tests/support/postgres.rs"]
pub mod test_server;

/// The password of the server's `postgres` role, which the replicas log in as. The server is
/// reachable only from the test network or this host, for as long as a scenario runs.
const PASSWORD: &str = "outage-lab";

/// One PostgreSQL server: its data directory, the address it listens on, and where it runs.
pub struct Server {
    /// `<dir>/data`; `dir` also holds the socket, the password file and the log.
    dir: PathBuf,
    /// Debian's `/usr/lib/postgresql/<version>/bin`.
    bin: PathBuf,
    /// The address it listens on (and the replicas dial).
    address: String,
    /// Its TCP port.
    port: u16,
    /// The network namespace it runs in (`/run/netns/<name>`), or the host's.
    netns: Option<PathBuf>,
}

impl Server {
    /// Creates a cluster in `dir` (made, and given to the `postgres` user) that listens on
    /// `address:port` and accepts password logins from `clients` (a CIDR). Not started yet.
    pub fn init(
        dir: &Path,
        address: &str,
        port: u16,
        clients: &str,
        netns: Option<PathBuf>,
    ) -> Result<Self> {
        let bin = binaries()?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let pwfile = dir.join("password");
        std::fs::write(&pwfile, PASSWORD)?;
        run(Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir))?;
        let server = Self {
            dir: dir.to_owned(),
            bin,
            address: address.to_owned(),
            port,
            netns,
        };
        server.as_postgres(&test_server::initdb_script(
            &server.bin,
            &server.data(),
            &pwfile,
            &dir.join("initdb.log"),
        ))?;
        let hba = server.data().join("pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba)?;
        rules.push_str(&format!("host all all {clients} scram-sha-256\n"));
        std::fs::write(&hba, rules)?;
        Ok(server)
    }

    /// The data directory.
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The URL the replicas are given (`--database-url`).
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@{}:{}/postgres?sslmode=disable",
            self.address, self.port
        )
    }

    /// The URL with the password left out, to show.
    pub fn url_redacted(&self) -> String {
        self.url().replace(PASSWORD, "***")
    }

    /// The server's major version (Debian's directory name).
    pub fn version(&self) -> String {
        self.bin
            .parent()
            .and_then(Path::file_name)
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The commands that stop the server and remove it, for someone who kept it running.
    pub fn removal(&self) -> String {
        format!(
            "runuser -u postgres -- {} -D {} -m fast stop && rm -r {}",
            self.bin.join("pg_ctl").display(),
            self.data().display(),
            self.dir.display()
        )
    }

    /// `address:port`, for messages.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }

    /// Starts the server and waits (`pg_ctl -w`, bounded by `-t`) until it accepts connections.
    pub fn start(&self) -> Result<()> {
        self.as_postgres(&format!(
            "{pg_ctl} -D {data} -l {dir}/server.log -w -t 30 \
             -o '-p {port} -k {dir} -c listen_addresses={address} -c fsync=off' start >/dev/null",
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data().display(),
            dir = self.dir.display(),
            port = self.port,
            address = self.address,
        ))
        .with_context(|| format!("starting PostgreSQL; its log: {}", self.log_tail(10)))
    }

    /// Stops the server as an operator would (`-m fast`: sessions ended, then it exits) and
    /// waits until it has (bounded by `-t`).
    pub fn stop(&self) -> Result<()> {
        self.as_postgres(&format!(
            "{pg_ctl} -D {data} -m fast -w -t 30 stop >/dev/null",
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data().display(),
        ))
    }

    /// Stops the server if it runs (at once) and removes its directory.
    pub fn remove(self) -> Result<()> {
        if self.data().join("postmaster.pid").exists() {
            self.as_postgres(&format!(
                "{pg_ctl} -D {data} -m immediate -w -t 30 stop >/dev/null",
                pg_ctl = self.bin.join("pg_ctl").display(),
                data = self.data().display(),
            ))?;
        }
        std::fs::remove_dir_all(&self.dir)
            .with_context(|| format!("removing {}", self.dir.display()))
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Runs a shell line as the `postgres` user, in the server's namespace if it has one.
    fn as_postgres(&self, script: &str) -> Result<()> {
        let mut command = match &self.netns {
            Some(netns) => {
                let mut command = Command::new("nsenter");
                command.arg(format!("--net={}", netns.display())).arg("--");
                command.arg("runuser");
                command
            }
            None => Command::new("runuser"),
        };
        command.args(["-u", "postgres", "--", "sh", "-c", script]);
        command.current_dir("/");
        run(&mut command)
    }
}

/// Runs a command; a failure is an error with its stderr.
fn run(command: &mut Command) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    ensure!(
        output.status.success(),
        "{command:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// The newest installed server binaries (Debian's layout), or the line saying how to install
/// them.
fn binaries() -> Result<PathBuf> {
    test_server::installed().map_err(|missing| anyhow!(missing))
}

/// Where the containers of a Swarm service reach this host: the address of the bridge that
/// connects them to it (`docker_gwbridge`) and its network, as `a.b.c.d` and `a.b.c.0/n`.
pub fn gateway(sh: &Shell) -> Result<(String, String)> {
    let line = cmd!(sh, "ip -4 -o addr show dev docker_gwbridge")
        .quiet()
        .read()
        .context("docker_gwbridge (made by the swarm) has no IPv4 address")?;
    let cidr = line
        .split_whitespace()
        .skip_while(|word| *word != "inet")
        .nth(1)
        .context("no inet address on docker_gwbridge")?;
    network_of(cidr)
}

/// `172.18.0.1/16` -> (`172.18.0.1`, `172.18.0.0/16`).
fn network_of(cidr: &str) -> Result<(String, String)> {
    let (addr, bits) = cidr.split_once('/').context("no prefix length")?;
    let ip: Ipv4Addr = addr.parse().with_context(|| format!("address {addr}"))?;
    let bits: u32 = bits.parse().with_context(|| format!("prefix {bits}"))?;
    ensure!(bits <= 32, "prefix length {bits}");
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    let network = Ipv4Addr::from(u32::from(ip) & mask);
    Ok((addr.to_owned(), format!("{network}/{bits}")))
}

/// A PostgreSQL server on this host for the containers of Swarm services, started, in a fresh
/// directory under the system's temporary directory (the `postgres` user must reach it).
pub fn for_swarm_tasks(sh: &Shell, prefix: &str) -> Result<Server> {
    let (address, network) = gateway(sh)?;
    // A port free on that address now; the server takes it a moment later.
    let port = TcpListener::bind((address.as_str(), 0))?
        .local_addr()?
        .port();
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let server = Server::init(&dir, &address, port, &network, None)?;
    server.start()?;
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_network_of_an_interface_address_masks_the_host_bits() {
        assert_eq!(
            network_of("172.18.0.1/16").unwrap(),
            ("172.18.0.1".to_owned(), "172.18.0.0/16".to_owned())
        );
        assert_eq!(
            network_of("10.1.2.3/32").unwrap().1,
            "10.1.2.3/32".to_owned()
        );
        assert!(network_of("10.1.2.3").is_err());
        assert!(network_of("10.1.2.3/40").is_err());
    }
}
