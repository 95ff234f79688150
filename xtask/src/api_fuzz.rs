//! `cargo xtask api-fuzz`: schemathesis, a fuzzer we did not write, against the live service and
//! its own `/openapi.json`, with its default checks (no server error, schema-conforming answers
//! and content types, valid data accepted, invalid data rejected).
//!
//! Two passes, each on a fresh database and a fresh process:
//! 1. the service as deployed (testability off), with a fleet view (`--peers`) of one peer that
//!    refuses connections, so `/health/fleet` answers at once: every documented operation;
//! 2. testability on: the testability operations only. They flip the instance unhealthy or fail
//!    its database on purpose, after which the health and account operations answer their
//!    documented 503s; those operations were fuzzed in pass 1 on a healthy instance, where any 5xx
//!    is a finding.
//!
//! schemathesis comes from PyPI (pinned below) and is installed with pip when missing. The seed
//! is fixed so a CI failure can be replayed exactly; `--seed` overrides it.

use std::{path::Path, process::Command, time::Duration};

use anyhow::{Context, Result, ensure};
use clap::Args;
use xshell::{Shell, cmd};

use crate::{project::Project, server::Server};

/// The schemathesis release the checks were written against.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// How long the service may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the service may take to drain and exit 0 after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The peer of pass 1's fleet view: the discard port on loopback, where nothing listens, so a
/// round of the view is one refused connection (the replica shows as `UNREACHABLE`) and never
/// waits for the health timeout.
const UNREACHABLE_PEER: &str = "127.0.0.1:9";

/// Options of `cargo xtask api-fuzz`.
#[derive(Debug, Args)]
pub struct Options {
    /// Hypothesis seed; fixed by default so runs are reproducible.
    #[arg(long, default_value_t = 20_261_125)]
    seed: u64,
    /// Examples per operation and phase.
    #[arg(long, default_value_t = 200)]
    max_examples: u32,
}

/// Builds the service, then runs both passes.
pub fn run(sh: &Shell, project: &Project, options: &Options) -> Result<()> {
    ensure_schemathesis(sh)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    cmd!(
        sh,
        "{cargo} build --package accountservice --bin accountservice"
    )
    .run()
    .context("building accountservice")?;
    let binary = project.target_dir.join("debug").join("accountservice");

    println!("== api-fuzz pass 1: every operation, testability off, a fleet view on");
    fuzz(sh, &binary, false, Some(UNREACHABLE_PEER), &[], options)?;
    println!("== api-fuzz pass 2: the testability operations");
    fuzz(
        sh,
        &binary,
        true,
        None,
        &["--include-path-regex", "^/testability/"],
        options,
    )?;
    println!("api-fuzz: both passes found no issue");
    Ok(())
}

/// Installs the pinned schemathesis with pip unless a `schemathesis` command already answers.
fn ensure_schemathesis(sh: &Shell) -> Result<()> {
    if cmd!(sh, "schemathesis --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
    {
        return Ok(());
    }
    println!("schemathesis not found: installing {SCHEMATHESIS} from PyPI");
    cmd!(
        sh,
        "python3 -m pip install --quiet --disable-pip-version-check {SCHEMATHESIS}"
    )
    .run()
    .context("installing schemathesis with pip")?;
    cmd!(sh, "schemathesis --version")
        .quiet()
        .run()
        .context("schemathesis was installed but does not run (is pip's bin directory on PATH?)")
}

/// Runs one pass against a fresh instance (with a fleet view of `peers`, if any) and stops it
/// with SIGTERM, which must exit 0 (or 3 when the testability operations left it unhealthy).
fn fuzz(
    sh: &Shell,
    binary: &Path,
    testability: bool,
    peers: Option<&str>,
    filters: &[&str],
    options: &Options,
) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("accountservice-api-fuzz-")
        .tempdir()
        .context("creating a temporary directory for the pass")?;
    let mut command = Command::new(binary);
    command
        .current_dir(dir.path())
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--log-filter",
            "warn,accountservice::startup=info",
        ])
        .arg(format!("--testability={testability}"));
    if let Some(peers) = peers {
        command.arg(format!("--peers={peers}"));
    }
    let service = Server::spawn("accountservice", command, START_TIMEOUT)?;
    let base = format!("http://{}", service.addr);
    let spec = format!("{base}/openapi.json");
    let seed = options.seed.to_string();
    let examples = options.max_examples.to_string();
    // schemathesis keeps a cache directory where it runs: keep it out of the checkout.
    let _in_temp = sh.push_dir(dir.path());
    let result = cmd!(
        sh,
        "schemathesis run {spec} --url {base} --seed {seed} --max-examples {examples} --no-color {filters...}"
    )
    .run()
    .context("schemathesis reported failures (see above; replay with the printed curl lines)");
    let stopped = service.stop(STOP_GRACE, false);
    result?;
    let status = stopped?;
    // The testability operations may leave the instance unhealthy, which makes a clean stop
    // exit 3 (see `accountservice --help`).
    let clean: &[i32] = if testability { &[0, 3] } else { &[0] };
    ensure!(
        status.code().is_some_and(|code| clean.contains(&code)),
        "the service did not shut down cleanly on SIGTERM ({status}); expected code {clean:?}"
    );
    Ok(())
}
