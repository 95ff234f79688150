//! Harness for the process and fault tests: the real binary as a child process, its log, and a
//! bare HTTP/1.1 client on std sockets (the fault tests need to see exactly what reached the
//! wire: a dropped connection must not be retried or hidden by a client library).
//!
//! Shared by the process and fault test binaries; each uses only part of it.
#![allow(dead_code)]

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

/// Upper bound for a single wait that involves no bulk work (start-up, a request, an exit).
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Upper bound for waits that cover seeding hundreds of thousands of accounts in a debug build
/// on a busy 2-core machine, with a wide margin over an idle machine's time.
pub const SEEDING_TIMEOUT: Duration = Duration::from_secs(90);

/// The service binary with the given arguments, isolated from `ACCOUNTSERVICE_*` in the
/// environment.
pub fn command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_accountservice"));
    command.current_dir(dir).args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("ACCOUNTSERVICE_") {
            command.env_remove(name);
        }
    }
    command
}

/// Base arguments: loopback, a free port, the given database file, then `extra`.
pub fn args<'a>(db: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--bind", "127.0.0.1", "--port", "0", "--db-path", db];
    args.extend_from_slice(extra);
    args
}

/// A running service process; killed on drop so a failing test leaves nothing behind.
pub struct Service {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
    stderr: Arc<Mutex<String>>,
    /// Ends at the end of stderr; joined once the process has exited, so [`Service::stderr`]
    /// then holds all of it.
    stderr_reader: Option<thread::JoinHandle<()>>,
}

impl Service {
    /// Starts the binary in `dir` with `args`, reading its log (stdout) and stderr.
    pub fn start(dir: &Path, args: &[&str]) -> Self {
        Self::from_command(command(dir, args))
    }

    /// Starts `command` (made by [`command`], perhaps with variables added).
    pub fn from_command(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start the binary");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let sink = stderr.clone();
        let stderr_reader = thread::spawn(move || {
            let mut buffer = [0; 4096];
            while let Ok(read @ 1..) = pipe.read(&mut buffer) {
                sink.lock()
                    .expect("stderr lock")
                    .push_str(&String::from_utf8_lossy(&buffer[..read]));
            }
        });
        Self {
            child,
            lines,
            log: Vec::new(),
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    /// Waits (at most [`TIMEOUT`]) for a log line containing `needle` and returns it.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        self.wait_for_line_within(needle, TIMEOUT)
    }

    /// Waits at most `timeout` for a log line containing `needle` and returns it.
    pub fn wait_for_line_within(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {needle:?} within {timeout:?}; log so far: {:#?}\n\
                     stderr: {}",
                    self.log,
                    self.stderr()
                ),
            }
        }
    }

    /// Waits for the "listening" line and returns the address in it.
    pub fn wait_until_listening(&mut self) -> SocketAddr {
        self.wait_until_listening_within(TIMEOUT)
    }

    /// Like [`Service::wait_until_listening`], for a start that seeds first.
    pub fn wait_until_listening_within(&mut self, timeout: Duration) -> SocketAddr {
        let line = self.wait_for_line_within("listening on http://", timeout);
        let rest = line.split("listening on http://").nth(1).expect("address");
        let address = rest.split_whitespace().next().expect("address");
        address.parse().expect("a socket address")
    }

    /// Log lines that have arrived so far, without waiting.
    pub fn drain_log(&mut self) -> &[String] {
        self.log.extend(self.lines.try_iter());
        &self.log
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        signal(&self.child, "-TERM");
    }

    /// Sends SIGKILL: no chance to flush, close or clean anything up.
    pub fn kill_9(&mut self) {
        signal(&self.child, "-KILL");
    }

    /// Waits (at most [`TIMEOUT`]) for the process to exit, and for the end of its stderr.
    pub fn wait(&mut self) -> ExitStatus {
        let status = wait_bounded(&mut self.child);
        if let Some(reader) = self.stderr_reader.take() {
            reader.join().expect("stderr reader");
        }
        status
    }

    /// Everything logged, once the process has exited.
    pub fn rest_of_log(&mut self) -> Vec<String> {
        self.log.extend(self.lines.iter());
        self.log.clone()
    }

    /// What the process wrote to stderr so far (panic messages, the start-up error); all of it
    /// after [`Service::wait`].
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("cannot run kill");
    assert!(status.success(), "kill {signal} failed");
}

fn wait_bounded(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the binary to completion (bounded by `timeout`) and returns its status and stderr.
pub fn run_to_exit(dir: &Path, args: &[&str], timeout: Duration) -> (ExitStatus, String) {
    let mut child = command(dir, args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start the binary");
    let mut pipe = child.stderr.take().expect("piped");
    // Read stderr on a thread so a chatty child cannot block on a full pipe while we wait.
    let reader = thread::spawn(move || {
        let mut stderr = String::new();
        let _ = pipe.read_to_string(&mut stderr);
        stderr
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().expect("stderr reader"))
}

/// One HTTP answer as it came off the wire.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The head's header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` framed).
    pub body: String,
}

impl Answer {
    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {:?}", self.body))
    }

    /// Whether the server asked to close the connection after this answer.
    pub fn closes(&self) -> bool {
        self.headers
            .iter()
            .any(|(name, value)| name == "connection" && value.eq_ignore_ascii_case("close"))
    }
}

/// How reading an answer failed.
#[derive(Debug)]
pub enum Failure {
    /// The connection ended (EOF or reset) before a single byte of an answer: the server never
    /// answered this request.
    ClosedUnanswered(String),
    /// Part of an answer arrived, then the connection ended or the bytes made no sense.
    Truncated(String),
}

/// A keep-alive HTTP/1.1 connection.
pub struct Connection {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Connection {
    /// Connects to `address` with read and write timeouts of [`TIMEOUT`].
    pub fn open(address: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&address, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        stream.set_nodelay(true)?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Self { stream, reader })
    }

    /// Writes raw bytes (a whole request, or part of one).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends `GET path` on this connection.
    pub fn send_get(&mut self, path: &str) -> std::io::Result<()> {
        self.send_raw(format!("GET {path} HTTP/1.1\r\nHost: faults.test\r\n\r\n").as_bytes())
    }

    /// Reads one answer.
    pub fn read_answer(&mut self) -> Result<Answer, Failure> {
        let mut status_line = String::new();
        match self.reader.read_line(&mut status_line) {
            Ok(0) => return Err(Failure::ClosedUnanswered("EOF".into())),
            Ok(_) => {}
            Err(error) if status_line.is_empty() => {
                return Err(Failure::ClosedUnanswered(error.to_string()));
            }
            Err(error) => return Err(Failure::Truncated(error.to_string())),
        }
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| Failure::Truncated(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return Err(Failure::Truncated("EOF in the head".into())),
                Ok(_) => {}
                Err(error) => return Err(Failure::Truncated(error.to_string())),
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse().ok())
            .ok_or_else(|| Failure::Truncated(format!("no Content-Length in {headers:?}")))?;
        let mut body = vec![0; length];
        self.reader
            .read_exact(&mut body)
            .map_err(|error| Failure::Truncated(format!("body: {error}")))?;
        Ok(Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// Sends `GET path` and reads the answer.
    pub fn get(&mut self, path: &str) -> Result<Answer, Failure> {
        self.send_get(path)
            .map_err(|error| Failure::ClosedUnanswered(format!("write: {error}")))?;
        self.read_answer()
    }
}

/// `GET path` on a fresh connection; panics if no complete answer arrives.
pub fn get(address: SocketAddr, path: &str) -> Answer {
    let mut connection = Connection::open(address)
        .unwrap_or_else(|error| panic!("cannot connect to {address}: {error}"));
    connection
        .get(path)
        .unwrap_or_else(|failure| panic!("GET {path}: no complete answer: {failure:?}"))
}

/// Polls `GET path` until `done` accepts an answer, at most `timeout`; returns that answer and
/// how long it took, or panics with the last answer.
pub fn poll_until(
    address: SocketAddr,
    path: &str,
    timeout: Duration,
    done: impl Fn(&Answer) -> bool,
) -> (Answer, Duration) {
    let started = Instant::now();
    loop {
        let answer = get(address, path);
        if done(&answer) {
            return (answer, started.elapsed());
        }
        if started.elapsed() > timeout {
            panic!("GET {path}: still {answer:?} after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The fake account the service seeds as number `n`: `(id, name)`.
pub fn fake_account(n: u64) -> (String, String) {
    let account = accountservice::domain::Account::fake(n);
    (account.id, account.name)
}
