//! The HTTP/1.1 server loop: accepts connections under a cap, serves each with hyper under
//! header-size and header-time limits, and drains gracefully.
//!
//! hyper is driven directly rather than through `axum::serve`, because `axum::serve` exposes
//! none of the limits a service facing untrusted clients needs:
//!
//! - **Header read timeout** ([`ServerLimits::header_read_timeout`]): a client must send a
//!   complete request head within it, or the connection is closed. hyper starts this timer
//!   whenever it waits for a request head, including on an idle keep-alive connection, so the
//!   same limit closes slowloris connections (headers trickled a byte at a time) and idle
//!   keep-alive connections.
//! - **Header size** ([`ServerLimits::max_header_bytes`]): a request head larger than this is
//!   answered 431 by hyper and the connection closed.
//! - **Connection cap** ([`ServerLimits::max_connections`]): at the cap, the loop stops accepting
//!   until a connection ends; new clients wait in the kernel's backlog instead of costing
//!   memory. With the timeout above, idle or hostile connections cannot hold the cap for long.
//! - **Drain without dropping requests**: from the moment shutdown begins every answer carries
//!   `Connection: close` (`crate::lifecycle::Draining`, read by `crate::guard::drain`). When the listener closes,
//!   connections get [`ServerLimits::close_grace`] to close on their own after answering what they have
//!   already been sent; only then are idle keep-alive connections closed. Closing them at once
//!   would reset a request a client had just written on one, which the server never read.
//!   For the same reason, connections the kernel has already completed but the loop has not yet
//!   accepted are accepted and answered before the listener closes. The grace is one deadline
//!   that the caller starts: the management listener, closed after the public one has drained,
//!   counts it from when the public one closed, so a stop waits out one grace, not two.

use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
    time::Instant,
};

/// Limits the server applies to every connection.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Time a client has to send a complete request head, also the idle keep-alive timeout.
    pub header_read_timeout: Duration,
    /// Largest request head (request line plus headers) in bytes; larger is 431.
    pub max_header_bytes: usize,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// How long connections get to close on their own once the listener is closed (from the
    /// instant [`serve`]'s `stop` gives), before idle keep-alive connections are closed.
    pub close_grace: Duration,
}

/// hyper's smallest allowed read buffer, which bounds the request head.
pub const MIN_HEADER_BYTES: usize = 8192;

/// Pause after an accept error such as EMFILE, so the loop does not spin while the process is
/// out of file descriptors.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves `app` on `listener` until `stop` completes, then stops accepting, asks every
/// connection to finish its in-flight request and close, and returns when all have.
///
/// `stop` completes with the instant the close grace counts from: the public listener's is the
/// moment it stops; the management listener's is the moment the public one stopped, so that its
/// grace runs alongside the public one's instead of after it.
///
/// The caller bounds the drain by dropping this future (or aborting its task): the connection
/// tasks live in a [`JoinSet`] owned by it, so dropping it closes every remaining connection.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    stop: impl Future<Output = Instant>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES));
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut tasks = JoinSet::new();
    let spawn = |tasks: &mut JoinSet<()>,
                 stream: TcpStream,
                 peer: SocketAddr,
                 permit: OwnedSemaphorePermit| {
        // Small answers go out at once instead of waiting for Nagle's algorithm.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, %peer, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tasks.spawn(async move {
            if let Err(error) = connection.await {
                // Timeouts, resets and malformed requests are the client's business.
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    };
    tokio::pin!(stop);
    let grace_from = loop {
        tokio::select! {
            from = &mut stop => break from,
            // Reap finished connection tasks so the set does not grow.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = accept_under_cap(&listener, &connections) => {
                match accepted {
                    Ok((stream, peer, permit)) => spawn(&mut tasks, stream, peer, permit),
                    Err(error) => {
                        log_accept_error(&error);
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                }
            }
        }
    };
    let grace_ends = grace_from + limits.close_grace;
    // The kernel completes handshakes on its own, so a client may have connected and written a
    // request the loop has not accepted yet. Closing the listener would reset it unanswered;
    // accept it instead, and it is answered with `Connection: close` like everyone else.
    // A grace already over still lets in the connections a free slot can take at once.
    match listener.into_std() {
        Ok(listener) => loop {
            let Ok(Ok(permit)) =
                tokio::time::timeout_at(grace_ends, connections.clone().acquire_owned()).await
            else {
                break;
            };
            // A real accept(2) on the non-blocking socket, not the reactor's cached readiness,
            // which may not have seen the newest connection yet.
            match listener.accept() {
                Ok((stream, peer)) => {
                    match stream
                        .set_nonblocking(true)
                        .and_then(|()| TcpStream::from_std(stream))
                    {
                        Ok(stream) => spawn(&mut tasks, stream, peer, permit),
                        Err(error) => {
                            tracing::debug!(%error, %peer, "cannot serve a queued connection")
                        }
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => {
                    log_accept_error(&error);
                    break;
                }
            }
        },
        Err(error) => {
            tracing::debug!(%error, "cannot take the listener back to accept its backlog")
        }
    }
    // Connections that were sent a request answer it with `Connection: close` and end; wait for
    // them, but not for idle keep-alive connections beyond the grace.
    let grace = tokio::time::sleep_until(grace_ends);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            joined = tasks.join_next() => if joined.is_none() { break },
            () = &mut grace => break,
        }
    }
    graceful.shutdown().await;
}

/// Waits for a free connection slot, then for a connection: at the cap the loop stops
/// accepting rather than accepting and dropping.
async fn accept_under_cap(
    listener: &TcpListener,
    connections: &Arc<Semaphore>,
) -> io::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let permit = connections
        .clone()
        .acquire_owned()
        .await
        // The semaphore is never closed.
        .map_err(io::Error::other)?;
    let (stream, peer) = listener.accept().await?;
    Ok((stream, peer, permit))
}

fn log_accept_error(error: &io::Error) {
    // Per-connection errors (the peer reset before accept) are routine; running out of file
    // descriptors or memory is not.
    match error.kind() {
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::Interrupted => tracing::debug!(%error, "accept failed"),
        _ => tracing::warn!(%error, "accept failed; pausing before the next accept"),
    }
}
