//! The shutdown signals of the binary: SIGTERM (what Docker and Swarm send) and Ctrl-C (SIGINT),
//! counted: the first asks for a graceful stop ([`Signals::first`]), the second for the stop to
//! end at once ([`Signals::second`]), as an operator who presses Ctrl-C again expects.
//!
//! The handlers are installed by [`Signals::install`], before the service logs that it is
//! listening: a SIGTERM sent the moment an orchestrator sees the service up must start a graceful
//! drain, not kill the process with the default action. (During start-up, before that, the
//! default action applies: seeding is crash-safe, so an early SIGTERM loses nothing.)
//!
//! The stop sequence takes both as plain futures (`crate::startup::Application::run_until`), so
//! tests trigger them with channels instead of signals.

use std::{future::Future, io};

use tokio::{
    signal::unix::{SignalKind, signal},
    sync::watch,
};

/// Installed handlers for SIGTERM and SIGINT, and how many of either have arrived.
pub struct Signals {
    received: watch::Receiver<u32>,
}

impl Signals {
    /// Installs both handlers now, with a task that counts (and logs) what arrives. Must be
    /// called inside a tokio runtime.
    pub fn install() -> io::Result<Self> {
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let (count, received) = watch::channel(0u32);
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    Some(()) = terminate.recv() => "SIGTERM",
                    Some(()) = interrupt.recv() => "Ctrl-C (SIGINT)",
                    else => break,
                };
                // Logged before it is counted: the count lets the stop go on, and a second signal
                // ends it at once, runtime and this task included, so a line written after the
                // count could be lost. Only this task changes the count.
                let nth = count.borrow().saturating_add(1);
                if nth == 1 {
                    tracing::info!("received {name}");
                } else {
                    tracing::warn!("received {name} again: ending the stop at once");
                }
                count.send_replace(nth);
            }
        });
        Ok(Self { received })
    }

    /// Completes when the first SIGTERM or SIGINT has arrived.
    pub fn first(&self) -> impl Future<Output = ()> + Send + 'static {
        self.nth(1)
    }

    /// Completes when a second SIGTERM or SIGINT has arrived.
    pub fn second(&self) -> impl Future<Output = ()> + Send + 'static {
        self.nth(2)
    }

    /// How many have arrived so far.
    pub fn count(&self) -> u32 {
        *self.received.borrow()
    }

    fn nth(&self, n: u32) -> impl Future<Output = ()> + Send + 'static {
        let mut received = self.received.clone();
        async move {
            if received.wait_for(|count| *count >= n).await.is_err() {
                // The counting task is gone (the runtime is shutting down): no more signals.
                std::future::pending::<()>().await;
            }
        }
    }
}
