//! Account storage: the [`Store`] handlers and the health check read through, over one of two
//! backends: the synchronous [`AccountStore`] trait and its embedded redb implementation (the
//! default), or [`postgres`] (`--database-url`), shared by every replica.

mod account_store;
mod error;
mod fault;
mod integrity;
pub mod postgres;
mod redb_store;
pub(crate) mod serving;

#[cfg(test)]
pub use account_store::MockAccountStore;
pub use account_store::{AccountStore, SeedReport};
pub use error::StoreError;
pub use fault::{Fault, FaultInjectingStore, FaultSwitch};
pub use postgres::PgStore;
pub use redb_store::{ACCOUNTS, RedbStore};
pub use serving::Store;
