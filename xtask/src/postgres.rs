//! A real PostgreSQL server outside Swarm, as a managed database would be: Debian's server
//! binaries, `initdb` and `pg_ctl` run as the unprivileged `postgres` user, listening on one
//! address the replicas reach, optionally inside a network namespace of its own (the lab's).
//! Stopped and started again by the outage scenarios; removed with its directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

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
        server.as_postgres(&format!(
            "{initdb} -D {data} -U postgres -A scram-sha-256 --pwfile={pwfile} --no-sync -E UTF8 \
             --locale=C >{dir}/initdb.log 2>&1",
            initdb = server.bin.join("initdb").display(),
            data = server.data().display(),
            pwfile = pwfile.display(),
            dir = dir.display(),
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

/// The newest installed server binaries (Debian's layout).
fn binaries() -> Result<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "PostgreSQL's server binaries are missing (/usr/lib/postgresql/*/bin/initdb): \
             install them with `apt-get install -y postgresql`"
        ),
    }
}
