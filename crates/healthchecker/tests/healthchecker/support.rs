//! Test helpers: run the real binary with a hard time limit, and one-connection test
//! servers on threads whose every wait is bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Longest any probe run may take before the test fails (and the process is killed).
const RUN_LIMIT: Duration = Duration::from_secs(15);
/// Longest a test server waits on its peer.
pub const PEER_LIMIT: Duration = Duration::from_secs(10);

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Asserts the exit code, with the output in the failure message.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "{self:#?}");
        self
    }

    /// Asserts stdout is exactly one line starting with `prefix`.
    pub fn assert_line_starts_with(&self, prefix: &str) -> &Self {
        assert!(
            self.stdout.starts_with(prefix),
            "expected {prefix:?}: {self:#?}"
        );
        assert!(self.stdout.ends_with('\n'), "{self:#?}");
        assert_eq!(self.stdout.lines().count(), 1, "{self:#?}");
        self
    }
}

/// Runs the binary with `args` and only the given `HEALTHCHECK_*` variables set.
pub fn healthchecker_env(args: &[&str], vars: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_healthchecker"));
    command
        .args(args)
        .env_remove("HEALTHCHECK_PORT")
        .env_remove("HEALTHCHECK_PATH")
        .env_remove("HEALTHCHECK_TIMEOUT")
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = command.spawn().expect("spawn healthchecker");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for healthchecker") {
            break status;
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("healthchecker {args:?} still running after {RUN_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(2));
    };
    let elapsed = start.elapsed();
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut stdout)
        .expect("stdout");
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr)
        .expect("stderr");
    Run {
        code: status.code().expect("exited, not killed by a signal"),
        stdout,
        stderr,
        elapsed,
    }
}

/// Runs the binary with `args` and no `HEALTHCHECK_*` variables.
pub fn healthchecker(args: &[&str]) -> Run {
    healthchecker_env(args, &[])
}

/// A test server that serves one connection: it reads the request head, reports it, then
/// hands the connection to its behaviour.
pub struct Server {
    pub addr: SocketAddr,
    requests: mpsc::Receiver<String>,
}

impl Server {
    /// Serves on 127.0.0.1.
    pub fn start(behaviour: impl FnOnce(&mut TcpStream) + Send + 'static) -> Server {
        Server::start_on("127.0.0.1:0", behaviour)
    }

    /// Serves on `addr`, e.g. `[::1]:0`.
    pub fn start_on(addr: &str, behaviour: impl FnOnce(&mut TcpStream) + Send + 'static) -> Server {
        let listener = TcpListener::bind(addr).expect("bind test server");
        let addr = listener.local_addr().expect("local address");
        let (sender, requests) = mpsc::channel();
        // Detached: if no probe ever connects, the thread stays parked in accept until the
        // test binary exits.
        thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            stream
                .set_read_timeout(Some(PEER_LIMIT))
                .expect("read timeout");
            stream
                .set_write_timeout(Some(PEER_LIMIT))
                .expect("write timeout");
            let _ = sender.send(read_head(&mut stream));
            behaviour(&mut stream);
        });
        Server { addr, requests }
    }

    /// Serves one fixed answer, then closes.
    pub fn answering(response: &'static str) -> Server {
        Server::start(move |stream| {
            let _ = stream.write_all(response.as_bytes());
        })
    }

    /// The port as an argument.
    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// The request head the probe sent.
    pub fn request(&self) -> String {
        self.requests
            .recv_timeout(PEER_LIMIT)
            .expect("the probe sent a request")
    }
}

/// Reads up to the end of a request head (bounded in size and time).
fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Keeps the connection open without answering until the probe goes away.
pub fn hang(stream: &mut TcpStream) {
    let _ = stream.read(&mut [0; 1]);
}

/// Writes `chunk` again and again until the probe goes away (or a bounded total).
pub fn endless(stream: &mut TcpStream, start: &[u8], chunk: &[u8]) {
    if stream.write_all(start).is_err() {
        return;
    }
    let begun = Instant::now();
    while begun.elapsed() < PEER_LIMIT {
        if stream.write_all(chunk).is_err() {
            return;
        }
    }
}

/// A port nobody listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}
