//! [`Store`]: the one handle the handlers and the health check read accounts through, whichever
//! backend serves them.
//!
//! An enum rather than an async trait object: the embedded redb store answers a lookup inline,
//! synchronously, on the async worker (see `routes::accounts`), and keeps doing exactly that:
//! its arm neither allocates nor yields. The PostgreSQL arm awaits the network, every wait
//! bounded by [`PgStore`].

use std::sync::Arc;

use super::{AccountStore, Fault, FaultSwitch, PgStore, StoreError};
use crate::domain::{Account, AccountId};

/// Where the serving side reads accounts from. Cheap to clone.
#[derive(Clone)]
pub enum Store {
    /// A synchronous store read inline: redb (behind the fault switch when testability is on),
    /// or a test's mock.
    Embedded(Arc<dyn AccountStore>),
    /// PostgreSQL through its pool.
    Postgres {
        /// The pool and its statements.
        store: PgStore,
        /// With testability on, the switch that fails every call on purpose.
        fault: Option<Arc<FaultSwitch>>,
    },
}

impl Store {
    /// Looks one account up; `Ok(None)` when the id is not stored.
    pub async fn get(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        match self {
            Self::Embedded(store) => store.get(id),
            // Boxed: the PostgreSQL lookup's future (pool, timeouts, statement) is kilobytes,
            // and held inline it would make every caller's future, the redb path's included,
            // that much larger to allocate and move on every request.
            Self::Postgres { store, fault } => {
                Box::pin(postgres_get(fault.as_deref(), store, id)).await
            }
        }
    }

    /// Whether every replica of the service reads this very store: a database server, whose
    /// faults a restart of one replica cannot cure (the `database` check's curability comes from
    /// this). An embedded store says for itself ([`AccountStore::is_shared`]: redb's file is the
    /// replica's own).
    pub fn is_shared(&self) -> bool {
        match self {
            Self::Embedded(store) => store.is_shared(),
            Self::Postgres { .. } => true,
        }
    }

    /// The backend's name, as the health details give it.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Embedded(_) => "redb",
            Self::Postgres { .. } => "postgresql",
        }
    }
}

/// A lookup in PostgreSQL, behind the testability switch.
async fn postgres_get(
    fault: Option<&FaultSwitch>,
    store: &PgStore,
    id: &AccountId,
) -> Result<Option<Account>, StoreError> {
    postgres_fault(fault, store).await?;
    store.get(id).await
}

/// The testability switch in front of PostgreSQL: fail at once, or hang (without blocking a
/// thread) until the switch moves or the store's own bound for a statement passes, as a server
/// that stopped answering would.
pub(crate) async fn postgres_fault(
    fault: Option<&FaultSwitch>,
    store: &PgStore,
) -> Result<(), StoreError> {
    let Some(switch) = fault else {
        return Ok(());
    };
    let limit = store.query_timeout();
    let started = tokio::time::Instant::now();
    while switch.fault() == Fault::Hanging {
        if started.elapsed() >= limit {
            return Err(StoreError::timed_out("read", limit));
        }
        // The switch has no async wake-up; a hang is a test's fault, polled finely enough.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    switch.fail_if_on()
}

impl<T: AccountStore> From<Arc<T>> for Store {
    fn from(store: Arc<T>) -> Self {
        Self::Embedded(store)
    }
}

impl From<Arc<dyn AccountStore>> for Store {
    fn from(store: Arc<dyn AccountStore>) -> Self {
        Self::Embedded(store)
    }
}

impl From<PgStore> for Store {
    fn from(store: PgStore) -> Self {
        Self::Postgres { store, fault: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MockAccountStore;

    #[tokio::test]
    async fn an_embedded_store_is_read_as_it_answers() {
        let mut mock = MockAccountStore::new();
        mock.expect_get()
            .times(1)
            .returning(|_| Ok(Some(Account::fake(3))));
        let store = Store::from(Arc::new(mock));
        let id = AccountId::parse("10003").unwrap();
        assert_eq!(store.get(&id).await.unwrap(), Some(Account::fake(3)));
        assert_eq!(store.backend(), "redb");
    }

    #[test]
    fn a_lookup_future_is_small_whichever_backend_could_serve_it() {
        // Every request's handler future holds this one: the PostgreSQL lookup's state (pool,
        // timeouts, statement), kilobytes, must stay behind a box so that the redb path does
        // not allocate and move it on every request.
        let store = Store::from(Arc::new(MockAccountStore::new()));
        let id = AccountId::parse("10003").unwrap();
        let lookup = store.get(&id);
        assert!(
            std::mem::size_of_val(&lookup) <= 64,
            "Store::get's future is {} bytes",
            std::mem::size_of_val(&lookup)
        );
    }
}
