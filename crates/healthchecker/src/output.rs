//! The one line the probe prints, which Docker keeps in `.State.Health.Log`, with short
//! durations without floating-point formatting (what the peer sent comes escaped by
//! [`text`](crate::text)).

use std::time::Duration;

use crate::probe::{Healthy, Unhealthy};

/// The line for a probe's result, newline included.
pub fn line(result: &Result<Healthy, Unhealthy>) -> String {
    match result {
        Ok(healthy) => {
            let mut line = String::with_capacity(64);
            line.push_str("healthy: ");
            line.push_str(&healthy.status.to_string());
            if !healthy.reason.is_empty() {
                line.push(' ');
                line.push_str(&healthy.reason);
            }
            line.push_str(" in ");
            line.push_str(&elapsed(healthy.elapsed));
            line.push('\n');
            line
        }
        Err(unhealthy) => format!("unhealthy: {unhealthy}\n"),
    }
}

/// `0.4 ms` under 10 ms, `12 ms` under a second, `1.2 s` above.
pub fn elapsed(duration: Duration) -> String {
    let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    let (whole, tenths, unit) = match micros {
        0..10_000 => (micros / 1000, Some(micros % 1000 / 100), " ms"),
        10_000..1_000_000 => (micros / 1000, None, " ms"),
        _ => (micros / 1_000_000, Some(micros % 1_000_000 / 100_000), " s"),
    };
    let mut text = whole.to_string();
    if let Some(tenths) = tenths {
        text.push('.');
        text.push_str(&tenths.to_string());
    }
    text.push_str(unit);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_durations_get_a_tenth_of_a_millisecond() {
        assert_eq!(elapsed(Duration::from_micros(0)), "0.0 ms");
        assert_eq!(elapsed(Duration::from_micros(437)), "0.4 ms");
        assert_eq!(elapsed(Duration::from_micros(9_999)), "9.9 ms");
    }

    #[test]
    fn longer_durations_are_rounded_down_to_whole_ms_then_tenths_of_seconds() {
        assert_eq!(elapsed(Duration::from_micros(10_000)), "10 ms");
        assert_eq!(elapsed(Duration::from_micros(999_999)), "999 ms");
        assert_eq!(elapsed(Duration::from_millis(1_250)), "1.2 s");
        assert_eq!(elapsed(Duration::from_secs(3600)), "3600.0 s");
    }
}
