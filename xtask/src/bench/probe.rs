//! The healthchecker as Docker runs it: timed against a static do-nothing binary (the floor of
//! any `exec`), interleaved so that a noisy machine weighs on both alike, and run over and over
//! while a server is saturated.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

use super::results::{ProbeCost, Spread};
use crate::dist::TARGET;

/// The rustc flags of the floor: the probe's profile (size first, `panic = "abort"`, fat LTO,
/// stripped) and the same static linking.
pub const FLOOR_FLAGS: &str = "-C opt-level=z -C panic=abort -C lto=fat -C codegen-units=1 \
                               -C strip=symbols -C target-feature=+crt-static";

/// Builds `fn main() {}` into `dir/empty`: the exec floor, and what an empty static std program
/// weighs.
pub fn build_floor(sh: &Shell, dir: &Path) -> Result<PathBuf> {
    let (source, binary) = (dir.join("empty.rs"), dir.join("empty"));
    std::fs::write(&source, "fn main() {}\n")?;
    let rustc = std::env::var("RUSTC").unwrap_or("rustc".into());
    let flags = FLOOR_FLAGS.split_whitespace();
    let build = cmd!(sh, "{rustc} --edition 2024 --target {TARGET} {flags...}");
    build.arg("-o").args([&binary, &source]).run()?;
    Ok(binary)
}

/// Times `runs` probes of the service on `port` and `runs` floor runs, alternating, after a
/// tenth as many warm-up pairs. Every probe must report healthy.
pub fn cost(probe: &Path, floor: &Path, port: u16, runs: usize) -> Result<ProbeCost> {
    let mut pairs = Vec::new();
    for _ in 0..runs / 10 + runs {
        let probe_time = time(Command::new(probe).arg(format!("-port={port}")))?;
        let times = probe_time.zip(time(&mut Command::new(floor))?);
        pairs.push(times.context("probe or floor failed")?);
    }
    let (probes, floors) = pairs.split_off(runs / 10).into_iter().unzip();
    let (probe, floor) = (Spread::of(probes), Spread::of(floors));
    Ok(ProbeCost {
        ratio: probe.p50 / floor.p50.max(f64::EPSILON),
        probe,
        floor,
    })
}

/// Runs `probe` every 20 ms (dense enough for a p99, sparse enough not to add load) until `done`
/// says stop; returns the wall times and how many did not report healthy.
pub fn repeat(probe: &mut Command, mut done: impl FnMut() -> bool) -> Result<(Spread, usize)> {
    let (mut times, mut failures) = (Vec::new(), 0);
    while !done() {
        let start = Instant::now();
        failures += usize::from(time(probe)?.is_none());
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
