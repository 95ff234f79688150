//! The service's one typed configuration: command-line flags with `ACCOUNTSERVICE_*` fallbacks.
//!
//! Nothing else in the crate reads the environment.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};

/// Everything the service can be told at start. `--help` documents each field.
#[derive(Debug, Clone, Parser)]
#[command(name = "accountservice", version, about, long_about = None)]
pub struct Settings {
    /// TCP port to listen on; 0 picks a free port (the log says which).
    #[arg(long, env = "ACCOUNTSERVICE_PORT", default_value_t = 6767)]
    pub port: u16,

    /// Address to bind the listener to.
    #[arg(long, env = "ACCOUNTSERVICE_BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// Path of the redb database file; created if missing, refused if it is not a database.
    #[arg(long, env = "ACCOUNTSERVICE_DB_PATH", default_value = "accounts.db")]
    pub db_path: PathBuf,

    /// Number of fake accounts to make sure exist at start (ids 10000.., names Person_0..);
    /// existing accounts are never overwritten. 0 disables seeding.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_SEED_ACCOUNTS",
        default_value_t = 100,
        value_parser = clap::value_parser!(u64).range(0..=MAX_SEED_ACCOUNTS)
    )]
    pub seed_accounts: u64,

    /// Log output format.
    #[arg(long, env = "ACCOUNTSERVICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` env-filter syntax, e.g. `info` or `info,accountservice=debug`.
    #[arg(long, env = "ACCOUNTSERVICE_LOG", default_value = "info")]
    pub log_filter: String,

    /// Seconds to let in-flight requests finish after SIGTERM/Ctrl-C before closing connections.
    /// The default stays below Docker's 10 s stop grace period, so the database is closed before
    /// the orchestrator escalates to SIGKILL.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_SHUTDOWN_TIMEOUT",
        default_value = "8",
        value_parser = parse_seconds
    )]
    pub shutdown_timeout: Duration,

    /// Seconds to keep retrying while another process holds the database file before giving up;
    /// 0 tries once.
    #[arg(
        long,
        env = "ACCOUNTSERVICE_DB_LOCK_TIMEOUT",
        default_value = "2",
        value_parser = parse_seconds
    )]
    pub db_lock_timeout: Duration,
}

/// Upper bound of `--seed-accounts`: keeps a typo from seeding for hours.
pub const MAX_SEED_ACCOUNTS: u64 = 100_000_000;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Parses a non-negative number of seconds, fractions allowed (`10`, `0.5`).
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("`{text}` is not a non-negative, finite number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, clap::Error> {
        Settings::try_parse_from(std::iter::once("accountservice").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_original_service() {
        let settings = parse(&[]).unwrap();
        assert_eq!(settings.port, 6767);
        assert_eq!(settings.bind, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(settings.db_path, PathBuf::from("accounts.db"));
        assert_eq!(settings.seed_accounts, 100);
        assert_eq!(settings.log_format, LogFormat::Text);
        assert_eq!(settings.shutdown_timeout, Duration::from_secs(8));
        assert_eq!(settings.db_lock_timeout, Duration::from_secs(2));
    }

    #[test]
    fn flags_are_parsed_into_typed_values() {
        let settings = parse(&[
            "--port",
            "0",
            "--bind",
            "::1",
            "--db-path",
            "/tmp/x.db",
            "--seed-accounts",
            "0",
            "--log-format",
            "json",
            "--shutdown-timeout",
            "0.5",
        ])
        .unwrap();
        assert_eq!(settings.port, 0);
        assert_eq!(settings.bind, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(settings.seed_accounts, 0);
        assert_eq!(settings.log_format, LogFormat::Json);
        assert_eq!(settings.shutdown_timeout, Duration::from_millis(500));
    }

    #[test]
    fn invalid_values_are_rejected_with_a_reason() {
        for args in [
            &["--port", "70000"][..],
            &["--bind", "localhost"],
            &["--log-format", "xml"],
            &["--shutdown-timeout", "-1"],
            &["--db-lock-timeout", "soon"],
            &["--seed-accounts", "100000000000"],
        ] {
            assert!(parse(args).is_err(), "{args:?} was accepted");
        }
    }
}
