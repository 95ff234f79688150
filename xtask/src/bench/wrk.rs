//! The load generator: `wrk` from Debian's packages, installed if missing, driven by a Lua script
//! the bench writes, which picks the request paths and prints its result as one JSON line.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, ensure};
use xshell::{Shell, cmd};

use super::results::Outcome;

/// Prefix of the line the script's `done()` prints.
const RESULT_PREFIX: &str = "wrk-result ";

/// Installs wrk with apt-get if it is not on the PATH (we run as root here; elsewhere the error
/// says what to install); returns its version, `wrk debian/4.1.0-3+b2 [epoll]`.
pub fn ensure_installed(sh: &Shell) -> Result<String> {
    // `wrk -v` prints the version line and the usage, and exits 1.
    let wrk_v = || cmd!(sh, "wrk -v").quiet().ignore_status().read();
    let version = || wrk_v().unwrap_or_default();
    if !version().starts_with("wrk ") {
        println!("wrk is not installed: installing Debian's package");
        let _frontend = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
        cmd!(sh, "apt-get update -qq").run()?;
        cmd!(sh, "apt-get install -y -qq wrk").run()?;
    }
    let version = version();
    ensure!(
        version.starts_with("wrk "),
        "wrk does not run (Debian package wrk)"
    );
    let line = version.lines().next().unwrap_or_default();
    Ok(line.split(" Copyright").next().unwrap_or(line).to_owned())
}

/// The Lua script that requests `path` every time, or, with `spread = Some((first, count))`,
/// `path` followed by a pseudo-random id in `first..first + count`, the same sequence every run.
/// Requests are formatted once in `init` and cycled, so wrk's per-request cost is one table
/// lookup whatever the paths; 65,536 of them touch every leaf of a million-account B-tree many
/// times over a run.
pub fn script(path: &str, spread: Option<(u64, u64)>) -> String {
    let (setup, count) = match spread {
        None => (format!("paths[1] = wrk.format(\"GET\", {path:?})"), 1),
        Some((first, count)) => (
            format!(
                "-- MINSTD, exact in Lua's doubles: the same ids in every run.\n  \
                 local state = 20240101\n  for i = 1, 65536 do\n    \
                 state = (state * 48271) % 2147483647\n    \
                 paths[i] = wrk.format(\"GET\", {path:?} .. ({first} + state % {count}))\n  end"
            ),
            65_536,
        ),
    };
    format!(
        r#"-- Written by `cargo xtask bench`.
local paths = {{}}
local next_path = 0

function init(args)
  {setup}
end

function request()
  next_path = next_path % {count} + 1
  return paths[next_path]
end

function done(summary, latency, requests)
  local errors, kinds = 0, {{}}
  for _, kind in ipairs({{"connect", "read", "write", "status", "timeout"}}) do
    local count = summary.errors[kind]
    errors = errors + count
    if count > 0 then table.insert(kinds, kind .. " " .. count) end
  end
  io.write(string.format(
    '{RESULT_PREFIX}{{"requests":%d,"duration":%.6f,"p50":%.6f,"p90":%.6f,"p99":%.6f,"max":%.6f,' ..
    '"errors":%d,"error_kinds":"%s"}}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e6,
    latency:percentile(90) / 1e6, latency:percentile(99) / 1e6, latency.max / 1e6,
    errors, table.concat(kinds, ", ")))
end
"#
    )
}

/// One wrk run: one thread (it has one core) pinned with taskset, a 5 s request timeout.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    pub addr: SocketAddr,
    /// The Lua script (see [`script`]).
    pub script: &'a Path,
    pub connections: u32,
    /// Whole seconds.
    pub seconds: u64,
    /// The CPU wrk is pinned to (the servers get another one).
    pub cpu: u32,
}

impl Run<'_> {
    fn command(&self) -> Command {
        let mut command = Command::new("taskset");
        command
            .args(["-c", &self.cpu.to_string(), "wrk", "-t1"])
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", self.seconds.max(1)))
            .args(["--timeout", "5s", "-s"])
            .arg(self.script)
            .arg(format!("http://{}/", self.addr));
        command
    }

    /// The command line as text, for the report.
    pub fn display(&self) -> String {
        let command = self.command();
        let words = std::iter::once(command.get_program()).chain(command.get_args());
        words
            .map(|word| word.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Starts wrk in the background.
    pub fn spawn(&self) -> Result<Running> {
        let mut command = self.command();
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = command
            .spawn()
            .context("starting wrk (taskset ... wrk ...)")?;
        Ok(Running {
            child,
            what: self.display(),
        })
    }

    /// Runs wrk to the end.
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
    /// Whether wrk has exited (an error asking means it is gone as far as we can tell).
    pub fn finished(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for wrk to finish and reads its result line.
    pub fn wait(self) -> Result<Outcome> {
        let what = self.what;
        let output = self
            .child
            .wait_with_output()
            .with_context(|| format!("waiting for {what}"))?;
        let (status, stdout, stderr) = (
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        let shown = format!("{what}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        ensure!(status.success(), "{status}: {shown}");
        parse_output(&stdout).context(shown)
    }
}

/// Finds the script's result line in wrk's output and reads it.
pub fn parse_output(stdout: &str) -> Result<Outcome> {
    let line = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix(RESULT_PREFIX))
        .with_context(|| format!("no `{RESULT_PREFIX}` line in wrk's output"))?;
    let mut outcome: Outcome =
        serde_json::from_str(line).with_context(|| format!("reading {line}"))?;
    ensure!(outcome.requests > 0, "wrk completed no request at all");
    outcome.rate = outcome.requests as f64 / outcome.duration.max(f64::EPSILON);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"wrk-result {"requests":400000,"duration":5.000000,"p50":0.000600,"p90":0.000700,"p99":0.001500,"max":0.005000,"errors":3,"error_kinds":"read 2, status 1"}"#;

    #[test]
    fn the_result_line_gives_rate_percentiles_and_errors() {
        let outcome = parse_output(&format!("Running 5s test @ http://x/\n{LINE}\n")).unwrap();
        assert!((outcome.rate - 80_000.0).abs() < 1e-6);
        assert!((outcome.p99 - 0.0015).abs() < 1e-12);
        assert_eq!(
            (outcome.errors, outcome.error_kinds.as_str()),
            (3, "read 2, status 1")
        );
    }

    #[test]
    fn output_without_a_complete_result_is_an_error() {
        assert!(parse_output("Running 5s test @ http://x/\n").is_err());
        assert!(parse_output(r#"wrk-result {"requests":10,"duration":1.0}"#).is_err());
        assert!(parse_output(&LINE.replace("400000", "0")).is_err());
    }

    #[test]
    fn scripts_format_requests_once_and_cycle_them() {
        let spread = script("/accounts/", Some((10_000, 1_000_000)));
        assert!(spread.contains("\"/accounts/\" .. (10000 + state % 1000000)"));
        assert!(spread.contains("next_path = next_path % 65536 + 1"));
        let fixed = script("/health/ready", None);
        assert!(fixed.contains("paths[1] = wrk.format(\"GET\", \"/health/ready\")"));
        assert!(fixed.contains("next_path % 1 + 1"));
    }

    #[test]
    fn the_command_pins_one_wrk_thread_to_the_load_core() {
        let run = Run {
            addr: "127.0.0.1:4000".parse().unwrap(),
            script: Path::new("/tmp/a.lua"),
            connections: 50,
            seconds: 10,
            cpu: 1,
        };
        assert_eq!(
            run.display(),
            "taskset -c 1 wrk -t1 -c50 -d10s --timeout 5s -s /tmp/a.lua http://127.0.0.1:4000/"
        );
    }
}
