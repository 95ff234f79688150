//! The application state every handler receives: no globals.

use std::sync::Arc;

use crate::store::Store;

/// Shared, cheaply cloned state of the HTTP layer.
///
/// Anything a handler needs for the life of the process travels here rather than in a global.
#[derive(Clone)]
pub struct AppState {
    /// Where accounts are read from.
    pub store: Store,
    /// The `servedBy` value of every account answer, computed once at start.
    pub served_by: Arc<str>,
}

impl AppState {
    /// Bundles a store (a [`Store`], or any `Arc` of an `AccountStore`) and an instance name.
    pub fn new(store: impl Into<Store>, served_by: impl Into<Arc<str>>) -> Self {
        Self {
            store: store.into(),
            served_by: served_by.into(),
        }
    }
}
