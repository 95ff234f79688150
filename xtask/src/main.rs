//! Project automation, run as `cargo xtask <task>`: release artefacts, the container image, a local
//! Swarm deployment, the narrated demo of a replica healed by Swarm, the end-to-end container
//! scenarios, a connection flood under the stack's limits, the benchmarks, the three-node Swarm
//! lab, the root-only fault tests, the API fuzzing, the status page in a browser, the shipped
//! HAProxy and Prometheus configurations against real servers, and the gRPC health code and its
//! check, written in Rust instead of shell scripts.
//!
//! `main` only parses the command line and dispatches; each task lives in its own module.
//! Exit codes: 0 when the task succeeded, 1 when it failed (the error and its causes go to stderr).

mod api_fuzz;
mod bench;
mod browser;
mod codegen;
mod demo;
mod deploy;
mod dist;
mod docker;
mod e2e;
mod elf;
mod faults;
mod flood;
mod grpc_health;
mod haproxy;
mod image;
mod lab;
mod project;
mod prometheus;
mod server;
mod status_page;
mod wait;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use xshell::Shell;

use crate::project::Project;

/// Project automation for accountservice.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Builds static release binaries of accountservice and healthchecker into target/dist/.
    Dist,
    /// Runs `dist`, then builds the `FROM scratch` image offline and tags it
    /// `accountservice:latest` and `accountservice:<version>-<commit>`.
    Image,
    /// Deploys the image to the local Swarm as copyall.sh did (swarm init if needed, overlay
    /// network my_network, service recreated).
    Deploy(deploy::Options),
    /// The original tutorial's story on the local Docker Engine, narrated: two replicas with the
    /// testability switches on, one flipped unhealthy, Swarm replacing it, the task history and
    /// the fleet view; removes everything and leaves the swarm as it was (--keep: leaves the fleet
    /// running).
    Demo(demo::Options),
    /// Runs the end-to-end container scenarios on the local Docker Engine (builds the image
    /// first unless --no-build).
    E2e(e2e::Options),
    /// Builds the release binaries and measures throughput, latency, probe cost, memory and
    /// scale against a yardstick in the same run; writes target/bench/results.json and
    /// BENCHMARKS.md (--smoke: a short CI run that fails on errors or a crash, never on speed,
    /// and leaves BENCHMARKS.md alone).
    Bench(bench::Options),
    /// Builds a three-node Swarm in network namespaces on this machine (root), runs the
    /// multi-node scenarios (spread, node power loss, network cut, rolling update under load,
    /// unhealthy replica) and tears it down, checking that nothing is left.
    Lab(lab::Options),
    /// Internal: the client that `lab` runs inside the lab's network.
    #[command(hide = true)]
    LabClient(lab::client::Options),
    /// Runs the fault tests that need root (a full disk on a tmpfs, file modes), which
    /// `cargo test --workspace` lists as ignored; fails at once when not run as root.
    Faults,
    /// Fuzzes the live service against its own /openapi.json with schemathesis (installed from
    /// PyPI if missing): every operation, then the testability ones.
    ApiFuzz(api_fuzz::Options),
    /// Starts a fleet of three replicas on 127.0.0.1 (one forced unhealthy, one stopped) and
    /// checks the /status page as headless Chromium renders it (installed with apt-get when
    /// missing); keeps the screenshot and the fleet JSON in target/status-page/.
    StatusPage,
    /// Runs deploy/haproxy/haproxy.cfg with Debian's HAProxy (installed with apt if missing) in
    /// front of three instances: rolling restarts under keep-alive load lose no request, and an
    /// instance forced unhealthy stops getting requests within two check intervals.
    Haproxy(haproxy::Options),
    /// Checks deploy/prometheus/ with promtool (config, rules, rule tests; Debian's prometheus
    /// installed with apt if missing), the real service's /metrics in both formats, and a real
    /// Prometheus server scraping it; with --swarm also prometheus.yml's Swarm discovery against a
    /// real service.
    Prometheus(prometheus::Options),
    /// Floods the image, under the stack's limits (--cpus 1 --memory 64m) in a plain `docker run`
    /// container, with hostile connections far past its cap: never OOM-killed, never unhealthy,
    /// and serving a fresh request right after (needs an image: `image` or `e2e` first).
    Flood(flood::Options),
    /// Regenerates the committed gRPC health code from its .proto (--check: fails if it differs).
    Codegen(codegen::Options),
    /// Runs the health crate's example gRPC server, then the service's management port, against
    /// Python's grpcio-health-checking (installed from PyPI, pinned, if missing): Check, List,
    /// Watch, shutdown.
    GrpcHealth,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(task: Task) -> Result<()> {
    let sh = Shell::new()?;
    let project = Project::locate()?;
    sh.change_dir(&project.root);
    match task {
        Task::Dist => dist::run(&sh, &project).map(drop),
        Task::Image => image::run(&sh, &project).map(drop),
        Task::Deploy(options) => deploy::run(&sh, &project, &options),
        Task::Demo(options) => demo::run(&sh, &project, &options),
        Task::E2e(options) => e2e::run(&sh, &project, &options),
        Task::Lab(options) => lab::run(&sh, &project, &options),
        Task::LabClient(options) => lab::client::run(&options),
        Task::Bench(options) => bench::run(&sh, &project, &options),
        Task::ApiFuzz(options) => api_fuzz::run(&sh, &project, &options),
        Task::StatusPage => status_page::run(&sh, &project),
        Task::Haproxy(options) => haproxy::run(&sh, &project, &options),
        Task::Prometheus(options) => prometheus::run(&sh, &project, &options),
        Task::Faults => faults::run(&sh),
        Task::Flood(options) => flood::run(&sh, &options),
        Task::Codegen(options) => codegen::run(&sh, &project, &options),
        Task::GrpcHealth => grpc_health::run(&sh, &project),
    }
}
