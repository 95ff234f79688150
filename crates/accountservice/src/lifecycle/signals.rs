//! The shutdown signals of the binary: SIGTERM (what Docker and Swarm send) and Ctrl-C (SIGINT).
//!
//! The handlers are installed by [`Signals::install`], before the service logs that it is
//! listening: a SIGTERM sent the moment an orchestrator sees the service up must start a graceful
//! drain, not kill the process with the default action. (During start-up, before that, the
//! default action applies: seeding is crash-safe, so an early SIGTERM loses nothing.)
//!
//! The stop sequence takes the stop as a plain future (`crate::startup::Application::run_until`),
//! so tests trigger it with a channel instead of a signal.

use std::io;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Installed handlers for SIGTERM and SIGINT.
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    /// Installs both handlers now. Must be called inside a tokio runtime.
    pub fn install() -> io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Completes when the process receives SIGTERM or SIGINT.
    pub async fn received(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => tracing::info!("received SIGTERM"),
            _ = self.interrupt.recv() => tracing::info!("received Ctrl-C (SIGINT)"),
        }
    }
}
