//! A store wrapper that fails on demand: how `/testability/database/down` breaks the database.
//!
//! The fault sits under the [`AccountStore`] trait, so lookups and the real database health
//! check both go through it: the 503s it causes come from the same code paths as a real
//! storage failure, and they stop as soon as the switch is turned back.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use super::{AccountStore, SeedReport, StoreError};
use crate::domain::{Account, AccountId};

/// Whether the wrapped store fails. Shared by the wrapper and the testability route.
#[derive(Debug, Default)]
pub struct FaultSwitch {
    failing: AtomicBool,
}

impl FaultSwitch {
    /// Makes every store call fail (`true`) or pass through again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }

    /// Whether store calls fail now.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// The error a store call fails with while the switch is on.
    pub fn fail_if_on(&self) -> Result<(), StoreError> {
        if self.is_failing() {
            return Err(StoreError::Unavailable(
                "fault injected through /testability/database/down".into(),
            ));
        }
        Ok(())
    }
}

/// An [`AccountStore`] that forwards to `inner` unless its [`FaultSwitch`] is on.
pub struct FaultInjectingStore {
    inner: Arc<dyn AccountStore>,
    switch: Arc<FaultSwitch>,
}

impl FaultInjectingStore {
    /// Wraps `inner`; `switch` decides when it fails.
    pub fn new(inner: Arc<dyn AccountStore>, switch: Arc<FaultSwitch>) -> Self {
        Self { inner, switch }
    }

    fn fail_if_switched(&self) -> Result<(), StoreError> {
        self.switch.fail_if_on()
    }
}

impl AccountStore for FaultInjectingStore {
    fn get(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.fail_if_switched()?;
        self.inner.get(id)
    }

    fn seed(&self, accounts: &[Account]) -> Result<SeedReport, StoreError> {
        self.fail_if_switched()?;
        self.inner.seed(accounts)
    }

    fn check(&self) -> Result<u64, StoreError> {
        self.fail_if_switched()?;
        self.inner.check()
    }

    /// The wrapped store's: the injected fault stands for a fault of that store.
    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MockAccountStore;

    #[test]
    fn calls_pass_through_until_the_switch_is_on_and_after_it_is_off() {
        let mut inner = MockAccountStore::new();
        // Two calls reach the store: before the fault and after it is removed.
        inner.expect_check().times(2).returning(|| Ok(7));
        inner
            .expect_get()
            .times(2)
            .returning(|_| Ok(Some(Account::fake(0))));
        let switch = Arc::new(FaultSwitch::default());
        let store = FaultInjectingStore::new(Arc::new(inner), switch.clone());
        let id = AccountId::parse("10000").unwrap();

        assert_eq!(store.check().unwrap(), 7);
        assert!(store.get(&id).unwrap().is_some());

        switch.set_failing(true);
        assert!(matches!(store.check(), Err(StoreError::Unavailable(_))));
        assert!(matches!(store.get(&id), Err(StoreError::Unavailable(_))));
        assert!(matches!(store.seed(&[]), Err(StoreError::Unavailable(_))));

        switch.set_failing(false);
        assert_eq!(store.check().unwrap(), 7);
        assert!(store.get(&id).unwrap().is_some());
    }
}
