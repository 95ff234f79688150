//! A store wrapper that fails on demand: how `/testability/database/down` breaks the database,
//! and how `/testability/database/hang` makes every call block like a read on a hung disk.
//!
//! The fault sits under the [`AccountStore`] trait, so lookups and the real database health
//! check both go through it: the 503s it causes come from the same code paths as a real
//! storage failure, and they stop as soon as the switch is turned back.

use std::sync::{
    Arc, Condvar, Mutex, PoisonError,
    atomic::{AtomicU8, Ordering},
};

use super::{AccountStore, SeedReport, StoreError};
use crate::domain::{Account, AccountId};

/// What the wrapped store does with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Passes it through.
    None,
    /// Fails it at once.
    Failing,
    /// Blocks the calling thread until the switch is turned to something else, as a read on a
    /// hung disk does: for tests of a stop while a blocking call never returns.
    Hanging,
}

/// What the wrapped store does. Shared by the wrapper and the testability route.
#[derive(Debug, Default)]
pub struct FaultSwitch {
    /// A [`Fault`] as a number, read on every call without a lock.
    fault: AtomicU8,
    /// Where hanging calls wait for the switch to move.
    moved: Condvar,
    lock: Mutex<()>,
}

impl FaultSwitch {
    /// Makes every store call fail (`true`) or pass through again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.set(if failing { Fault::Failing } else { Fault::None });
    }

    /// Sets what every store call does from now on; calls hanging are released unless it is
    /// [`Fault::Hanging`] again.
    pub fn set(&self, fault: Fault) {
        let value = match fault {
            Fault::None => 0,
            Fault::Failing => 1,
            Fault::Hanging => 2,
        };
        // Under the lock, so a call about to wait cannot miss the change.
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.fault.store(value, Ordering::Release);
        self.moved.notify_all();
    }

    /// What store calls do now.
    pub fn fault(&self) -> Fault {
        match self.fault.load(Ordering::Acquire) {
            0 => Fault::None,
            1 => Fault::Failing,
            _ => Fault::Hanging,
        }
    }

    /// Whether store calls fail now.
    pub fn is_failing(&self) -> bool {
        self.fault() == Fault::Failing
    }

    /// Blocks while the switch says hang.
    fn wait_while_hanging(&self) {
        let guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let _guard = self
            .moved
            .wait_while(guard, |()| self.fault() == Fault::Hanging)
            .unwrap_or_else(PoisonError::into_inner);
    }

    /// The error a store call fails with while the switch says fail (a hang is the caller's
    /// to wait out: the PostgreSQL store does it without blocking a thread, `store::Store`).
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
        match self.switch.fault() {
            Fault::None => Ok(()),
            Fault::Failing => Err(StoreError::Unavailable(
                "fault injected through /testability/database/down".into(),
            )),
            Fault::Hanging => {
                self.switch.wait_while_hanging();
                self.fail_if_switched()
            }
        }
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

    #[test]
    fn a_hanging_call_blocks_until_the_switch_moves_on() {
        let mut inner = MockAccountStore::new();
        inner.expect_check().times(1).returning(|| Ok(7));
        let switch = Arc::new(FaultSwitch::default());
        let store = Arc::new(FaultInjectingStore::new(Arc::new(inner), switch.clone()));
        switch.set(Fault::Hanging);
        let (done, finished) = std::sync::mpsc::channel();
        let call = std::thread::spawn({
            let store = store.clone();
            move || done.send(store.check().unwrap()).unwrap()
        });
        // Still blocked after a while (a bounded wait that must time out).
        assert!(
            finished
                .recv_timeout(std::time::Duration::from_millis(200))
                .is_err()
        );
        switch.set(Fault::None);
        assert_eq!(
            finished
                .recv_timeout(std::time::Duration::from_secs(10))
                .unwrap(),
            7
        );
        call.join().unwrap();
    }
}
