//! [`Draining`]: whether the drain has begun, the flag the request edge reads on every answer
//! (`crate::guard::drain`) to add `Connection: close`.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

/// Whether shutdown has begun; shared by the stop sequence and the request edge.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// Marks the start of the drain.
    pub fn start(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the drain has begun.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}
