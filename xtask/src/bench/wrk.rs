//! The load generator: `wrk` from Debian's packages, installed if missing, driven by a Lua script
//! the bench writes, which picks the request paths and prints its result as one JSON line.

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
    let wrk = cmd!(sh, "wrk -v").quiet().ignore_status();
    let version = || wrk.read().unwrap_or_default();
    if !version().starts_with("wrk ") {
        println!("wrk is not installed: installing Debian's package");
        let _frontend = sh.push_env("DEBIAN_FRONTEND", "noninteractive");
        cmd!(sh, "apt-get update -qq").run()?;
        cmd!(sh, "apt-get install -y -qq wrk").run()?;
    }
    let version = version();
    ensure!(version.starts_with("wrk "), "wrk does not run");
    let line = version.lines().next().unwrap_or_default();
    Ok(line.split(" Copyright").next().unwrap_or(line).to_owned())
}

/// The Lua script that requests `path` every time, or, with `spread = Some((first, count))`,
/// `path` followed by a pseudo-random id in `first..first + count`, the same sequence every run
/// (MINSTD, exact in Lua's doubles). Requests are formatted once in `init` and cycled, so wrk's
/// per-request cost is one table lookup whatever the paths; 65,536 of them touch every leaf of a
/// million-account B-tree many times over a run.
pub fn script(path: &str, spread: Option<(u64, u64)>) -> String {
    let (count, id) = match spread {
        None => (1, "\"\"".to_owned()),
        Some((first, count)) => (65_536, format!("({first} + state % {count})")),
    };
    format!(
        r#"-- Written by `cargo xtask bench`.
local paths, next_path = {{}}, 0

function init(args)
  local state = 20240101
  for i = 1, {count} do
    state = (state * 48271) % 2147483647
    paths[i] = wrk.format("GET", {path:?} .. {id})
  end
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
  local function s(micros) return micros / 1e6 end
  io.write(string.format('{RESULT_PREFIX}{{"requests":%d,"duration":%.6f,"p50":%.6f,"p90":%.6f,' ..
    '"p99":%.6f,"max":%.6f,"errors":%d,"error_kinds":"%s"}}\n', summary.requests,
    s(summary.duration), s(latency:percentile(50)), s(latency:percentile(90)),
    s(latency:percentile(99)), s(latency.max), errors, table.concat(kinds, ", ")))
end
"#
    )
}

/// Starts wrk in the background.
pub fn spawn(mut command: Command) -> Result<Running> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command.spawn().context("starting taskset ... wrk ...")?;
    Ok(Running(child, crate::server::command_line(&command)))
}

/// A wrk started in the background, and its command line.
#[derive(Debug)]
pub struct Running(Child, String);

impl Running {
    /// Whether wrk has exited (an error asking means it is gone as far as we can tell).
    pub fn finished(&mut self) -> bool {
        !matches!(self.0.try_wait(), Ok(None))
    }

    /// Waits for wrk to finish and reads its result line.
    pub fn wait(self) -> Result<Outcome> {
        let Self(child, what) = self;
        let output = child.wait_with_output().context(what.clone())?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let shown = format!("{what}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        ensure!(output.status.success(), "{}: {shown}", output.status);
        parse_output(&stdout).context(shown)
    }
}

/// Finds the script's result line in wrk's output and reads it.
pub fn parse_output(stdout: &str) -> Result<Outcome> {
    let mut lines = stdout.lines().map(str::trim);
    let line = lines.find_map(|line| line.strip_prefix(RESULT_PREFIX));
    let line = line.context("no result line in wrk's output")?;
    let mut outcome: Outcome = serde_json::from_str(line).context(line.to_owned())?;
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
        assert!(spread.contains("for i = 1, 65536 do") && spread.contains("% 65536 + 1"));
        let fixed = script("/health/ready", None);
        assert!(fixed.contains("wrk.format(\"GET\", \"/health/ready\" .. \"\")"));
        assert!(fixed.contains("for i = 1, 1 do") && fixed.contains("next_path % 1 + 1"));
    }
}
