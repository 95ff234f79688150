//! Entry point of the account service: parse settings, start logging, run until a signal.
//!
//! Exit codes (also in `--help`): 0 after a clean shutdown (SIGTERM or Ctrl-C) while healthy;
//! 1 when start-up or serving fails; 2 for invalid command-line arguments (clap), for
//! settings whose stop cannot fit `--stop-grace` ([`lifecycle::StopBudget`]) and for a
//! `--max-connections` that cannot fit the memory limit ([`startup::connection_caps`]); 3
//! ([`lifecycle::EXIT_UNHEALTHY`]) after a clean shutdown asked for while the instance's own health
//! was `DOWN`. Codes 1 and 3 come with one line on stderr giving the reason; 3 logs it too.

use std::process::ExitCode;

use accountservice::{
    config::Settings,
    lifecycle::{self, Signals, StopBudget, Stopped},
    startup::{self, Application},
    telemetry,
};
use anyhow::Context as _;
use clap::Parser as _;

fn main() -> ExitCode {
    let settings = match Settings::try_parse() {
        Ok(settings) => settings,
        // Invalid arguments: clap's first line names the flag and the reason; its usage hint
        // after it would make the error more than the one line a log collector keeps together.
        Err(error) if error.use_stderr() => {
            let rendered = error.render().to_string();
            let line = rendered.lines().find(|line| !line.trim().is_empty());
            eprintln!("accountservice: {}", line.unwrap_or("invalid arguments"));
            return ExitCode::from(2);
        }
        // --help and --version print to stdout and exit 0.
        Err(error) => error.exit(),
    };
    // Settings whose stop cannot fit the orchestrator's grace are invalid arguments too.
    let budget = match StopBudget::of(&settings) {
        Ok(budget) => budget,
        Err(error) => {
            eprintln!("accountservice: {error}");
            return ExitCode::from(2);
        }
    };
    // So is a connection cap that cannot fit the memory limit.
    if let Err(error) = startup::connection_caps(&settings) {
        eprintln!("accountservice: {error}");
        return ExitCode::from(2);
    }
    match run(settings, budget) {
        Ok(Stopped::Healthy) => ExitCode::SUCCESS,
        Ok(Stopped::Unhealthy(reason)) => {
            tracing::error!(
                exit_status = lifecycle::EXIT_UNHEALTHY,
                "stopped while unhealthy: {reason}"
            );
            eprintln!("accountservice: stopped while unhealthy: {reason}");
            ExitCode::from(lifecycle::EXIT_UNHEALTHY)
        }
        Err(error) => {
            // `{:#}` prints the whole cause chain on one line.
            eprintln!("accountservice: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(settings: Settings, budget: StopBudget) -> anyhow::Result<Stopped> {
    telemetry::init(settings.log_format, &settings.log_filter)
        .context("cannot initialise logging")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (outcome, hurried) = runtime.block_on(async {
        let app = match Application::build(&settings).await {
            Ok(app) => app,
            Err(error) => return (Err(error.into()), false),
        };
        // Before the "listening" line, so a SIGTERM right after it still drains.
        let signals = match Signals::install().context("cannot handle SIGTERM and SIGINT") {
            Ok(signals) => signals,
            Err(error) => return (Err(error), false),
        };
        let outcome = app
            .run_until_hurried(signals.first(), signals.second())
            .await
            .map_err(anyhow::Error::from);
        (outcome, signals.count() > 1)
    });
    // A blocking call that never returns (a read stuck on a hung disk) would hold a plain drop
    // of the runtime, and the exit with it, until the orchestrator's SIGKILL; it is left behind
    // instead, after the runtime's share of the grace, or at once after a second signal.
    let bound = if hurried {
        std::time::Duration::ZERO
    } else {
        budget.runtime
    };
    runtime.shutdown_timeout(bound);
    outcome
}
