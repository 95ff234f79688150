//! Entry point of the account service: parse settings, start logging, run until a signal.
//!
//! Exit codes (also in `--help`): 0 after a clean shutdown (SIGTERM or Ctrl-C) while healthy;
//! 1 when start-up or serving fails; 2 for invalid command-line arguments (clap); 3
//! ([`lifecycle::EXIT_UNHEALTHY`]) after a clean shutdown asked for while the instance's own health
//! was `DOWN`. Codes 1 and 3 come with one line on stderr giving the reason; 3 logs it too.

use std::process::ExitCode;

use accountservice::{
    config::Settings,
    lifecycle::{self, Signals, Stopped},
    startup::Application,
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
    match run(settings) {
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

fn run(settings: Settings) -> anyhow::Result<Stopped> {
    telemetry::init(settings.log_format, &settings.log_filter)
        .context("cannot initialise logging")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let app = Application::build(&settings).await?;
        // Before the "listening" line, so a SIGTERM right after it still drains.
        let signals = Signals::install().context("cannot handle SIGTERM and SIGINT")?;
        Ok(app.run_until(signals.received()).await?)
    })
}
