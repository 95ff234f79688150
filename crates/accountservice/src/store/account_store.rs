//! The storage interface the HTTP layer and the seeder depend on.

use crate::domain::{Account, AccountId};

use super::StoreError;

/// What one [`AccountStore::seed`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// Accounts that were missing and have been written.
    pub inserted: u64,
    /// Accounts whose id was already present; they were left exactly as they were.
    pub existing: u64,
}

impl SeedReport {
    /// Adds another report's counts to this one.
    pub fn add(&mut self, other: SeedReport) {
        self.inserted += other.inserted;
        self.existing += other.existing;
    }

    /// Accounts looked at: inserted plus already present.
    pub fn total(&self) -> u64 {
        self.inserted + self.existing
    }
}

/// A synchronous account store. Calls may touch the disk: see `routes::accounts` for why a lookup
/// still runs inline on the async reactor.
#[cfg_attr(test, mockall::automock)]
pub trait AccountStore: Send + Sync + 'static {
    /// Looks one account up; `Ok(None)` when the id is not stored.
    fn get(&self, id: &AccountId) -> Result<Option<Account>, StoreError>;

    /// Writes the given accounts that are missing, in one transaction; an id that is already
    /// present is counted and never overwritten.
    fn seed(&self, accounts: &[Account]) -> Result<SeedReport, StoreError>;

    /// Proves the store can serve reads right now by running a real read transaction on the
    /// accounts table; returns how many accounts it holds.
    fn check(&self) -> Result<u64, StoreError>;

    /// Whether every replica of the service uses this very store (a database server) rather
    /// than one of its own (an embedded file). A fault of a store of its own can be cured by
    /// replacing the replica, which gets a fresh one; a fault of a shared store cannot, and
    /// restarting replicas for it only adds a fleet that is still starting when it returns.
    /// The `database` health check declares its curability from this.
    fn is_shared(&self) -> bool;
}
