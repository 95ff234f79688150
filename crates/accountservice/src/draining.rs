//! [`Draining`]: whether the drain has begun, the one record of it.
//!
//! Two kinds of reader learn of the drain, each in the form it can afford:
//!
//! - the request edge (`crate::guard::drain`) reads the flag on every answer to add
//!   `Connection: close`: one atomic load. Asking the health registry instead would take its
//!   lock and clone its snapshot on every request, for a fact that changes once;
//! - probes, `/health`, gRPC health and `/metrics` are answered from the health registry, which
//!   knows nothing of this flag, so [`Draining::start`] also sets the registry's manual
//!   [`LIFECYCLE_COMPONENT`] (`OUT_OF_SERVICE` "draining", for readiness).
//!
//! Only [`Draining::start`] sets that component, and nothing clears it or the flag, so the two
//! views cannot disagree.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use health::{Health, Probes, Status};

/// The manual health component set while the service drains.
pub const LIFECYCLE_COMPONENT: &str = "lifecycle";

/// Whether shutdown has begun; shared by the stop sequence and the request edge.
#[derive(Clone, Default)]
pub struct Draining(Arc<Inner>);

#[derive(Default)]
struct Inner {
    begun: AtomicBool,
    /// Where probes learn of the drain; `None` for a flag only the edge reads (the management
    /// listener's, which never drains, and tests').
    registry: Option<Health>,
}

impl Draining {
    /// A drain that, once begun, also turns `health`'s readiness 503 "draining".
    pub fn reported_in(health: Health) -> Self {
        Self(Arc::new(Inner {
            begun: AtomicBool::new(false),
            registry: Some(health),
        }))
    }

    /// Begins the drain: every answer from now on closes its connection, and readiness fails at
    /// once. Beginning it again changes nothing.
    pub fn start(&self) {
        if self.0.begun.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(health) = &self.0.registry {
            health.set_manual(
                LIFECYCLE_COMPONENT,
                Status::OutOfService,
                "draining",
                Probes::READINESS,
            );
        }
    }

    /// Whether the drain has begun.
    pub fn is_draining(&self) -> bool {
        self.0.begun.load(Ordering::Acquire)
    }
}

impl fmt::Debug for Draining {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Draining")
            .field("begun", &self.is_draining())
            .field("reported", &self.0.registry.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use health::Scope;

    use super::*;

    #[test]
    fn beginning_the_drain_sets_the_flag_and_fails_readiness_alone() {
        let health = Health::builder().build().unwrap();
        let draining = Draining::reported_in(health.clone());
        assert!(!draining.is_draining());
        assert_eq!(health.report(Scope::Readiness).status, Status::Up);

        draining.start();
        assert!(draining.is_draining());
        let ready = health.report(Scope::Readiness);
        assert_eq!(ready.status, Status::OutOfService);
        assert_eq!(ready.reason.as_deref(), Some("lifecycle: draining"));
        assert_eq!(health.report(Scope::Liveness).status, Status::Up);
    }
}
