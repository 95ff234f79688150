//! The one line the probe prints, which Docker keeps in `.State.Health.Log`: escaping of
//! whatever the peer sent, and short durations without floating-point formatting.

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

/// Makes bytes from the network safe for a one-line log: valid UTF-8 is kept, `\` and
/// control characters are escaped (`\n`, `\r`, `\t`, `\x1b`, `\u{85}`), and invalid
/// bytes are shown as `\xff`.
pub fn escape(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => text.push_str("\\\\"),
                '\n' => text.push_str("\\n"),
                '\r' => text.push_str("\\r"),
                '\t' => text.push_str("\\t"),
                c if c.is_ascii_control() => push_hex(&mut text, "\\x", c as u32, "", 2),
                c if c.is_control() => push_hex(&mut text, "\\u{", c as u32, "}", 2),
                c => text.push(c),
            }
        }
        for &byte in chunk.invalid() {
            push_hex(&mut text, "\\x", u32::from(byte), "", 2);
        }
    }
    text
}

fn push_hex(text: &mut String, prefix: &str, value: u32, suffix: &str, width: u32) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    text.push_str(prefix);
    for shift in (0..width).rev() {
        text.push(char::from(DIGITS[(value >> (4 * shift)) as usize & 0xf]));
    }
    text.push_str(suffix);
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

    #[test]
    fn printable_text_and_unicode_are_kept() {
        assert_eq!(escape(br#"{"status":"DOWN"}"#), r#"{"status":"DOWN"}"#);
        assert_eq!(escape("état ✓".as_bytes()), "état ✓");
    }

    #[test]
    fn control_characters_backslashes_and_invalid_bytes_are_escaped() {
        assert_eq!(
            escape(b"a\r\nb\tc\x1b[31m\x7f\\"),
            r"a\r\nb\tc\x1b[31m\x7f\\"
        );
        assert_eq!(escape(b"\x00\xff\xc3"), r"\x00\xff\xc3");
        assert_eq!(escape("\u{85}x".as_bytes()), r"\u{85}x");
    }

    #[test]
    fn an_escaped_line_never_contains_a_line_break() {
        let every_byte: Vec<u8> = (0..=255).collect();
        let text = escape(&every_byte);
        assert!(!text.contains(['\n', '\r']));
        assert!(text.chars().all(|c| !c.is_control()));
    }
}
