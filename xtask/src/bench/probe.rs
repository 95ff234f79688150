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
    std::fs::write(&source, "fn main() {}\n")
        .with_context(|| format!("writing {}", source.display()))?;
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let status = Command::new(rustc)
        .args(["--edition", "2024", "--target", TARGET])
        .args(FLOOR_FLAGS.split_whitespace())
        .arg("-o")
        .args([&binary, &source])
        .status()
        .context("running rustc to build the static do-nothing binary")?;
    ensure!(
        status.success(),
        "rustc failed on {}: {status}",
        source.display()
    );
    Ok(binary)
}

/// The probe's arguments for the service on `port`; `timeout` (e.g. `10s`) replaces its own.
pub fn args(port: u16, timeout: Option<&str>) -> Vec<String> {
    let timeout = timeout.map(|timeout| format!("-timeout={timeout}"));
    std::iter::once(format!("-port={port}"))
        .chain(timeout)
        .collect()
}

/// Times `runs` probes of the service on `port` and `runs` floor runs, alternating, after a
/// tenth as many warm-up pairs. Every probe must report healthy.
pub fn cost(probe: &Path, floor: &Path, port: u16, runs: usize) -> Result<ProbeCost> {
    let mut times = (Vec::new(), Vec::new());
    for run in 0..runs / 10 + runs {
        let probe_time =
            time(Command::new(probe).args(args(port, None)))?.context("a probe failed")?;
        let floor_time = time(&mut Command::new(floor))?.context("the do-nothing binary failed")?;
        if run >= runs / 10 {
            times.0.push(probe_time);
            times.1.push(floor_time);
        }
    }
    let (probe, floor) = (Spread::of(times.0), Spread::of(times.1));
    Ok(ProbeCost {
        probe,
        floor,
        ratio: probe.p50 / floor.p50.max(f64::EPSILON),
    })
}

/// Runs the probe with `args` every 20 ms (dense enough for a p99, sparse enough not to add
/// load) until `until` says stop; returns the wall times and how many did not report healthy.
pub fn repeat_until(
    probe: &Path,
    args: &[String],
    mut until: impl FnMut() -> bool,
) -> Result<(Spread, usize)> {
    let (mut times, mut failures) = (Vec::new(), 0);
    while !until() {
        let start = Instant::now();
        let healthy = time(Command::new(probe).args(args))?.is_some();
        times.push(start.elapsed().as_secs_f64());
        failures += usize::from(!healthy);
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((Spread::of(times), failures))
}

/// Runs one command to the end with no output: its wall time in seconds, `None` if it failed.
fn time(command: &mut Command) -> Result<Option<f64>> {
    let start = Instant::now();
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {command:?}"))?;
    Ok(status.success().then(|| start.elapsed().as_secs_f64()))
}
