//! Entry point of the account service: parse settings, start logging, run until a signal.
//!
//! Exit codes: 0 after a clean shutdown (SIGTERM or Ctrl-C), 1 when start-up or serving fails
//! (the reason is printed as one line on stderr), 2 for invalid command-line arguments (clap).

use std::process::ExitCode;

use accountservice::{config::Settings, shutdown, startup::Application, telemetry};
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
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the whole cause chain on one line.
            eprintln!("accountservice: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(settings: Settings) -> anyhow::Result<()> {
    telemetry::init(settings.log_format, &settings.log_filter)
        .context("cannot initialise logging")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let app = Application::build(&settings).await?;
        // Before the "listening" line, so a SIGTERM right after it still drains.
        let signals = shutdown::Signals::install().context("cannot handle SIGTERM and SIGINT")?;
        app.run_until(signals.received()).await?;
        anyhow::Ok(())
    })
}
