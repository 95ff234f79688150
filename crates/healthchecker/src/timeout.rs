//! The probe's overall time budget: parsed from `2s` / `500ms` / `1.5s`, printed back the same way.

use std::fmt;
use std::time::Duration;

/// Shortest budget accepted: below this, nothing useful can be measured.
const MIN: Duration = Duration::from_millis(1);
/// Longest budget accepted. Docker kills a health check after its own `--timeout` anyway;
/// anything longer than this is a typo, not a wish.
const MAX: Duration = Duration::from_secs(3600);

/// A time budget from one millisecond to one hour, covering connect, write and read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(Duration);

/// Why a timeout value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeoutError {
    /// The value is not a number followed by a unit.
    #[error("expected a number with a unit, such as 2s, 500ms or 1.5s")]
    Syntax,
    /// The number has no unit: a bare `2` could mean seconds or milliseconds.
    #[error("missing unit: write 2s or 500ms")]
    MissingUnit,
    /// The unit is not one of `ms`, `s` or `m`.
    #[error("unknown unit (use ms, s or m)")]
    UnknownUnit,
    /// Shorter than a millisecond or longer than an hour.
    #[error("must be from 1ms to 1h")]
    OutOfRange,
}

impl Timeout {
    /// The default budget: two seconds, well inside Docker's default 30 s check timeout.
    pub const DEFAULT: Timeout = Timeout(Duration::from_secs(2));

    /// Parses `<number><unit>` where the number may have a decimal fraction and the unit is
    /// `ms`, `s` or `m`, e.g. `2s`, `500ms`, `1.5s`, `0.25m`.
    pub fn parse(text: &str) -> Result<Timeout, TimeoutError> {
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let unit_nanos: u64 = match unit {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "" if !number.is_empty() => return Err(TimeoutError::MissingUnit),
            _ if number.is_empty() => return Err(TimeoutError::Syntax),
            _ => return Err(TimeoutError::UnknownUnit),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return Err(TimeoutError::Syntax);
        }
        // Integer arithmetic on nanoseconds: no float parsing or formatting code in the
        // binary, and u64 rather than u128, whose division and formatting add code.
        let mut nanos = digits(whole)?
            .checked_mul(unit_nanos)
            .ok_or(TimeoutError::OutOfRange)?;
        let mut scale = unit_nanos;
        for digit in fraction.bytes() {
            scale /= 10;
            nanos = nanos
                .checked_add(u64::from(digit - b'0') * scale)
                .ok_or(TimeoutError::OutOfRange)?;
        }
        let duration = Duration::from_nanos(nanos);
        if duration < MIN || duration > MAX {
            return Err(TimeoutError::OutOfRange);
        }
        Ok(Timeout(duration))
    }

    /// The budget as a [`Duration`].
    pub fn get(self) -> Duration {
        self.0
    }
}

/// Parses a run of ASCII digits (possibly empty, meaning 0) without overflow.
fn digits(text: &str) -> Result<u64, TimeoutError> {
    text.bytes().try_fold(0u64, |acc, digit| {
        acc.checked_mul(10)
            .and_then(|acc| acc.checked_add(u64::from(digit - b'0')))
            .ok_or(TimeoutError::OutOfRange)
    })
}

impl fmt::Display for Timeout {
    /// Whole seconds as `2s`, whole milliseconds as `500ms`, anything finer as `1500us`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // At most an hour: fits in u64 with room to spare.
        let micros = u64::try_from(self.0.as_micros()).unwrap_or(u64::MAX);
        if micros.is_multiple_of(1_000_000) {
            write!(f, "{}s", micros / 1_000_000)
        } else if micros.is_multiple_of(1_000) {
            write!(f, "{}ms", micros / 1_000)
        } else {
            write!(f, "{micros}us")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> u128 {
        Timeout::parse(text).unwrap().get().as_millis()
    }

    #[test]
    fn seconds_milliseconds_and_minutes_are_understood() {
        assert_eq!(ms("2s"), 2000);
        assert_eq!(ms("500ms"), 500);
        assert_eq!(ms("1m"), 60_000);
    }

    #[test]
    fn decimal_fractions_are_exact() {
        assert_eq!(ms("1.5s"), 1500);
        assert_eq!(ms("0.25s"), 250);
        assert_eq!(ms(".5s"), 500);
        assert_eq!(ms("2.s"), 2000);
        assert_eq!(Timeout::parse("1.5ms").unwrap().get().as_micros(), 1500);
        assert_eq!(Timeout::parse("0.001s").unwrap().get().as_micros(), 1000);
    }

    #[test]
    fn a_bare_number_is_refused_because_its_unit_is_ambiguous() {
        assert_eq!(Timeout::parse("2"), Err(TimeoutError::MissingUnit));
    }

    #[test]
    fn malformed_values_are_refused() {
        for text in ["", "s", ".s", "1..5s", "1.2.3s", "-1s", " 2s", "2 s", "+2s"] {
            assert!(Timeout::parse(text).is_err(), "{text:?} was accepted");
        }
        assert_eq!(Timeout::parse("2h"), Err(TimeoutError::UnknownUnit));
        assert_eq!(Timeout::parse("2S"), Err(TimeoutError::UnknownUnit));
    }

    #[test]
    fn less_than_a_millisecond_and_more_than_an_hour_are_out_of_range() {
        assert_eq!(Timeout::parse("0s"), Err(TimeoutError::OutOfRange));
        assert_eq!(Timeout::parse("0.5ms"), Err(TimeoutError::OutOfRange));
        assert_eq!(ms("1ms"), 1);
        assert_eq!(Timeout::parse("3601s"), Err(TimeoutError::OutOfRange));
        assert_eq!(Timeout::parse("61m"), Err(TimeoutError::OutOfRange));
        assert_eq!(
            Timeout::parse("99999999999999999999999999999999999999999s"),
            Err(TimeoutError::OutOfRange)
        );
        assert_eq!(ms("60m"), 3_600_000);
        assert_eq!(
            Timeout::parse("18446744073.709551615s"),
            Err(TimeoutError::OutOfRange)
        );
        assert_eq!(
            Timeout::parse("18446744073.9s"),
            Err(TimeoutError::OutOfRange)
        );
    }

    #[test]
    fn display_uses_the_largest_exact_unit() {
        assert_eq!(Timeout::parse("2s").unwrap().to_string(), "2s");
        assert_eq!(Timeout::parse("2000ms").unwrap().to_string(), "2s");
        assert_eq!(Timeout::parse("1.5s").unwrap().to_string(), "1500ms");
        assert_eq!(Timeout::parse("1.5ms").unwrap().to_string(), "1500us");
        assert_eq!(Timeout::DEFAULT.to_string(), "2s");
    }
}
