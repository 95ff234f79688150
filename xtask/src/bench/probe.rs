//! The healthchecker as Docker runs it: timed against a static do-nothing binary (the floor of
//! any `exec`), interleaved so that a noisy machine weighs on both alike, and run over and over
//! while a server is saturated.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use super::results::{ProbeCost, Spread};
use crate::dist::TARGET;

/// The rustc flags of the floor: the probe's profile (size first, `panic = "abort"`, fat LTO,
/// stripped) and the same static linking.
pub const FLOOR_FLAGS: &str = "-C opt-level=z -C panic=abort -C lto=fat -C codegen-units=1 \
                               -C strip=symbols -C target-feature=+crt-static";

/// Builds `fn main() {}` into `dir/empty`: the exec floor, and what an empty static std program
/// weighs.
pub fn build_floor(dir: &Path) -> Result<PathBuf> {
    let (source, binary) = (dir.join("empty.rs"), dir.join("empty"));
    std::fs::write(&source, "fn main() {}\n")?;
    let mut rustc = Command::new(std::env::var("RUSTC").unwrap_or("rustc".into()));
    rustc.args(["--edition", "2024", "--target", TARGET]);
    rustc.args(FLOOR_FLAGS.split_whitespace());
    rustc.arg("-o").args([&binary, &source]);
    let status = rustc.status().context("running rustc")?;
    ensure!(status.success(), "rustc failed on {source:?}: {status}");
    Ok(binary)
}

/// The probe's arguments for the service on `port`; `timeout` (e.g. `10s`) replaces its own.
pub fn args(port: u16, timeout: Option<&str>) -> Vec<String> {
    let timeout = timeout.map(|timeout| format!("-timeout={timeout}"));
    let port = format!("-port={port}");
    std::iter::once(port).chain(timeout).collect()
}

/// Times `runs` probes of the service on `port` and `runs` floor runs, alternating, after a
/// tenth as many warm-up pairs. Every probe must report healthy.
pub fn cost(probe: &Path, floor: &Path, port: u16, runs: usize) -> Result<ProbeCost> {
    let (mut probes, mut floors) = (Vec::new(), Vec::new());
    for run in 0..runs / 10 + runs {
        let probe_time = time(Command::new(probe).args(args(port, None)))?;
        let floor_time = time(&mut Command::new(floor))?;
        let times = probe_time
            .zip(floor_time)
            .context("probe or floor failed")?;
        if run >= runs / 10 {
            probes.push(times.0);
            floors.push(times.1);
        }
    }
    let (probe, floor) = (Spread::of(probes), Spread::of(floors));
    let ratio = probe.p50 / floor.p50.max(f64::EPSILON);
    Ok(ProbeCost {
        probe,
        floor,
        ratio,
    })
}

/// Runs the probe with `args` every 20 ms (dense enough for a p99, sparse enough not to add
/// load) until `done` says stop; returns the wall times and how many did not report healthy.
pub fn repeat(
    probe: &Path,
    args: &[String],
    mut done: impl FnMut() -> bool,
) -> Result<(Spread, usize)> {
    let (mut times, mut failures) = (Vec::new(), 0);
    while !done() {
        let start = Instant::now();
        failures += usize::from(time(Command::new(probe).args(args))?.is_none());
        times.push(start.elapsed().as_secs_f64());
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((Spread::of(times), failures))
}

/// Runs one command to the end with no output: its wall time in seconds, `None` if it failed.
fn time(command: &mut Command) -> Result<Option<f64>> {
    let start = Instant::now();
    let command = command.stdout(Stdio::null()).stderr(Stdio::null());
    let status = command.status().with_context(|| format!("{command:?}"))?;
    Ok(status.success().then(|| start.elapsed().as_secs_f64()))
}
