//! RFC 3339 timestamps in UTC (`2026-12-02T13:00:01.250Z`) for the fleet view, without a
//! date-time crate: the only calendar arithmetic needed is days to a civil date.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `at` as RFC 3339 UTC with milliseconds; times before 1970 are written as the epoch.
pub fn rfc3339(at: SystemTime) -> String {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = since_epoch.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since_epoch.subsec_millis()
    )
}

/// A timestamp with the same meaning that sorts correctly as text against the ones
/// [`rfc3339`] writes: second precision gets `.000` (peers may write either).
pub fn sort_key(text: &str) -> String {
    match text.strip_suffix('Z') {
        Some(head) if !head.contains('.') => format!("{head}.000Z"),
        _ => text.to_owned(),
    }
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let at = UNIX_EPOCH + Duration::from_millis(1_796_216_401_250);
        assert_eq!(rfc3339(at), "2026-12-02T13:00:01.250Z");
        // A leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn second_precision_sorts_with_millisecond_precision() {
        let mut times = vec![
            sort_key("2026-12-02T13:00:01Z"),
            sort_key("2026-12-02T13:00:01.500Z"),
            sort_key("2026-12-02T13:00:00.999Z"),
        ];
        times.sort();
        assert_eq!(
            times,
            [
                "2026-12-02T13:00:00.999Z",
                "2026-12-02T13:00:01.000Z",
                "2026-12-02T13:00:01.500Z"
            ]
        );
    }
}
