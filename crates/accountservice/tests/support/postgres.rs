//! A real PostgreSQL server for tests: `initdb` into a temporary directory, started on a free
//! loopback port (as the unprivileged `postgres` user when the tests run as root, as whoever runs
//! them otherwise), password authentication on, and stopped and removed afterwards even when
//! the test fails or its process dies.
//!
//! Cleanup does not rest on `Drop` alone (a server kept for a whole test binary in a static is
//! never dropped): every server has a watchdog shell reading the test process's end of a pipe;
//! when that end closes, because the server was dropped or the process ended in any way, the
//! watchdog stops the server and removes its directory.
//!
//! Include it with `#[path = "../support/postgres.rs"] mod postgres;` (any test binary). xtask
//! includes it too: its benchmark starts the same server, and its servers for Swarm tasks share
//! the binaries' lookup and the `initdb` line.
#![allow(dead_code)]

use std::{
    io::Write as _,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

/// The superuser's password on every test server.
pub const PASSWORD: &str = "pg-test-secret-9f3";

/// The one line a test fails with where PostgreSQL is not installed.
pub const MISSING: &str = "PostgreSQL's server binaries are missing (no \
    /usr/lib/postgresql/*/bin/initdb): install them with `apt-get install -y postgresql`";

/// A running test server; stopped and removed when dropped.
pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres_user: bool,
    extra: Vec<String>,
    /// Stops the server and removes `dir` once this server is dropped or the process ends.
    watchdog: Option<Watchdog>,
}

/// A shell that runs a clean-up command once this process lets go of its stdin: when the
/// watchdog is dropped, or when the test process ends in any way (a failed assertion, a kill),
/// so that what a test set up outside itself (a server, a firewall rule) never outlives it.
pub struct Watchdog {
    pipe: Option<ChildStdin>,
    shell: Child,
}

impl Watchdog {
    /// Starts the shell that will run `cleanup` (a shell command line, its output discarded).
    pub fn spawn(cleanup: &str) -> Self {
        let mut shell = Command::new("sh")
            .args(["-c", &format!("cat >/dev/null; {cleanup}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the watchdog shell starts");
        let pipe = shell.stdin.take();
        Self { pipe, shell }
    }
}

impl Drop for Watchdog {
    /// Lets the clean-up run, and waits for it for at most 30 s.
    fn drop(&mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = pipe.flush();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.shell.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl PgServer {
    /// A server with PostgreSQL's defaults.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra `-c name=value` settings, e.g. `("max_connections", "5")`.
    pub fn start_with(settings: &[(&str, &str)]) -> Self {
        Self::start_full(settings, &[])
    }

    /// A server with `ssl=on`, presenting `certificate` (PEM, with its chain) and `key`.
    pub fn start_tls(certificate: &str, key: &str) -> Self {
        Self::start_full(
            &[
                ("ssl", "on"),
                ("ssl_cert_file", "{dir}/server.crt"),
                ("ssl_key_file", "{dir}/server.key"),
            ],
            &[("server.crt", certificate), ("server.key", key)],
        )
    }

    /// A server with extra settings (`{dir}` in a value is its directory) and extra files in
    /// its directory, readable by the server only.
    fn start_full(settings: &[(&str, &str)], files: &[(&str, &str)]) -> Self {
        let bin = binaries();
        let as_postgres_user = is_root();
        let dir = tempfile::Builder::new()
            .prefix("accountservice-pg-")
            .tempdir()
            .expect("a temporary directory")
            .keep();
        if as_postgres_user {
            // The server runs as `postgres`: it must be able to enter and own its directory.
            run_checked(Command::new("chmod").arg("755").arg(&dir));
            run_checked(Command::new("chown").arg("postgres").arg(&dir));
        }
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, PASSWORD).expect("the password file");
        if as_postgres_user {
            run_checked(Command::new("chown").arg("postgres").arg(&pwfile));
        }
        let mut extra: Vec<String> = vec![
            "fsync=off".into(),
            "synchronous_commit=off".into(),
            "full_page_writes=off".into(),
        ];
        let dir_text = dir.display().to_string();
        extra.extend(
            settings
                .iter()
                .map(|(name, value)| format!("{name}={}", value.replace("{dir}", &dir_text))),
        );
        for (name, contents) in files {
            let path = dir.join(name);
            std::fs::write(&path, contents).expect("a server file");
            run_checked(Command::new("chmod").arg("600").arg(&path));
            if as_postgres_user {
                run_checked(Command::new("chown").arg("postgres").arg(&path));
            }
        }
        let mut server = Self {
            port: 0,
            watchdog: None,
            bin,
            dir,
            as_postgres_user,
            extra,
        };
        server.shell(&initdb_script(
            &server.bin,
            &server.data(),
            &pwfile,
            &server.dir.join("initdb.log"),
        ));
        server.watchdog = Some(server.spawn_watchdog());
        server.port = free_port();
        server.start_again();
        server
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `postgres://` URL for `database` with the superuser's password.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// A new, empty database with a name unique in this process.
    pub fn create_database(&self, prefix: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }

    /// Runs `sql` in `database` with psql; its output (tuples only, unaligned).
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let output = self.psql_output(database, sql);
        assert!(
            output.status.success(),
            "psql failed: {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Like [`PgServer::psql`], whatever the outcome.
    pub fn psql_output(&self, database: &str, sql: &str) -> Output {
        Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ])
            .args(["-c", sql])
            .env("PGPASSWORD", PASSWORD)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("psql runs")
    }

    /// Starts the server (again, after [`PgServer::stop`] or [`PgServer::kill_9`]) on the same
    /// port and data, and waits until it accepts connections. After a `kill -9` the old
    /// backends may hold the shared memory for a moment: retried until a deadline.
    pub fn start_again(&self) {
        let options = self
            .extra
            .iter()
            .map(|setting| format!(" -c {setting}"))
            .collect::<String>();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let started = self.shell_status(&format!(
                "{pg_ctl} -D {data} -o '-p {port} -k {dir} -c listen_addresses=127.0.0.1{options}' \
                 -l {dir}/server.log -w -t 20 start >/dev/null 2>&1",
                pg_ctl = self.bin.join("pg_ctl").display(),
                data = self.data().display(),
                port = self.port,
                dir = self.dir.display(),
            ));
            if started {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the test PostgreSQL server did not start; its log:\n{}",
                std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the server (`pg_ctl stop -m fast`: sessions are ended, then it exits).
    pub fn stop(&self) {
        self.shell(&format!(
            "{pg_ctl} -D {data} -m fast -w -t 20 stop >/dev/null",
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data().display(),
        ));
    }

    /// Begins a smart shutdown (`pg_ctl stop -m smart`) without waiting: the server refuses new
    /// connections ("the database system is shutting down") until its sessions have ended, then
    /// exits.
    pub fn begin_smart_stop(&self) {
        self.shell(&format!(
            "{pg_ctl} -D {data} -m smart -W stop >/dev/null",
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data().display(),
        ));
    }

    /// Kills the postmaster with SIGKILL, as a crash or the OOM killer would; its backends
    /// notice and exit on their own.
    pub fn kill_9(&self) {
        let pid_file = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .expect("the server is running");
        let pid = pid_file.lines().next().expect("a pid").trim().to_owned();
        run_checked(Command::new("kill").args(["-9", &pid]));
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs `script` as the server's user; panics with its output if it fails.
    fn shell(&self, script: &str) {
        assert!(self.shell_status(script), "failed: {script}");
    }

    fn shell_status(&self, script: &str) -> bool {
        self.command(script)
            .status()
            .expect("the shell runs")
            .success()
    }

    fn command(&self, script: &str) -> Command {
        if self.as_postgres_user {
            let mut command = Command::new("su");
            command.args(["postgres", "-s", "/bin/sh", "-c", script]);
            command
        } else {
            let mut command = Command::new("sh");
            command.args(["-c", script]);
            command
        }
    }

    /// The shell that stops the server and removes its directory once its stdin closes.
    fn spawn_watchdog(&self) -> Watchdog {
        let stop = format!(
            "{pg_ctl} -D {data} -m immediate -w -t 20 stop",
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data().display(),
        );
        let stop = if self.as_postgres_user {
            format!("su postgres -s /bin/sh -c '{stop}'")
        } else {
            stop
        };
        Watchdog::spawn(&format!(
            "{stop} >/dev/null 2>&1; rm -rf {dir}",
            dir = self.dir.display()
        ))
    }
}

/// Where Debian installs PostgreSQL's servers: `<major version>/bin` under it.
pub const INSTALL_ROOT: &str = "/usr/lib/postgresql";

/// The newest installed server's `bin` directory; fails the test with [`MISSING`] if none.
pub fn binaries() -> PathBuf {
    installed().unwrap_or_else(|missing| panic!("{missing}"))
}

/// The newest installed server's `bin` directory under [`INSTALL_ROOT`], or [`MISSING`].
pub fn installed() -> Result<PathBuf, &'static str> {
    binaries_in(Path::new(INSTALL_ROOT))
}

/// The `bin` directory of the newest server under `root` (Debian's layout,
/// `<root>/<major>/bin/initdb`), or [`MISSING`].
pub fn binaries_in(root: &Path) -> Result<PathBuf, &'static str> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or(MISSING)
}

/// The shell line that creates a cluster in `data` whose superuser `postgres` logs in with
/// the password in `pwfile` (SCRAM), its output in `log`. Durability is traded for speed
/// (`--no-sync`): every cluster made here is thrown away.
pub fn initdb_script(bin: &Path, data: &Path, pwfile: &Path, log: &Path) -> String {
    format!(
        "{initdb} -D {data} -U postgres -A scram-sha-256 --pwfile={pw} --no-sync -E UTF8 \
         --locale=C >{log} 2>&1",
        initdb = bin.join("initdb").display(),
        data = data.display(),
        pw = pwfile.display(),
        log = log.display(),
    )
}

fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("`id -u` runs");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn run_checked(command: &mut Command) {
    let status = command.status().expect("the command runs");
    assert!(status.success(), "failed: {command:?}");
}

/// A listener that accepts TCP connections (the kernel completes the handshake) and never
/// answers: a server that hangs, or a black-holed port.
pub struct BlackHole {
    listener: TcpListener,
}

impl BlackHole {
    /// Listening on a free loopback port.
    pub fn new() -> Self {
        Self {
            listener: TcpListener::bind("127.0.0.1:0").expect("a free port"),
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().expect("bound").port()
    }
}

/// Whether `path` exists: for tests that check the directory is gone.
pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// A TCP proxy to a server that can be cut without closing anything: while cut, it keeps every
/// connection open and accepts new ones, but forwards nothing either way, as a peer that
/// vanished or a network partition looks to the client (half-open connections).
pub struct Proxy {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    /// Forwarding 127.0.0.1:`port()` to 127.0.0.1:`upstream`.
    pub fn to(upstream: u16) -> Self {
        use std::sync::{Arc, atomic::AtomicBool};
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        listener.set_nonblocking(true).expect("non-blocking");
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (cut_flag, stop_flag) = (cut.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop_flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let server = std::net::TcpStream::connect(("127.0.0.1", upstream)).ok();
                        pipe_both_ways(client, server, &cut_flag, &stop_flag);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { port, cut, stop }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops (`true`) or resumes (`false`) forwarding.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Copies `client` to `server` and back on two threads; while `cut`, reads are discarded.
fn pipe_both_ways(
    client: std::net::TcpStream,
    server: Option<std::net::TcpStream>,
    cut: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let Some(server) = server else {
        // Nothing to forward to: hold the connection open and silent until the proxy stops.
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            drop(client);
        });
        return;
    };
    let pairs = [
        (client.try_clone(), server.try_clone()),
        (server.try_clone(), client.try_clone()),
    ];
    for (from, to) in pairs {
        let (Ok(mut from), Ok(mut to)) = (from, to) else {
            return;
        };
        let (cut, stop) = (cut.clone(), stop.clone());
        std::thread::spawn(move || {
            use std::io::Read as _;
            let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
            let mut buffer = [0_u8; 16 * 1024];
            while !stop.load(Ordering::Relaxed) {
                match from.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) if !cut.load(Ordering::Relaxed) => {
                        if to.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(error)
                        if matches!(
                            error.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    }
}

impl PgServer {
    /// The postmaster's process id (from `postmaster.pid`); its backends are its children.
    pub fn postmaster_pid(&self) -> u32 {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .expect("the server is running");
        text.lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .expect("a pid on the first line")
    }

    /// The `bin` directory of the server's binaries (psql, pgbench, ...).
    pub fn bin(&self) -> &Path {
        &self.bin
    }
}
