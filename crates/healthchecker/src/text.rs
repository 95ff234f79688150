//! Bytes from the network made safe for a one-line log: the probe escapes what a peer sent with
//! this before it reaches the printed line.

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
