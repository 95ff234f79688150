//! A tiny HTTP probe for Docker `HEALTHCHECK`: one GET, exit 0 on a 2xx status and 1 on
//! anything else, one line on stdout saying why, and never past its own deadline.
//!
//! It runs every few seconds in every replica for the life of the service, inside a
//! `FROM scratch` image, so it is built static and small: the standard library, `httparse`
//! for the response and `lexopt` for the command line; no async runtime, no TLS, and no
//! name resolution (a static glibc cannot resolve without NSS modules).
//!
//! Layout, one concept per module:
//! - [`args`]: command line and `HEALTHCHECK_*` variables into a validated [`args::Command`];
//! - [`target`]: host (IP literal or `localhost`), port and path, and `--url` parsing;
//! - [`timeout`]: the overall budget, `2s` / `500ms`;
//! - [`http`]: request bytes, response-head parsing and body-excerpt decoding, no I/O;
//! - [`text`]: what a peer sent, escaped for one line;
//! - [`probe`]: the connection, under one deadline re-armed before every socket call;
//! - [`output`]: the printed line, bounded.
//!
//! [`run`] ties them together for `main`.

pub mod args;
pub mod http;
pub mod output;
pub mod probe;
pub mod target;
pub mod text;
pub mod timeout;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use args::Command;

/// How the process ends. Docker reads 0 as healthy, 1 as unhealthy and reserves 2, so
/// there is nothing else, not even for usage errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: healthy, or `--help` / `--version` printed.
    Healthy,
    /// 1: unhealthy, or a usage error.
    Unhealthy,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        match exit {
            Exit::Healthy => ExitCode::SUCCESS,
            Exit::Unhealthy => ExitCode::FAILURE,
        }
    }
}

/// Parses the arguments (without the program name) with `env` as the environment, runs the
/// probe, and writes its one line to `stdout` (or a usage error to `stderr`).
///
/// Write errors are ignored: the exit status is what Docker acts on, and a closed stdout
/// must not turn a healthy service into an unhealthy one.
pub fn run(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<OsString>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Exit {
    let config = match args::parse(args, env) {
        Ok(Command::Probe(config)) => config,
        Ok(Command::Help) => {
            let _ = stdout.write_all(args::HELP.as_bytes());
            return Exit::Healthy;
        }
        Ok(Command::Version) => {
            let _ = stdout
                .write_all(concat!("healthchecker ", env!("CARGO_PKG_VERSION"), "\n").as_bytes());
            return Exit::Healthy;
        }
        Err(error) => {
            let line = format!("healthchecker: {error} (see --help)\n");
            let _ = stderr.write_all(line.as_bytes());
            return Exit::Unhealthy;
        }
    };
    let result = probe::probe(&config.target, config.timeout);
    let exit = if result.is_ok() {
        Exit::Healthy
    } else {
        Exit::Unhealthy
    };
    if !(config.quiet && exit == Exit::Healthy) {
        let _ = stdout.write_all(output::line(&result).as_bytes());
    }
    exit
}
