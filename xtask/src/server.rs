//! A server process a task runs against (the service, or the bench's yardstick): its address
//! read from its `listening on` line, its output kept for error messages, stopped with SIGTERM.
//! Dropping it kills it. The bench adds what it reads from `/proc` (`bench::sys`).

use std::io::{BufRead as _, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// Output lines kept per server, for error messages.
const KEPT_LINES: usize = 400;

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// A short name for messages and the report (`service`, `yardstick`, ...).
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// From spawn to the `listening on` line.
    pub startup: Duration,
    /// The command line, for the report.
    pub command_line: String,
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `program args...` pinned to `cpu` with taskset; see [`Server::spawn`].
    pub fn start(
        name: &str,
        cpu: u32,
        program: &Path,
        args: &[String],
        timeout: Duration,
    ) -> Result<Self> {
        let mut command = Command::new("taskset");
        command
            .args(["-c", &cpu.to_string()])
            .arg(program)
            .args(args);
        Self::spawn(name, command, timeout)
    }

    /// Starts `command` and waits up to `timeout` for it to print `listening on <addr>` (the
    /// service and the yardstick both do, on stdout).
    pub fn spawn(name: &str, command: Command, timeout: Duration) -> Result<Self> {
        let started = Instant::now();
        let (mut server, addr_rx) = Self::launch(name, command)?;
        match addr_rx.recv_timeout(timeout) {
            Ok(addr) => {
                server.addr = addr;
                server.startup = started.elapsed();
                Ok(server)
            }
            Err(RecvTimeoutError::Timeout) => Err(anyhow!(
                "{name} did not print `listening on` within {timeout:?}\n{}",
                server.tail(30)
            )),
            Err(RecvTimeoutError::Disconnected) => {
                // Both streams closed: the process is gone (or going).
                let status = server.child.wait().ok();
                Err(anyhow!(
                    "{name} exited before listening ({})\n{}",
                    status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string()),
                    server.tail(30)
                ))
            }
        }
    }

    /// Starts `command`, a server that does not announce its address (HAProxy), configured to
    /// listen on `addr`; the caller waits for it to be ready in its own way.
    pub fn spawn_at(name: &str, command: Command, addr: SocketAddr) -> Result<Self> {
        let (mut server, _) = Self::launch(name, command)?;
        server.addr = addr;
        Ok(server)
    }

    /// Spawns `command` with its output collected; the receiver gets the first `listening on`
    /// address it prints.
    fn launch(name: &str, mut command: Command) -> Result<(Self, mpsc::Receiver<SocketAddr>)> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let command_line = command_line(&command);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name}: {command_line}"))?;
        let output = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let streams: [Option<Box<dyn Read + Send>>; 2] = [
            child.stdout.take().map(|s| Box::new(s) as _),
            child.stderr.take().map(|s| Box::new(s) as _),
        ];
        for stream in streams.into_iter().flatten() {
            let output = output.clone();
            let addr_tx = addr_tx.clone();
            thread::spawn(move || collect(stream, &output, &addr_tx));
        }
        drop(addr_tx);
        let server = Self {
            name: name.to_owned(),
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            startup: Duration::ZERO,
            command_line,
            child,
            output,
        };
        Ok((server, addr_rx))
    }

    /// The server's process id (taskset execs the server, so it is the server's own).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited: a crash under load.
    pub fn ensure_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!(
                "{} crashed or exited while in use ({status})\n{}",
                self.name,
                self.tail(30)
            ),
            Err(error) => Err(error).with_context(|| format!("checking on {}", self.name)),
        }
    }

    /// The output lines seen so far.
    pub fn lines(&self) -> Vec<String> {
        lock(&self.output).clone()
    }

    /// The last `count` output lines, indented, for an error message.
    pub fn tail(&self, count: usize) -> String {
        let lines = self.lines();
        let skip = lines.len().saturating_sub(count);
        lines[skip..]
            .iter()
            .map(|line| format!("  | {line}\n"))
            .collect()
    }

    /// Sends SIGTERM and returns at once; [`Server::exit_status`] tells when it has exited.
    pub fn terminate(&mut self) -> Result<()> {
        self.ensure_alive()?;
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .with_context(|| format!("sending SIGTERM to {}", self.name))?;
        if !status.success() {
            bail!("kill -TERM {} failed: {status}", self.pid());
        }
        Ok(())
    }

    /// The exit status if the process has exited, without waiting.
    pub fn exit_status(&mut self) -> Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .with_context(|| format!("checking on {}", self.name))
    }

    /// Sends SIGTERM and waits up to `grace` for the exit. With `expect_clean`, anything but
    /// exit code 0 is an error (the service drains and exits 0; the yardstick just dies).
    pub fn stop(mut self, grace: Duration, expect_clean: bool) -> Result<ExitStatus> {
        self.terminate()?;
        let deadline = Instant::now() + grace;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not exit within {grace:?} of SIGTERM\n{}",
                    self.name,
                    self.tail(20)
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        if expect_clean && !status.success() {
            bail!(
                "{} did not shut down cleanly on SIGTERM ({status})\n{}",
                self.name,
                self.tail(20)
            );
        }
        Ok(status)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // After `stop` this finds the process reaped and does nothing; on an error path it makes
        // sure no server outlives the bench.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads `stream` line by line into `output`, sending the first `listening on` address found.
fn collect(
    stream: Box<dyn Read + Send>,
    output: &Mutex<Vec<String>>,
    addr_tx: &mpsc::Sender<SocketAddr>,
) {
    let mut sent = false;
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        if !sent && let Some(addr) = listening_addr(&line) {
            sent = addr_tx.send(addr).is_ok();
        }
        let mut lines = lock(output);
        if lines.len() >= KEPT_LINES {
            // Keep the first lines (start-up) and the latest ones.
            lines.remove(KEPT_LINES / 2);
        }
        lines.push(line);
    }
}

/// Locks the output buffer, recovering it if a reader thread panicked while holding the lock
/// (the lines are still fine to read).
fn lock(output: &Mutex<Vec<String>>) -> std::sync::MutexGuard<'_, Vec<String>> {
    output
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The address in a `listening on <addr>` or `listening on http://<addr>` line, text or JSON.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    addr_after(line, "listening on ")
}

/// The address right after `marker` in `line` (`<addr>` or `http://<addr>`), text or JSON.
pub fn addr_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once(marker)?;
    let rest = rest.strip_prefix("http://").unwrap_or(rest);
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '/')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// `command`'s program and arguments as a line to paste into a shell.
pub fn command_line(command: &Command) -> String {
    let words = std::iter::once(command.get_program()).chain(command.get_args());
    let words: Vec<_> = words
        .map(|word| shell_quote(&word.to_string_lossy()))
        .collect();
    words.join(" ")
}

/// Quotes a word for a POSIX shell if it needs it, so printed command lines can be pasted.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_yardstick_line_gives_its_address() {
        assert_eq!(
            listening_addr("listening on 127.0.0.1:40123"),
            Some("127.0.0.1:40123".parse().unwrap())
        );
    }

    #[test]
    fn a_json_log_line_of_the_service_gives_its_address() {
        let line = r#"{"timestamp":"2026-11-25T12:00:00Z","level":"INFO","message":"listening on http://127.0.0.1:38211","address":"127.0.0.1:38211","served_by":"10.0.0.5","target":"accountservice::startup"}"#;
        assert_eq!(
            listening_addr(line),
            Some("127.0.0.1:38211".parse().unwrap())
        );
    }

    #[test]
    fn a_text_log_line_with_an_ipv6_address_gives_it() {
        let line = "2026-11-25T12:00:00Z  INFO accountservice::startup: listening on http://[::1]:6767 address=[::1]:6767";
        assert_eq!(listening_addr(line), Some("[::1]:6767".parse().unwrap()));
    }

    #[test]
    fn the_management_line_of_the_service_gives_the_management_address() {
        let line = r#"{"level":"INFO","message":"management endpoints (health, metrics) on http://127.0.0.1:40999","address":"127.0.0.1:40999"}"#;
        let marker = "management endpoints (health, metrics) on ";
        assert_eq!(
            addr_after(line, marker),
            Some("127.0.0.1:40999".parse().unwrap())
        );
        assert_eq!(listening_addr(line), None);
    }

    #[test]
    fn other_lines_give_nothing() {
        assert_eq!(listening_addr("seeding accounts: 100000/1000000"), None);
        assert_eq!(listening_addr("listening on nowhere"), None);
    }

    #[test]
    fn a_command_line_quotes_the_words_that_need_it() {
        let mut command = Command::new("taskset");
        command.args(["-c", "0", "/tmp/a b"]);
        assert_eq!(command_line(&command), "taskset -c 0 '/tmp/a b'");
    }

    #[test]
    fn only_words_that_need_it_are_quoted() {
        assert_eq!(shell_quote("--port"), "--port");
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote(r#"{"id":"1"}"#), r#"'{"id":"1"}'"#.to_owned());
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
