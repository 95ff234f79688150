//! The application state every handler receives: no globals.

use std::sync::Arc;

use crate::{outage::Outage, store::Store};

/// Shared, cheaply cloned state of the HTTP layer.
///
/// Anything a handler needs for the life of the process travels here rather than in a global.
#[derive(Clone)]
pub struct AppState {
    /// Where accounts are read from.
    pub store: Store,
    /// The `servedBy` value of every account answer, computed once at start.
    pub served_by: Arc<str>,
    /// The verdict on a failing store shared by every replica: during a shared outage lookups
    /// answer 503 at once instead of waiting on the store. `None`: never.
    pub outage: Option<Arc<Outage>>,
}

impl AppState {
    /// Bundles a store (a [`Store`], or any `Arc` of an `AccountStore`) and an instance name.
    pub fn new(store: impl Into<Store>, served_by: impl Into<Arc<str>>) -> Self {
        Self {
            store: store.into(),
            served_by: served_by.into(),
            outage: None,
        }
    }

    /// The same state, with lookups turned away at once while `outage` says the store is in a
    /// shared outage.
    #[must_use]
    pub fn with_outage(mut self, outage: Arc<Outage>) -> Self {
        self.outage = Some(outage);
        self
    }
}
