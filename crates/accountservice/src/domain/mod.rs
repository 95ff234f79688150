//! Domain types: the values handlers and the store agree on.

mod account;
mod account_id;

pub use account::Account;
pub use account_id::{AccountId, InvalidAccountId};
