//! `AccountId`: an account id that has been checked at the edge, so nothing else has to.

use std::fmt;

/// A valid account id: 1 to [`AccountId::MAX_LEN`] bytes of UTF-8 without control characters.
///
/// The original service accepted any string; these limits keep log lines and database keys sane
/// without rejecting any id the original could have stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountId(String);

/// Why a string is not an [`AccountId`]. The messages are safe to show to clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAccountId {
    /// The id is the empty string.
    #[error("account id is empty")]
    Empty,
    /// The id is longer than [`AccountId::MAX_LEN`] bytes.
    #[error("account id is {len} bytes long, the limit is {max}", max = AccountId::MAX_LEN)]
    TooLong {
        /// Length of the rejected id in bytes.
        len: usize,
    },
    /// The id contains a control character (such as a newline or NUL).
    #[error("account id contains a control character")]
    ControlCharacter,
}

impl AccountId {
    /// Longest accepted id, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Checks `raw` and wraps it.
    pub fn parse(raw: &str) -> Result<Self, InvalidAccountId> {
        if raw.is_empty() {
            return Err(InvalidAccountId::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(InvalidAccountId::TooLong { len: raw.len() });
        }
        if raw.chars().any(char::is_control) {
            return Err(InvalidAccountId::ControlCharacter);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for AccountId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_ids_are_accepted_unchanged() {
        for raw in [
            "10000",
            "10042",
            "abc-DEF_9",
            "é",
            &"x".repeat(AccountId::MAX_LEN),
        ] {
            assert_eq!(AccountId::parse(raw).unwrap().as_str(), raw);
        }
    }

    #[test]
    fn an_empty_id_is_rejected() {
        assert_eq!(AccountId::parse(""), Err(InvalidAccountId::Empty));
    }

    #[test]
    fn an_id_longer_than_the_limit_is_rejected_with_its_length() {
        let raw = "1".repeat(AccountId::MAX_LEN + 1);
        assert_eq!(
            AccountId::parse(&raw),
            Err(InvalidAccountId::TooLong { len: 65 })
        );
    }

    #[test]
    fn the_limit_counts_bytes_not_characters() {
        // 33 two-byte characters: 66 bytes.
        let raw = "é".repeat(33);
        assert!(matches!(
            AccountId::parse(&raw),
            Err(InvalidAccountId::TooLong { len: 66 })
        ));
    }

    #[test]
    fn control_characters_are_rejected() {
        for raw in ["100\n42", "\0", "a\tb", "\u{7f}", "x\u{85}"] {
            assert_eq!(
                AccountId::parse(raw),
                Err(InvalidAccountId::ControlCharacter),
                "{raw:?}"
            );
        }
    }
}
