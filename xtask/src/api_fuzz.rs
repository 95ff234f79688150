//! `cargo xtask api-fuzz`: schemathesis, a fuzzer we did not write, against the live service and
//! its own `/openapi.json`, with its default checks (no server error, schema-conforming answers
//! and content types, valid data accepted, invalid data rejected).
//!
//! Two passes, each on a fresh database and a fresh process:
//! 1. the service as deployed (testability off): every documented operation;
//! 2. testability on: the testability operations only. They flip the instance unhealthy or fail
//!    its database on purpose, after which the health and account operations answer their
//!    documented 503s; those operations were fuzzed in pass 1 on a healthy instance, where any 5xx
//!    is a finding.
//!
//! schemathesis comes from PyPI (pinned below) and is installed with pip when missing. The seed
//! is fixed so a CI failure can be replayed exactly; `--seed` overrides it.

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use xshell::{Shell, cmd};

use crate::project::Project;

/// The schemathesis release the checks were written against.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// How long the service may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

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

    println!("== api-fuzz pass 1: every operation, testability off");
    fuzz(sh, &binary, false, &[], options)?;
    println!("== api-fuzz pass 2: the testability operations");
    fuzz(
        sh,
        &binary,
        true,
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

/// Runs one pass against a fresh instance and stops it with SIGTERM, which must exit 0.
fn fuzz(
    sh: &Shell,
    binary: &Path,
    testability: bool,
    filters: &[&str],
    options: &Options,
) -> Result<()> {
    let dir = tempfile_dir()?;
    let mut service = Service::start(binary, &dir, testability)?;
    let base = format!("http://{}", service.address);
    let spec = format!("{base}/openapi.json");
    let seed = options.seed.to_string();
    let examples = options.max_examples.to_string();
    // schemathesis keeps a cache directory where it runs: keep it out of the checkout.
    let _in_temp = sh.push_dir(&dir);
    let result = cmd!(
        sh,
        "schemathesis run {spec} --url {base} --seed {seed} --max-examples {examples} --no-color {filters...}"
    )
    .run()
    .context("schemathesis reported failures (see above; replay with the printed curl lines)");
    let stopped = service.stop();
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    stopped
}

/// A fresh, empty directory for one pass's database.
fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("accountservice-api-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The service under test; killed on drop if it was not stopped.
struct Service {
    child: Child,
    address: SocketAddr,
}

impl Service {
    fn start(binary: &Path, dir: &Path, testability: bool) -> Result<Self> {
        let mut command = Command::new(binary);
        command
            .current_dir(dir)
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--log-filter",
                "warn,accountservice::startup=info",
            ])
            .arg(format!("--testability={testability}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut service = Self {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        loop {
            let line = lines
                .recv_timeout(START_TIMEOUT)
                .context("the service did not log its address in time")?;
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let address = rest.split_whitespace().next().unwrap_or_default();
                service.address = address
                    .parse()
                    .with_context(|| format!("parsing the address in {line:?}"))?;
                // Keep draining stdout so the service never blocks on a full pipe.
                std::thread::spawn(move || for _ in lines {});
                return Ok(service);
            }
        }
    }

    /// SIGTERM, then a bounded wait for exit code 0.
    fn stop(&mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status()?;
        ensure!(status.success(), "kill -TERM {pid} failed");
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait()? {
                ensure!(
                    status.success(),
                    "the service exited with {status} after SIGTERM"
                );
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("the service did not exit within 10 s of SIGTERM")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
