//! `cargo xtask flood`: a connection flood far past the cap against the image under the
//! shipped limits (`--cpus 1 --memory 64m`, as `deploy/swarm/stack.yml` gives each replica),
//! with a plain `docker run` container (no Swarm). Passes when, for the whole flood, the
//! container is never OOM-killed (same container, restart count 0, `OOMKilled` false) and
//! never unhealthy (Docker's health state polled throughout), its memory stays under the limit,
//! and it serves a fresh request right after.
//!
//! The flood mixes the hostile clients the server must bound: ones that send one request and
//! never read, ones that pipeline requests and never read, and ones that trickle a request head
//! that never ends. It targets only the container it started, stops by itself after
//! `--seconds`, and the container is removed whatever happens.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use xshell::{Shell, cmd};

use crate::docker::{MANAGEMENT_PORT, SERVICE_PORT};
use crate::e2e::HEALTH_FLAGS;
use crate::image::LATEST;
use crate::wait::{self, Poll};

/// Every container this task starts is named with this prefix (and its process id).
const NAME_PREFIX: &str = "edge-memory-flood";

/// The stack's limits for one replica.
const MEMORY: &str = "64m";
const MEMORY_BYTES: u64 = 64 << 20;
const CPUS: &str = "1";

/// Threads opening connections.
const OPENERS: usize = 64;
/// Bound on every connect and write of the flood.
const FLOOD_IO: Duration = Duration::from_millis(500);
/// How often the container's state and memory are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// How long the container may take to turn healthy, and a fresh request to be served after.
const DEADLINE: Duration = Duration::from_secs(30);

/// Options of `cargo xtask flood`.
#[derive(Debug, Args)]
pub struct Options {
    /// The image to flood (built by `cargo xtask image` or `e2e`).
    #[arg(long, default_value = LATEST)]
    image: String,
    /// Seconds the flood lasts.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(5..=600))]
    seconds: u64,
    /// Connections the flood tries to open (and hold) in all.
    #[arg(long, default_value_t = 8000, value_parser = clap::value_parser!(u64).range(100..=50_000))]
    connections: u64,
}

/// The container, removed when dropped.
struct Container {
    id: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Ok(sh) = Shell::new() {
            let id = &self.id;
            let removed = cmd!(sh, "docker rm --force --volumes {id}")
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
                .run();
            if let Err(error) = removed {
                eprintln!("flood: could not remove container {id}: {error}");
            }
        }
    }
}

/// One look at the container.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    id: String,
    restarts: u64,
    oom_killed: bool,
    running: bool,
    health: String,
}

fn state(sh: &Shell, id: &str) -> Result<State> {
    let format = "{{.Id}} {{.RestartCount}} {{.State.OOMKilled}} {{.State.Running}} \
                  {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}";
    let line = cmd!(sh, "docker container inspect --format {format} {id}")
        .quiet()
        .read()?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [id, restarts, oom, running, health] = fields[..] else {
        bail!("unexpected docker inspect output {line:?}");
    };
    Ok(State {
        id: id.to_owned(),
        restarts: restarts.parse()?,
        oom_killed: oom == "true",
        running: running == "true",
        health: health.to_owned(),
    })
}

/// The container's memory as its control group counts it, in bytes: now and the peak so far
/// (cgroup v1 `memory.usage_in_bytes` and `memory.max_usage_in_bytes`, v2 `memory.current` and
/// `memory.peak`), read from the host; `None` when the engine's groups are not visible here.
fn cgroup_memory(id: &str) -> Option<(u64, u64)> {
    let read =
        |path: String| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    let v1 = format!("/sys/fs/cgroup/memory/docker/{id}");
    if let (Some(now), Some(peak)) = (
        read(format!("{v1}/memory.usage_in_bytes")),
        read(format!("{v1}/memory.max_usage_in_bytes")),
    ) {
        return Some((now, peak));
    }
    let v2 = format!("/sys/fs/cgroup/system.slice/docker-{id}.scope");
    let now = read(format!("{v2}/memory.current"))?;
    Some((now, read(format!("{v2}/memory.peak")).unwrap_or(now)))
}

/// One look during the flood: the container's state and its memory (now, peak).
struct Sample {
    state: State,
    memory: Option<(u64, u64)>,
}

/// What the flood's clients did.
#[derive(Debug, Default)]
struct Counts {
    attempted: AtomicU64,
    connected: AtomicU64,
    failed: AtomicU64,
}

/// Opens connections to `target` until `stop` or its share of `total` is reached, each with
/// one of the hostile behaviours, and holds them until `stop`.
fn opener(index: usize, target: SocketAddr, total: u64, counts: &Counts, stop: &AtomicBool) {
    let share = total / OPENERS as u64 + u64::from((index as u64) < total % OPENERS as u64);
    let pipelined = b"GET /health HTTP/1.1\r\nHost: flood\r\n\r\n".repeat(400);
    let mut trickled = b"GET /accounts/10000 HTTP/1.1\r\nHost: flood\r\nX-Pad: ".to_vec();
    trickled.resize(15_000, b'a');
    let mut held = Vec::new();
    for n in 0..share {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        counts.attempted.fetch_add(1, Ordering::Relaxed);
        let Ok(mut stream) = TcpStream::connect_timeout(&target, FLOOD_IO) else {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        counts.connected.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_write_timeout(Some(FLOOD_IO));
        let payload: &[u8] = match n % 3 {
            0 => b"GET /health HTTP/1.1\r\nHost: flood\r\n\r\n",
            1 => &pipelined,
            _ => &trickled,
        };
        // Whatever the server makes of it; nothing is ever read.
        let _ = stream.write_all(payload);
        held.push(stream);
    }
    while !stop.load(Ordering::Relaxed) {
        thread::park_timeout(Duration::from_millis(100));
    }
    drop(held);
}

/// Runs the flood.
pub fn run(sh: &Shell, options: &Options) -> Result<()> {
    let image = &options.image;
    crate::image::image_size(sh, image)
        .with_context(|| format!("no image {image}: run `cargo xtask image` first"))?;
    rlimit::increase_nofile_limit(options.connections + 1024)
        .context("raising the open-file limit")?;
    let name = format!("{NAME_PREFIX}-{}", std::process::id());
    let (public, management) = (
        format!("127.0.0.1::{SERVICE_PORT}"),
        format!("127.0.0.1::{MANAGEMENT_PORT}"),
    );
    let mut args = vec![
        "--name",
        &name,
        "--cpus",
        CPUS,
        "--memory",
        MEMORY,
        "--memory-swap",
        MEMORY,
        "--publish",
        &public,
        "--publish",
        &management,
    ];
    args.extend(HEALTH_FLAGS);
    args.push(image);
    let id = cmd!(sh, "docker run --detach {args...}")
        .quiet()
        .read()
        .context("docker run")?;
    let container = Container { id };
    let id = container.id.clone();
    println!(
        "flood: container {name} ({}) with --cpus {CPUS} --memory {MEMORY}",
        &id[..12]
    );

    wait::until(
        "the container to be healthy",
        DEADLINE,
        SAMPLE_EVERY,
        || {
            let now = state(sh, &id)?;
            ensure!(now.running, "the container stopped: {now:?}");
            Ok(if now.health == "healthy" {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{now:?}"))
            })
        },
    )?;
    let first = state(sh, &id)?;
    let logs = cmd!(sh, "docker logs {id}").quiet().read()?;
    let caps = logs
        .lines()
        .find(|line| line.contains("connection caps set"))
        .unwrap_or("(no caps line logged)")
        .to_owned();
    println!("flood: {caps}");

    // The container's own address on its bridge network: no userland proxy in between.
    let format = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}";
    let ip = cmd!(sh, "docker container inspect --format {format} {id}")
        .quiet()
        .read()?;
    let ip = ip
        .split_whitespace()
        .next()
        .context("the container has no address")?;
    let target: SocketAddr = format!("{ip}:{SERVICE_PORT}").parse()?;
    let started = Instant::now();
    let flood_for = Duration::from_secs(options.seconds);
    println!(
        "flood: {} connections at {target} for {flood_for:?}",
        options.connections
    );

    let (counts, stop) = (
        Arc::new(Counts::default()),
        Arc::new(AtomicBool::new(false)),
    );
    let openers: Vec<_> = (0..OPENERS)
        .map(|index| {
            let (counts, stop, total) = (counts.clone(), stop.clone(), options.connections);
            thread::spawn(move || opener(index, target, total, &counts, &stop))
        })
        .collect();
    let mut samples: Vec<Sample> = Vec::new();
    let watched = (|| -> Result<()> {
        while started.elapsed() < flood_for {
            let now = state(sh, &id)?;
            let memory = cgroup_memory(&id);
            samples.push(Sample {
                state: now.clone(),
                memory,
            });
            ensure!(
                now.id == first.id && now.restarts == 0 && !now.oom_killed && now.running,
                "the container died or was replaced during the flood: {now:?}"
            );
            ensure!(
                now.health == "healthy",
                "the container turned {} during the flood",
                now.health
            );
            thread::sleep(SAMPLE_EVERY);
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    for opener in openers {
        opener.thread().unpark();
        let _ = opener.join();
    }
    let ended = Instant::now();
    watched?;

    // Right after: a fresh client is served.
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()?;
    let url = format!("http://{target}/accounts/10000");
    wait::until(
        "a fresh request after the flood",
        DEADLINE,
        Duration::from_millis(100),
        || {
            Ok(match client.get(&url).send().map(|r| r.status()) {
                Ok(status) if status.is_success() => Poll::Ready(()),
                seen => Poll::Pending(format!("{seen:?}")),
            })
        },
    )?;
    let served_after = ended.elapsed();
    let last = state(sh, &id)?;
    ensure!(
        last.id == first.id && last.restarts == 0 && !last.oom_killed && last.health == "healthy",
        "after the flood: {last:?}"
    );

    let peak = samples
        .iter()
        .filter_map(|sample| sample.memory.map(|m| m.1))
        .max();
    let healthy = samples
        .iter()
        .filter(|sample| sample.state.health == "healthy")
        .count();
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    println!("\n== flood summary");
    println!(
        "  connections: {} attempted, {} connected (the cap's, the backlog's and the proxy-free \
         kernel's), {} failed or timed out",
        counts.attempted.load(Ordering::Relaxed),
        counts.connected.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed)
    );
    println!(
        "  health: {healthy} of {} samples healthy (every {SAMPLE_EVERY:?})",
        samples.len()
    );
    match peak {
        Some(peak) => {
            println!(
                "  memory: peak {:.1} MiB of the {:.0} MiB limit ({:.0}%), cgroup max usage",
                mib(peak),
                mib(MEMORY_BYTES),
                100.0 * peak as f64 / MEMORY_BYTES as f64
            );
            ensure!(peak < MEMORY_BYTES, "memory reached the limit");
        }
        None => println!("  memory: the engine's control groups are not visible from here"),
    }
    println!(
        "  after: same container, restarts {}, OOMKilled {}, {}; a fresh request served {:.2} s \
         after the flood stopped",
        last.restarts,
        last.oom_killed,
        last.health,
        served_after.as_secs_f64()
    );
    drop(container);
    Ok(())
}
