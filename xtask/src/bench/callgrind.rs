//! Instructions per request under valgrind's callgrind: a figure that, unlike requests/s, does
//! not move with whatever else the shared machine is doing, so a change to the service can be
//! judged by it before and after. Only counting is done here; `callgrind_annotate` on a build
//! with symbols says where the instructions go (see the Notes of `BENCHMARKS.md`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use super::wrk;
use crate::server::Server;

/// Connections while under valgrind (which runs the server's threads one at a time, some
/// 50 times slower): enough to keep it busy.
const CONNECTIONS: u32 = 10;

/// Whether valgrind and callgrind_control can run.
pub fn available() -> bool {
    ["valgrind", "callgrind_control"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    })
}

/// The arguments that run `program args...` under callgrind, counting nothing until
/// [`Counting::measure`] switches it on, so start-up and seeding are not counted.
pub fn wrap(out_dir: &Path, name: &str, program: &Path, args: &[String]) -> Vec<String> {
    let mut wrapped = vec![
        "--tool=callgrind".to_owned(),
        "--instr-atstart=no".to_owned(),
        format!(
            "--callgrind-out-file={}",
            out_dir.join(format!("callgrind.{name}")).display()
        ),
        program.display().to_string(),
    ];
    wrapped.extend(args.iter().cloned());
    wrapped
}

/// A server running under callgrind (started with [`wrap`]'s arguments).
pub struct Counting<'a> {
    /// The server.
    pub server: &'a mut Server,
    /// Where its profiles go.
    pub out_dir: PathBuf,
    /// The name given to [`wrap`].
    pub name: String,
    /// The CPU for wrk.
    pub cpu: u32,
}

impl Counting<'_> {
    /// Counts the instructions the server executes while wrk runs `script` for `duration`, and
    /// divides by the requests completed.
    pub fn measure(&mut self, script: &Path, duration: Duration) -> Result<f64> {
        let pid = self.server.pid().to_string();
        control(&["-z", &pid])?;
        control(&["-i", "on", &pid])?;
        let outcome = wrk::Run {
            addr: self.server.addr,
            script,
            connections: CONNECTIONS,
            duration,
            cpu: self.cpu,
        }
        .run();
        control(&["-i", "off", &pid])?;
        let before = self.dumps()?;
        control(&["-d", &pid])?;
        self.server.ensure_alive()?;
        let outcome = outcome.context("load under callgrind")?;
        ensure!(
            outcome.errors.total() == 0,
            "errors under callgrind: {}",
            outcome.errors.describe()
        );
        let dump = self
            .dumps()?
            .into_iter()
            .find(|dump| !before.contains(dump))
            .context("callgrind wrote no new dump")?;
        let text = std::fs::read_to_string(&dump)
            .with_context(|| format!("reading {}", dump.display()))?;
        let instructions = parse_total(&text).with_context(|| format!("in {}", dump.display()))?;
        // Counts stay far below 2^52: nothing is lost.
        #[allow(clippy::cast_precision_loss)]
        let per_request = instructions as f64 / outcome.requests as f64;
        Ok(per_request)
    }

    fn dumps(&self) -> Result<Vec<PathBuf>> {
        let prefix = format!("callgrind.{}", self.name);
        let mut dumps = Vec::new();
        for entry in std::fs::read_dir(&self.out_dir)
            .with_context(|| format!("listing {}", self.out_dir.display()))?
        {
            let path = entry?.path();
            if path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(&prefix))
            {
                dumps.push(path);
            }
        }
        Ok(dumps)
    }
}

fn control(args: &[&str]) -> Result<()> {
    let output = Command::new("callgrind_control")
        .args(args)
        .output()
        .context("running callgrind_control")?;
    ensure!(
        output.status.success(),
        "callgrind_control {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The instruction total of a callgrind profile: its `totals:` line, else its `summary:` line.
///
/// Both appear in a dump, and after `callgrind_control -z` the `summary:` line can say 0 while
/// `totals:` holds what was counted since, so `totals:` wins.
pub fn parse_total(text: &str) -> Result<u64> {
    let value = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key))
            .map(|value| {
                let first = value.split_whitespace().next().unwrap_or_default();
                first
                    .parse()
                    .with_context(|| format!("not an instruction count: {key}{value}"))
            })
    };
    match value("totals:").or_else(|| value("summary:")) {
        Some(total) => total,
        None => bail!("no `totals:` or `summary:` line"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_totals_line_gives_the_instruction_count() {
        let text = "# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\nevents: Ir\n\
                    fn=(1) main\n0 12\n\ntotals: 1407497621\n";
        assert_eq!(parse_total(text).unwrap(), 1_407_497_621);
    }

    #[test]
    fn totals_win_over_a_zeroed_summary() {
        let text = "events: Ir\nsummary: 0\nfn=(1) main\n0 12\ntotals: 124235129\n";
        assert_eq!(parse_total(text).unwrap(), 124_235_129);
    }

    #[test]
    fn an_older_summary_line_also_counts() {
        assert_eq!(parse_total("events: Ir\nsummary: 42\n").unwrap(), 42);
    }

    #[test]
    fn a_profile_without_a_total_is_an_error() {
        assert!(parse_total("events: Ir\nfn=(1) main\n").is_err());
        assert!(parse_total("totals: many\n").is_err());
    }

    #[test]
    fn the_wrapper_counts_nothing_until_asked() {
        let args = wrap(
            Path::new("/tmp/b"),
            "service",
            Path::new("/x/accountservice"),
            &["--port".to_owned(), "0".to_owned()],
        );
        assert_eq!(
            args,
            [
                "--tool=callgrind",
                "--instr-atstart=no",
                "--callgrind-out-file=/tmp/b/callgrind.service",
                "/x/accountservice",
                "--port",
                "0"
            ]
        );
    }
}
