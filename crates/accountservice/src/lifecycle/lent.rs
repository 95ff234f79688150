//! [`Lent`]: a value used through `Arc`s that comes back to its owner's [`Claim`] when the last
//! one is dropped, so the owner can close it (the database) as soon as nobody uses it, without
//! asking again and again whether that moment has come.
//!
//! The store is lent to the handlers (through the router), the health check (through the
//! registry) and the tasks they spawn; the stop sequence holds the claim. Whoever drops the last
//! `Arc` hands the store back: a connection task the runtime tears down, or a blocking read that
//! returns after the drain.

use std::{ops::Deref, sync::Arc, time::Duration};

use tokio::sync::oneshot;

use crate::{
    domain::{Account, AccountId},
    store::{AccountStore, SeedReport, StoreError},
};

/// A value lent out through `Arc<Lent<T>>`; dropping the last `Arc` sends it to its [`Claim`].
pub struct Lent<T> {
    /// Always `Some` until `drop` takes it.
    value: Option<T>,
    owner: Option<oneshot::Sender<T>>,
}

/// The owner's side of a [`Lent`] value: where it comes back.
pub struct Claim<T>(oneshot::Receiver<T>);

impl<T> Lent<T> {
    /// Lends `value` out; the claim gets it back once the last `Arc` is dropped.
    pub fn new(value: T) -> (Arc<Self>, Claim<T>) {
        let (owner, claim) = oneshot::channel();
        let lent = Self {
            value: Some(value),
            owner: Some(owner),
        };
        (Arc::new(lent), Claim(claim))
    }
}

impl<T> Deref for Lent<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // Only `drop` takes the value, and nothing can use a value while it is being dropped.
        self.value
            .as_ref()
            .expect("a lent value is present until it is dropped")
    }
}

impl<T> Drop for Lent<T> {
    fn drop(&mut self) {
        if let (Some(value), Some(owner)) = (self.value.take(), self.owner.take()) {
            // If the owner no longer waits, the value is dropped here instead (a database then
            // closes without reporting errors).
            let _ = owner.send(value);
        }
    }
}

impl<T> Claim<T> {
    /// The value, once the last `Arc` to it has been dropped; `None` if that takes longer than
    /// `limit` (the value is then dropped by whoever lets go of it last).
    pub async fn returned_within(self, limit: Duration) -> Option<T> {
        tokio::time::timeout(limit, self.0).await.ok()?.ok()
    }

    /// The value, once the last `Arc` to it has been dropped; `None` if that is not before
    /// `deadline`.
    pub async fn returned_before(self, deadline: tokio::time::Instant) -> Option<T> {
        tokio::time::timeout_at(deadline, self.0).await.ok()?.ok()
    }
}

impl<T: AccountStore> AccountStore for Lent<T> {
    fn get(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        (**self).get(id)
    }

    fn seed(&self, accounts: &[Account]) -> Result<SeedReport, StoreError> {
        (**self).seed(accounts)
    }

    fn check(&self) -> Result<u64, StoreError> {
        (**self).check()
    }

    fn is_shared(&self) -> bool {
        (**self).is_shared()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_value_comes_back_when_the_last_handle_is_dropped_wherever_it_is() {
        let (lent, mut claim) = Lent::new(String::from("store"));
        let holder = lent.clone();
        drop(lent);
        assert!(claim.0.try_recv().is_err(), "back while a handle is out");
        tokio::task::spawn_blocking(move || drop(holder))
            .await
            .unwrap();
        assert_eq!(
            claim.returned_within(Duration::from_secs(10)).await,
            Some("store".to_owned())
        );
    }

    #[tokio::test]
    async fn a_handle_kept_past_the_limit_gives_none_and_the_value_drops_with_it() {
        let (lent, claim) = Lent::new(Arc::new(()));
        let witness = Arc::downgrade(&**lent);
        assert_eq!(claim.returned_within(Duration::ZERO).await, None);
        assert!(witness.upgrade().is_some());
        drop(lent);
        assert!(witness.upgrade().is_none());
    }
}
