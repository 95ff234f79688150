//! Instructions per request under valgrind's callgrind: a figure that, unlike requests/s, does
//! not move with whatever else the shared machine is doing, so a change to the service can be
//! judged by it before and after. Only counting is done here; `callgrind_annotate` on a build
//! with symbols says where the instructions go (see the Notes of `BENCHMARKS.md`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use super::wrk;
use crate::server::Server;

/// Whether valgrind and callgrind_control can run.
pub fn available() -> bool {
    ["valgrind", "callgrind_control"].iter().all(|tool| {
        let status = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        status.is_ok_and(|status| status.success())
    })
}

/// Starts `program args...` under callgrind on the server CPU, counts the instructions it
/// executes while wrk runs `script` from the load CPU for `seconds`, stops it, and divides by the
/// requests completed. Counting is off at start, so start-up and seeding are not counted, and off
/// again before the shutdown. wrk opens 10 connections: valgrind runs the server's threads one
/// at a time, and far slower.
pub fn per_request(
    program: &Path,
    args: &[String],
    script: &Path,
    (server_cpu, cpu): (u32, u32),
    seconds: u64,
) -> Result<f64> {
    let out = tempfile::NamedTempFile::with_prefix("callgrind.")?.into_temp_path();
    let mut wrapped = vec![format!("--callgrind-out-file={}", out.display())];
    wrapped.extend(["--tool=callgrind", "--instr-atstart=no"].map(str::to_owned));
    wrapped.push(program.display().to_string());
    wrapped.extend_from_slice(args);
    let (name, timeout) = (program.display().to_string(), Duration::from_secs(120));
    let valgrind = Path::new("valgrind");
    let mut server = Server::start(&name, server_cpu, valgrind, &wrapped, timeout)?;
    let pid = server.pid().to_string();
    control(&["-i", "on", &pid])?;
    let addr = server.addr;
    let outcome = wrk::Run {
        addr,
        script,
        connections: 10,
        seconds,
        cpu,
    }
    .run();
    control(&["-i", "off", &pid])?;
    server.ensure_alive()?;
    let outcome = outcome.context("load under callgrind")?;
    ensure!(outcome.errors == 0, "errors: {}", outcome.error_kinds);
    server.stop(Duration::from_secs(30), false)?;
    let text = std::fs::read_to_string(&out)?;
    let instructions = parse_total(&text).with_context(|| format!("in {}", out.display()))?;
    Ok(instructions as f64 / outcome.requests as f64)
}

fn control(args: &[&str]) -> Result<()> {
    let output = Command::new("callgrind_control")
        .args(args)
        .output()
        .context("running callgrind_control")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "callgrind_control {} failed: {stderr}",
        args.join(" ")
    );
    Ok(())
}

/// The instruction total of a callgrind profile: its `totals:` line, else its `summary:` line.
pub fn parse_total(text: &str) -> Result<u64> {
    let value = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.split_whitespace().next())
    };
    let total = value("totals:")
        .or_else(|| value("summary:"))
        .context("no `totals:` or `summary:` line")?;
    total
        .parse()
        .with_context(|| format!("not an instruction count: {total:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_totals_line_gives_the_instruction_count() {
        let text =
            "# callgrind format\nevents: Ir\nsummary: 0\nfn=(1) main\n0 12\n\ntotals: 1407497621\n";
        assert_eq!(parse_total(text).unwrap(), 1_407_497_621);
        assert_eq!(parse_total("events: Ir\nsummary: 42\n").unwrap(), 42);
        assert!(parse_total("events: Ir\nfn=(1) main\n").is_err());
        assert!(parse_total("totals: many\n").is_err());
    }
}
