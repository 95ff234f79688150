//! A handle on a registry that does not keep it alive ([`WeakHealth`]), for background tasks
//! that must end with it instead of holding on to its checks (and whatever those hold).

use std::sync::{Arc, Weak};

use crate::Health;
use crate::registry::Shared;

/// A [`Health`] registry that is not kept alive by this handle: [`upgrade`](Self::upgrade)
/// gives it back while another handle exists, `None` once the last one is gone.
///
/// For a task that watches the registry for as long as the service uses it: holding a
/// [`Health`] would keep the registry's checks alive, and with them what they check (a
/// database a service wants closed when it stops).
#[derive(Clone)]
pub struct WeakHealth(Weak<Shared>);

impl Health {
    /// A handle that does not keep the registry alive.
    #[must_use]
    pub fn downgrade(&self) -> WeakHealth {
        WeakHealth(Arc::downgrade(&self.shared))
    }
}

impl WeakHealth {
    /// The registry, while some [`Health`] handle on it still exists.
    #[must_use]
    pub fn upgrade(&self) -> Option<Health> {
        self.0.upgrade().map(|shared| Health { shared })
    }
}

impl std::fmt::Debug for WeakHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakHealth")
            .field("alive", &(self.0.strong_count() > 0))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::{CheckOutcome, Health, check_fn};

    #[test]
    fn a_weak_handle_upgrades_while_the_registry_lives_and_not_after() {
        let health = Health::builder()
            .check(check_fn("a", || async { CheckOutcome::up() }))
            .build()
            .unwrap();
        let weak = health.downgrade();
        assert!(weak.upgrade().is_some());
        drop(health);
        assert!(weak.upgrade().is_none());
    }
}
