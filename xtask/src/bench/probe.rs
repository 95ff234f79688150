//! Probe cost: the healthchecker against the running service, timed against a static do-nothing
//! binary (the floor of any `exec`), interleaved so that a noisy machine weighs on both alike.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use super::stats::Spread;
use crate::dist::TARGET;

/// Builds `fn main() {}` with the probe's profile settings (size first, `panic = "abort"`, fat
/// LTO, stripped) and the same static linking, into `dir/empty`: the exec floor, and what an
/// empty static std program weighs.
pub fn build_floor(dir: &Path) -> Result<PathBuf> {
    let source = dir.join("empty.rs");
    let binary = dir.join("empty");
    std::fs::write(&source, "fn main() {}\n")
        .with_context(|| format!("writing {}", source.display()))?;
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let status = Command::new(rustc)
        .args(["--edition", "2024", "--target", TARGET])
        .args(["-C", "opt-level=z", "-C", "panic=abort", "-C", "lto=fat"])
        .args(["-C", "codegen-units=1", "-C", "strip=symbols"])
        .args(["-C", "target-feature=+crt-static", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .context("running rustc to build the static do-nothing binary")?;
    ensure!(
        status.success(),
        "rustc failed on {}: {status}",
        source.display()
    );
    Ok(binary)
}

/// Probe and floor timings from one interleaved series.
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    /// The healthchecker's wall times.
    pub probe: Spread,
    /// The do-nothing binary's wall times.
    pub floor: Spread,
}

impl Cost {
    /// Median probe time over median floor time.
    pub fn ratio(&self) -> f64 {
        self.probe.p50.as_secs_f64() / self.floor.p50.as_secs_f64().max(f64::EPSILON)
    }
}

/// The probe's arguments as Docker runs it (see the Dockerfile's HEALTHCHECK), with its own
/// timeout replaced if `timeout` is given (e.g. `10s`).
pub fn probe_args(port: u16, timeout: Option<&str>) -> Vec<String> {
    let mut args = vec![format!("-port={port}")];
    args.extend(timeout.map(|timeout| format!("-timeout={timeout}")));
    args
}

/// Times `runs` probes of the service on `port` and `runs` floor runs, alternating; a first
/// tenth of each warms caches and is not counted. Every probe must report healthy.
pub fn cost(probe: &Path, floor: &Path, port: u16, runs: usize) -> Result<Cost> {
    let args = probe_args(port, None);
    let warmup = runs / 10;
    let mut probe_times = Vec::with_capacity(runs);
    let mut floor_times = Vec::with_capacity(runs);
    for run in 0..warmup + runs {
        let probe_time = time(Command::new(probe).args(&args))?;
        let floor_time = time(&mut Command::new(floor))?;
        if run >= warmup {
            probe_times.push(probe_time);
            floor_times.push(floor_time);
        }
    }
    Ok(Cost {
        probe: Spread::of(probe_times).context("no probe timings")?,
        floor: Spread::of(floor_times).context("no floor timings")?,
    })
}

/// Runs the probe against `port` over and over until `until` returns true, keeping each wall
/// time; a probe that is not healthy is counted, not fatal, so the caller can report them all.
pub fn repeat_until(
    probe: &Path,
    args: &[String],
    mut until: impl FnMut() -> bool,
) -> Result<(Vec<Duration>, usize)> {
    let mut times = Vec::new();
    let mut failures = 0;
    while !until() {
        let start = Instant::now();
        let status = Command::new(probe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("running {}", probe.display()))?;
        times.push(start.elapsed());
        if !status.success() {
            failures += 1;
        }
        // A probe every 20 ms: dense enough for a p99, sparse enough not to add load.
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((times, failures))
}

/// Runs one command to the end with no output and returns its wall time; a non-zero exit fails.
fn time(command: &mut Command) -> Result<Duration> {
    let start = Instant::now();
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {command:?}"))?;
    let elapsed = start.elapsed();
    ensure!(status.success(), "{command:?} failed: {status}");
    Ok(elapsed)
}
