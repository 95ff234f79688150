//! Logging: the `tracing` subscriber, the one process-wide thing the service installs, with
//! [`Repeats`], which keeps a sustained failure from flooding the log.

mod repeats;

use std::{io::IsTerminal as _, time::Duration};

pub use repeats::{MAX_CAUSES, Repeats};

use tracing_subscriber::{
    Layer as _, filter::Targets, fmt, layer::SubscriberExt as _, util::SubscriberInitExt as _,
};

use crate::config::LogFormat;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The `--log-filter` directive does not parse.
    #[error("invalid log filter {filter:?}")]
    Filter {
        /// The rejected directive.
        filter: String,
        /// The parser's reason.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber is already installed.
    #[error("a tracing subscriber is already installed")]
    AlreadyInstalled(#[source] tracing_subscriber::util::TryInitError),
}

/// How long a cause of warnings or errors is logged once: the first line in full, the rest
/// counted and summed up with the next line of that cause after the window.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(10);

/// Installs the global subscriber writing to stdout in `format`, filtered by `filter`: a level
/// or `target=level` directives, e.g. `warn,accountservice=debug`. Warnings and errors of one
/// cause are logged once per [`REPEAT_WINDOW`] ([`Repeats`]).
///
/// The filter is `tracing_subscriber`'s `Targets`, not `EnvFilter`: the same directive syntax
/// minus span-field matching, without the regex engine that `EnvFilter` brings (a large share
/// of the binary against the image's size budget).
pub fn init(format: LogFormat, filter: &str) -> Result<(), TelemetryError> {
    let targets: Targets = filter.parse().map_err(|source| TelemetryError::Filter {
        filter: filter.to_owned(),
        source,
    })?;
    // Colours only for a person at a terminal, never in files or container logs.
    let layer = fmt::layer()
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(std::io::stdout);
    let layer = match format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer.json().flatten_event(true).boxed(),
    };
    tracing_subscriber::registry()
        .with(Repeats::new(REPEAT_WINDOW, layer).with_filter(targets))
        .try_init()
        .map_err(TelemetryError::AlreadyInstalled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_that_does_not_parse_is_an_error_naming_it() {
        let error = init(LogFormat::Text, "accountservice=loud").unwrap_err();
        assert!(matches!(error, TelemetryError::Filter { .. }), "{error:?}");
        assert!(error.to_string().contains("accountservice=loud"));
    }
}
