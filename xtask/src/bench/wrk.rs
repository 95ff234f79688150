//! The load generator: `wrk` from Debian's packages, installed if missing, driven by a Lua script
//! the bench writes, which picks the request paths and prints one machine-readable result line.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

/// How long one request may take before wrk counts it as a timeout error.
const TIMEOUT: &str = "5s";

/// Prefix of the line the script's `done()` prints.
const RESULT_PREFIX: &str = "wrk-result";

/// Paths spread over at most this many precomputed requests per script: enough to touch every
/// leaf of a million-account B-tree many times over a run, small enough to build in an instant.
const SPREAD_SAMPLE: u64 = 65_536;

/// Installs wrk with apt-get if it is not on the PATH (we run as root here; elsewhere the error
/// says what to install).
pub fn ensure_installed() -> Result<String> {
    if let Some(version) = version() {
        return Ok(version);
    }
    println!("wrk is not installed: installing Debian's package");
    for args in [&["update", "-qq"][..], &["install", "-y", "-qq", "wrk"][..]] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get to install wrk")?;
        ensure!(
            status.success(),
            "`apt-get {}` failed ({status}); install wrk (Debian package `wrk`) by hand",
            args.join(" ")
        );
    }
    version().context("wrk is still not runnable after apt-get install wrk")
}

/// wrk's version line (`wrk debian/4.1.0-3+b2 [epoll] ...`), or `None` when it cannot run.
fn version() -> Option<String> {
    // `wrk -v` prints the version and the usage, and exits 1.
    let output = Command::new("wrk").arg("-v").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let line = text.lines().find(|line| line.starts_with("wrk "))?;
    Some(
        line.split(" Copyright")
            .next()
            .unwrap_or(line)
            .trim()
            .to_owned(),
    )
}

/// Which paths a run requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paths {
    /// The same path every time.
    Fixed(String),
    /// `<prefix><first + i>` for pseudo-random `i` in `0..count`, the same sequence every run.
    Spread {
        /// Everything before the number, e.g. `/accounts/`.
        prefix: String,
        /// The first id.
        first: u64,
        /// How many ids there are.
        count: u64,
    },
}

impl Paths {
    /// The Lua script for these paths. Requests are formatted once in `init` and cycled in
    /// `request`, so the per-request cost in wrk is one table lookup whatever the paths.
    pub fn script(&self) -> String {
        let (setup, sample) = match self {
            Paths::Fixed(path) => (format!("paths[1] = wrk.format(\"GET\", {path:?})"), 1),
            Paths::Spread {
                prefix,
                first,
                count,
            } => {
                let sample = SPREAD_SAMPLE;
                (
                    format!(
                        "-- MINSTD, exact in Lua's doubles: the same ids in every run.\n  \
                         local state = 20240101\n  \
                         for i = 1, {sample} do\n    \
                         state = (state * 48271) % 2147483647\n    \
                         paths[i] = wrk.format(\"GET\", {prefix:?} .. ({first} + state % {count}))\n  \
                         end"
                    ),
                    sample,
                )
            }
        };
        format!(
            r#"-- Written by `cargo xtask bench`: {self:?}
local paths = {{}}
local next_path = 0

function init(args)
  {setup}
end

function request()
  next_path = next_path % {sample} + 1
  return paths[next_path]
end

function done(summary, latency, requests)
  local e = summary.errors
  local us = function(x) return math.floor(x) end
  io.write(string.format(
    "{RESULT_PREFIX} requests=%d duration_us=%d bytes=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    us(latency:percentile(50)), us(latency:percentile(90)), us(latency:percentile(99)), us(latency.max),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"#
        )
    }

    /// Writes the script to `path`.
    pub fn write_script(&self, path: &Path) -> Result<PathBuf> {
        std::fs::write(path, self.script())
            .with_context(|| format!("writing the wrk script {}", path.display()))?;
        Ok(path.to_path_buf())
    }
}

/// One wrk run to start.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    /// The server.
    pub addr: SocketAddr,
    /// The Lua script (see [`Paths::write_script`]).
    pub script: &'a Path,
    /// Open connections.
    pub connections: u32,
    /// How long.
    pub duration: Duration,
    /// The CPU wrk is pinned to (the servers get another one).
    pub cpu: u32,
}

impl Run<'_> {
    /// The command line: one wrk thread (it has one core), pinned with taskset.
    pub fn command(&self) -> Command {
        let mut command = Command::new("taskset");
        command
            .args(["-c", &self.cpu.to_string(), "wrk", "-t1"])
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", self.duration.as_secs().max(1)))
            .args(["--timeout", TIMEOUT, "-s"])
            .arg(self.script)
            .arg(format!("http://{}/", self.addr));
        command
    }

    /// The command line as text, for the report.
    pub fn display(&self) -> String {
        let command = self.command();
        std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Starts wrk in the background.
    pub fn spawn(&self) -> Result<Running> {
        let child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting wrk (taskset ... wrk ...)")?;
        Ok(Running {
            child,
            what: self.display(),
        })
    }

    /// Runs wrk to the end and parses its result.
    pub fn run(&self) -> Result<Outcome> {
        self.spawn()?.wait()
    }
}

/// A wrk started in the background.
#[derive(Debug)]
pub struct Running {
    child: Child,
    what: String,
}

impl Running {
    /// Whether wrk has exited (its result is then ready for [`Running::wait`]).
    pub fn finished(&mut self) -> bool {
        // An error asking means the child is gone as far as we can tell: stop waiting for it.
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for wrk to finish and parses its result line.
    pub fn wait(self) -> Result<Outcome> {
        let what = self.what;
        let output = self
            .child
            .wait_with_output()
            .with_context(|| format!("waiting for {what}"))?;
        outcome(&output).with_context(|| format!("{what} failed"))
    }
}

fn outcome(output: &Output) -> Result<Outcome> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "{}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    parse_output(&stdout).with_context(|| format!("stdout:\n{stdout}\nstderr:\n{stderr}"))
}

/// Error counts of one run, as wrk classifies them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Errors {
    /// Connections that could not be opened.
    pub connect: u64,
    /// Reads that failed (e.g. a connection reset).
    pub read: u64,
    /// Writes that failed.
    pub write: u64,
    /// Answers with a status above 399.
    pub status: u64,
    /// Requests without an answer within the timeout.
    pub timeout: u64,
}

impl Errors {
    /// All errors together.
    pub fn total(&self) -> u64 {
        self.connect + self.read + self.write + self.status + self.timeout
    }

    /// Adds another run's errors.
    pub fn add(&mut self, other: Errors) {
        self.connect += other.connect;
        self.read += other.read;
        self.write += other.write;
        self.status += other.status;
        self.timeout += other.timeout;
    }

    /// `0`, or the non-zero counts by kind (`3 (read 2, status 1)`).
    pub fn describe(&self) -> String {
        let kinds: Vec<String> = [
            ("connect", self.connect),
            ("read", self.read),
            ("write", self.write),
            ("status", self.status),
            ("timeout", self.timeout),
        ]
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect();
        if kinds.is_empty() {
            "0".to_owned()
        } else {
            format!("{} ({})", self.total(), kinds.join(", "))
        }
    }
}

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Completed requests.
    pub requests: u64,
    /// How long the run lasted.
    pub duration: Duration,
    /// Bytes read.
    pub bytes: u64,
    /// Median latency.
    pub p50: Duration,
    /// 90th percentile latency.
    pub p90: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Slowest request.
    pub max: Duration,
    /// Failures.
    pub errors: Errors,
}

impl Outcome {
    /// Completed requests per second.
    pub fn rate(&self) -> f64 {
        // Request counts stay far below 2^52: no precision is lost.
        #[allow(clippy::cast_precision_loss)]
        let requests = self.requests as f64;
        requests / self.duration.as_secs_f64().max(f64::EPSILON)
    }
}

/// Finds the script's result line in wrk's output and reads it.
pub fn parse_output(stdout: &str) -> Result<Outcome> {
    let line = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix(RESULT_PREFIX))
        .with_context(|| format!("no `{RESULT_PREFIX}` line in wrk's output"))?;
    let mut fields = HashMap::new();
    for pair in line.split_whitespace() {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("not key=value: {pair:?}"))?;
        let value: u64 = value
            .parse()
            .with_context(|| format!("{key} is not a count: {value:?}"))?;
        fields.insert(key, value);
    }
    let get = |key: &str| -> Result<u64> {
        fields
            .get(key)
            .copied()
            .with_context(|| format!("`{key}` missing from the wrk result line"))
    };
    let requests = get("requests")?;
    if requests == 0 {
        bail!("wrk completed no request at all");
    }
    Ok(Outcome {
        requests,
        duration: Duration::from_micros(get("duration_us")?),
        bytes: get("bytes")?,
        p50: Duration::from_micros(get("p50_us")?),
        p90: Duration::from_micros(get("p90_us")?),
        p99: Duration::from_micros(get("p99_us")?),
        max: Duration::from_micros(get("max_us")?),
        errors: Errors {
            connect: get("connect")?,
            read: get("read")?,
            write: get("write")?,
            status: get("status")?,
            timeout: get("timeout")?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Running 5s test @ http://127.0.0.1:40000/\n  1 threads and 50 connections\n\
        \x20 Thread Stats   Avg      Stdev     Max   +/- Stdev\n\
        \x20   Latency   610.12us  100.00us   5.00ms   90.00%\n\
        \x20   Req/Sec    80.00k     2.00k   85.00k    70.00%\n\
        \x20 400000 requests in 5.00s, 60.00MB read\n\
        Requests/sec:  80000.00\nTransfer/sec:     12.00MB\n\
        wrk-result requests=400000 duration_us=5000000 bytes=62914560 p50_us=600 p90_us=700 \
        p99_us=1500 max_us=5000 connect=0 read=2 write=0 status=1 timeout=0\n";

    #[test]
    fn the_result_line_gives_rate_percentiles_and_errors() {
        let outcome = parse_output(OUTPUT).unwrap();
        assert_eq!(outcome.requests, 400_000);
        assert!((outcome.rate() - 80_000.0).abs() < 1e-6);
        assert_eq!(outcome.p50, Duration::from_micros(600));
        assert_eq!(outcome.p99, Duration::from_micros(1500));
        assert_eq!(outcome.max, Duration::from_millis(5));
        assert_eq!(outcome.errors.total(), 3);
        assert_eq!(outcome.errors.describe(), "3 (read 2, status 1)");
    }

    #[test]
    fn output_without_the_result_line_is_an_error() {
        let error = parse_output("Running 5s test @ http://x/\n").unwrap_err();
        assert!(format!("{error}").contains("wrk-result"));
    }

    #[test]
    fn a_missing_field_is_named() {
        let error = parse_output("wrk-result requests=10 duration_us=1000").unwrap_err();
        assert!(format!("{error}").contains("bytes"), "{error}");
    }

    #[test]
    fn a_run_that_completed_nothing_is_an_error() {
        let line = OUTPUT
            .lines()
            .last()
            .unwrap()
            .replace("requests=400000", "requests=0");
        assert!(parse_output(&line).is_err());
    }

    #[test]
    fn no_errors_are_described_as_zero() {
        assert_eq!(Errors::default().describe(), "0");
    }

    #[test]
    fn a_spread_script_formats_requests_once_and_cycles_them() {
        let script = Paths::Spread {
            prefix: "/accounts/".into(),
            first: 10_000,
            count: 1_000_000,
        }
        .script();
        assert!(script.contains("\"/accounts/\" .. (10000 + state % 1000000)"));
        assert!(script.contains("next_path = next_path % 65536 + 1"));
        assert!(script.contains("wrk-result requests=%d"));
    }

    #[test]
    fn a_fixed_script_requests_one_path() {
        let script = Paths::Fixed("/health/ready".into()).script();
        assert!(script.contains("paths[1] = wrk.format(\"GET\", \"/health/ready\")"));
        assert!(script.contains("next_path % 1 + 1"));
    }

    #[test]
    fn the_command_pins_one_wrk_thread_to_the_load_core() {
        let run = Run {
            addr: "127.0.0.1:4000".parse().unwrap(),
            script: Path::new("/tmp/a.lua"),
            connections: 50,
            duration: Duration::from_secs(10),
            cpu: 1,
        };
        assert_eq!(
            run.display(),
            "taskset -c 1 wrk -t1 -c50 -d10s --timeout 5s -s /tmp/a.lua http://127.0.0.1:4000/"
        );
    }
}
