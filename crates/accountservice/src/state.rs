//! The application state every handler receives: no globals.

use std::sync::Arc;

use crate::store::AccountStore;

/// Shared, cheaply cloned state of the HTTP layer.
///
/// Anything a handler needs for the life of the process travels here rather than in a global.
#[derive(Clone)]
pub struct AppState {
    /// Where accounts are read from.
    pub store: Arc<dyn AccountStore>,
    /// The `servedBy` value of every account answer, computed once at start.
    pub served_by: Arc<str>,
}

impl AppState {
    /// Bundles a store and an instance name.
    pub fn new(store: Arc<dyn AccountStore>, served_by: impl Into<Arc<str>>) -> Self {
        Self {
            store,
            served_by: served_by.into(),
        }
    }
}
