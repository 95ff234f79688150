//! Account storage: the [`AccountStore`] trait handlers depend on, and its redb implementation.

mod account_store;
mod error;
mod fault;
mod integrity;
mod redb_store;

#[cfg(test)]
pub use account_store::MockAccountStore;
pub use account_store::{AccountStore, SeedReport};
pub use error::StoreError;
pub use fault::{Fault, FaultInjectingStore, FaultSwitch};
pub use redb_store::{ACCOUNTS, RedbStore};
