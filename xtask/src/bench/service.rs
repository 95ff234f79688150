//! How the bench runs the account service: its flags, where its ids are, and what its JSON log
//! says about seeding.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The first seeded id (`Person_0` is account `10000`).
pub const FIRST_ID: u64 = 10_000;

/// The service's flags for a bench instance: loopback, a free port, a fresh database seeded with
/// `accounts`, JSON logs (so the seeding line can be read back). Everything else as shipped.
pub fn args(db_path: &Path, accounts: u64) -> Vec<String> {
    vec![
        "--bind".into(),
        "127.0.0.1".into(),
        "--port".into(),
        "0".into(),
        "--db-path".into(),
        db_path.display().to_string(),
        "--seed-accounts".into(),
        accounts.to_string(),
        "--log-format".into(),
        "json".into(),
    ]
}

/// The seeding time the service logged (`"elapsed"` of its `seeded N fake accounts` line).
pub fn seeding_time(lines: &[String]) -> Result<Duration> {
    let line = lines
        .iter()
        .find(|line| line.contains("\"seeded "))
        .context("no `seeded ... fake accounts` line in the service's log")?;
    let entry: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("not a JSON log line: {line}"))?;
    let elapsed = entry
        .get("elapsed")
        .and_then(serde_json::Value::as_str)
        .with_context(|| format!("no `elapsed` text in {line}"))?;
    parse_debug_duration(elapsed)
}

/// Reads a `Duration` as Rust's `Debug` prints it: `1.5s`, `250ms`, `12.5µs`, `800ns`.
pub fn parse_debug_duration(text: &str) -> Result<Duration> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .with_context(|| format!("no unit in {text:?}"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("not a number in {text:?}"))?;
    let seconds = match unit {
        "s" => number,
        "ms" => number / 1e3,
        "µs" | "us" => number / 1e6,
        "ns" => number / 1e9,
        _ => bail!("unknown unit {unit:?} in {text:?}"),
    };
    Duration::try_from_secs_f64(seconds).with_context(|| format!("out of range: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_durations_of_every_unit_are_read() {
        assert_eq!(
            parse_debug_duration("3.5s").unwrap(),
            Duration::from_millis(3500)
        );
        assert_eq!(
            parse_debug_duration("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            parse_debug_duration("12.5µs").unwrap(),
            Duration::from_nanos(12_500)
        );
        assert_eq!(
            parse_debug_duration("800ns").unwrap(),
            Duration::from_nanos(800)
        );
    }

    #[test]
    fn a_duration_without_a_known_unit_is_refused() {
        assert!(parse_debug_duration("12").is_err());
        assert!(parse_debug_duration("12h").is_err());
        assert!(parse_debug_duration("s").is_err());
    }

    #[test]
    fn the_seeding_line_of_the_json_log_gives_the_seeding_time() {
        let lines = vec![
            r#"{"timestamp":"t","level":"INFO","message":"starting accountservice"}"#.to_owned(),
            r#"{"timestamp":"t","level":"INFO","message":"seeded 1000000 fake accounts (1000000 inserted, 0 already present)","inserted":1000000,"existing":0,"stored":1000000,"elapsed":"4.123456789s","target":"accountservice::startup"}"#.to_owned(),
        ];
        assert_eq!(
            seeding_time(&lines).unwrap(),
            Duration::from_nanos(4_123_456_789)
        );
    }

    #[test]
    fn a_log_without_the_seeding_line_is_an_error() {
        assert!(seeding_time(&["{}".to_owned()]).is_err());
    }
}
