//! `cargo xtask grpc-health`: the `health` crate's gRPC health service against a client we did
//! not write, Python's `grpcio-health-checking` (its own `HealthStub`), in the example server
//! and in the real service.
//!
//! Builds the example server (`crates/health/examples/grpc_health_server.rs`) and the
//! `accountservice` binary, and runs `grpc_health_client.py` next to this file. Against the
//! example, started on a free port, it asserts: `Check` of `""`, `liveness`, `readiness` and
//! every component; `NOT_FOUND` for an unknown name and `SERVICE_UNKNOWN` when watching one;
//! `List`; `Watch` seeing `SERVING` -> `NOT_SERVING` -> `SERVING` as a component fails and
//! recovers; and every open `Watch` ending at shutdown, with the example exiting 0. Against the
//! service's management port (h2c next to HTTP/1.1): its names, `NOT_FOUND`, `List`, `Watch`
//! across the testability switches (forced unhealthy and back, the database down and back,
//! flipped over HTTP/1.1 on the same port), and SIGTERM with `Watch` calls open, the service
//! exiting 0. The client packages come from PyPI, pinned below, installed with pip only when
//! the installed versions differ.

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

use crate::project::Project;

/// The client release the checks were written against (grpcio 1.85.3's stub has `List`), and
/// the grpcio and protobuf it runs on, pinned too so a run is reproducible.
const PINS: [(&str, &str); 3] = [
    ("grpcio", "1.85.3"),
    ("grpcio-health-checking", "1.85.1"),
    ("protobuf", "7.36.2"),
];

/// Installs the client if needed, builds the example, runs the client's scenario.
pub fn run(sh: &Shell, project: &Project) -> Result<()> {
    ensure_client(sh)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    cmd!(
        sh,
        "{cargo} build --package health --features grpc --example grpc_health_server"
    )
    .run()
    .context("building the example gRPC health server")?;
    cmd!(
        sh,
        "{cargo} build --package accountservice --bin accountservice"
    )
    .run()
    .context("building the accountservice binary")?;
    let debug = project.target_dir.join("debug");
    let example = debug.join("examples").join("grpc_health_server");
    let service = debug.join("accountservice");
    let client = project
        .root
        .join("xtask")
        .join("src")
        .join("grpc_health_client.py");
    cmd!(sh, "python3 {client} {example} {service}")
        .run()
        .context("the gRPC health scenario failed (see above)")
}

/// Installs the pinned packages with pip unless exactly those versions are installed.
fn ensure_client(sh: &Shell) -> Result<()> {
    let names: Vec<&str> = PINS.iter().map(|(name, _)| *name).collect();
    let query = "import importlib.metadata as m, sys\nfor p in sys.argv[1:]:\n    try: print(m.version(p))\n    except m.PackageNotFoundError: print('none')";
    let installed = cmd!(sh, "python3 -c {query} {names...}")
        .quiet()
        .read()
        .context("asking python3 which packages are installed (is python3 installed?)")?;
    let wanted: Vec<&str> = PINS.iter().map(|(_, version)| *version).collect();
    if installed.lines().eq(wanted.iter().copied()) {
        return Ok(());
    }
    let specs: Vec<String> = PINS.iter().map(|(n, v)| format!("{n}=={v}")).collect();
    println!("installing {} from PyPI", specs.join(" "));
    cmd!(
        sh,
        "python3 -m pip install --quiet --disable-pip-version-check {specs...}"
    )
    .run()
    .context("installing the gRPC health client with pip")
}
