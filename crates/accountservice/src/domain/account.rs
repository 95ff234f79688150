//! An account as stored in the database and returned by the API.

use serde::{Deserialize, Serialize};

/// One account. Stored as this JSON object, as the original service stored it in BoltDB:
/// `{"id":"10000","name":"Person_0"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The account's id, the database key.
    pub id: String,
    /// The account holder's name.
    pub name: String,
}

impl Account {
    /// First id of the seeded fake accounts, as in the original (`"10000"`).
    pub const FIRST_FAKE_ID: u64 = 10_000;

    /// The `index`-th fake account of the original seed: id `10000 + index`, name
    /// `Person_<index>` (index 42 is `{"id":"10042","name":"Person_42"}`).
    pub fn fake(index: u64) -> Self {
        Self {
            id: (Self::FIRST_FAKE_ID + index).to_string(),
            name: format!("Person_{index}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_accounts_follow_the_original_seed() {
        assert_eq!(Account::fake(0).id, "10000");
        assert_eq!(Account::fake(0).name, "Person_0");
        assert_eq!(Account::fake(42).id, "10042");
        assert_eq!(Account::fake(42).name, "Person_42");
        assert_eq!(Account::fake(99).id, "10099");
    }

    #[test]
    fn an_account_serialises_as_the_original_json() {
        let json = serde_json::to_string(&Account::fake(0)).unwrap();
        assert_eq!(json, r#"{"id":"10000","name":"Person_0"}"#);
    }
}
