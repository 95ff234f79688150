//! The shutdown signal of the binary: SIGTERM (what Docker and Swarm send) or Ctrl-C.
//!
//! The server takes shutdown as a plain future (`Application::run_until`), so tests trigger it
//! with a channel instead of a signal.

/// Completes when the process receives SIGTERM or Ctrl-C (SIGINT).
///
/// If a handler cannot be installed the failure is logged and that signal is never reported; the
/// other still works, and SIGKILL remains the orchestrator's last resort.
pub async fn signal() {
    let ctrl_c = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => tracing::info!("received Ctrl-C"),
            Err(error) => {
                tracing::error!(%error, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    };

    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
                tracing::info!("received SIGTERM");
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
