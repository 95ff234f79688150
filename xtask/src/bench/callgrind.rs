//! Instructions per request under valgrind's callgrind: unlike requests/s, not moved by whatever
//! else the shared machine does, so a change to the service can be judged by it. Where they go:
//! `callgrind_annotate` on a build with symbols (see the Notes of `BENCHMARKS.md`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use xshell::{Shell, cmd};

use super::results::Instructions;
use super::{ACCOUNTS, BASE_ACCOUNTS, HEALTH, Lab, READY, wrk};

impl Lab {
    /// Instructions per request of the yardstick and the service's endpoints, one server at a
    /// time on the server core; `None` in smoke runs or without valgrind.
    pub(super) fn instructions(&mut self) -> Result<Option<Instructions>> {
        let runs = |tool: &str| Command::new(tool).arg("--version").output().is_ok();
        if self.r.plan.smoke || !runs("valgrind") || !runs("callgrind_control") {
            println!("bench: no instruction counts (smoke run, or no valgrind)");
            return Ok(None);
        }
        println!("bench: instructions per request under callgrind");
        let (service, yardstick) = (self.bin.service.clone(), self.bin.yardstick.clone());
        let args = self.service_args("callgrind", BASE_ACCOUNTS, &[]);
        let body = ["0".to_owned(), self.r.body.clone()];
        let counts = Instructions {
            yardstick: self.per_request(&yardstick, &body, ACCOUNTS)?,
            accounts: self.per_request(&service, &args, ACCOUNTS)?,
            health: self.per_request(&service, &args, HEALTH)?,
            ready: self.per_request(&service, &args, READY)?,
        };
        println!("  {counts:?}");
        Ok(Some(counts))
    }

    /// Starts `program args...` under callgrind, counts the instructions it executes while wrk
    /// runs `script`, stops it, and divides by the requests completed. Counting is off at start,
    /// so start-up and seeding are not counted, and off again before the shutdown. wrk opens 10
    /// connections: valgrind runs the server's threads one at a time, and far slower.
    fn per_request(&mut self, program: &Path, args: &[String], script: &str) -> Result<f64> {
        let out = tempfile::NamedTempFile::with_prefix("callgrind.")?.into_temp_path();
        let mut wrapped = vec![format!("--callgrind-out-file={}", out.display())];
        wrapped.extend(["--tool=callgrind", "--instr-atstart=no"].map(str::to_owned));
        wrapped.push(program.display().to_string());
        wrapped.extend_from_slice(args);
        let name = format!("{} under callgrind", program.display());
        let mut server = self.start(&name, Path::new("valgrind"), &wrapped)?;
        let (sh, pid) = (Shell::new()?, server.pid().to_string());
        cmd!(sh, "callgrind_control -i on {pid}").quiet().read()?;
        let run = self.wrk(server.addr, script, 10, self.r.plan.seconds.min(5));
        let outcome = wrk::spawn(run).and_then(wrk::Running::wait);
        cmd!(sh, "callgrind_control -i off {pid}").quiet().read()?;
        server.ensure_alive()?;
        let outcome = outcome.context("load under callgrind")?;
        ensure!(outcome.errors == 0, "errors: {}", outcome.error_kinds);
        server.stop(Duration::from_secs(30), false)?;
        let total = parse_total(&std::fs::read_to_string(&out)?).context(name)?;
        Ok(total as f64 / outcome.requests as f64)
    }
}

/// The instruction total of a callgrind profile: its `totals:` line, else its `summary:` line.
fn parse_total(text: &str) -> Result<u64> {
    let line = |key: &str| text.lines().find_map(|line| line.strip_prefix(key));
    let found = line("totals:").or_else(|| line("summary:"));
    let total = found.context("no totals line")?.trim();
    total.parse().with_context(|| format!("count {total:?}"))
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
