//! The management listener: the operator endpoints on a port of their own, served by a runtime
//! on a thread of its own, so a probe never waits in line behind public requests.
//!
//! It is bound and serving before the database is opened and seeded, so a `startupProbe` sees
//! the start-up's progress; once the service is built, [`Management::serve_routes`] swaps in the
//! full set of routes. It has its own limits ([`MAX_CONNECTIONS`], [`HTTP2`], and
//! `crate::router::MANAGEMENT_MAX_CONCURRENT_REQUESTS` on the testability switches): operator
//! traffic is probes, scrapes and status pages, and a flood of it must not cost the memory the
//! public port is sized for.
//!
//! Besides HTTP/1.1 it speaks HTTP/2 with prior knowledge (h2c) on the same port
//! ([`crate::server::serve_with_h2c`]), which is how Kubernetes' `grpc:` probes and
//! `grpc-health-probe` ask gRPC health ([`crate::grpc`]). When it stops it first ends every
//! gRPC `Watch` call ([`Management::watches_end`]), so that its connections can close.

use std::{
    convert::Infallible,
    io,
    net::{SocketAddr, TcpListener as StdTcpListener},
    sync::{Arc, PoisonError, RwLock},
    task::{Context, Poll},
    thread,
    time::Duration,
};

use axum::{Router, extract::Request, response::Response};
use health::grpc::CancellationToken;
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
    time::Instant,
};
use tower::{Service, ServiceExt as _, util::Oneshot};

use crate::server::{self, Http2Limits, ServerLimits};

/// Connections the management listener serves at once, unless a memory limit holds fewer
/// ([`crate::memory_limit::plan`]); more wait in its backlog. A tenth of the
/// public port's default, yet room for many status pages: each open page holds a keep-alive
/// connection while it polls the fleet view, and were the cap a few dozen, a few operators'
/// browsers would hold every connection and leave the orchestrator's probes waiting in the
/// backlog until they time out.
pub const MAX_CONNECTIONS: usize = 1024;

/// HTTP/2 on the management port: a probe opens one stream on a connection of its own, and no
/// route reads a request body beyond a gRPC service name, so a few streams and the protocol's
/// smallest windows are plenty.
pub const HTTP2: Http2Limits = Http2Limits {
    max_concurrent_streams: 16,
    stream_window: 16 * 1024,
    connection_window: 64 * 1024,
    keep_alive_interval: Duration::from_secs(10),
    keep_alive_timeout: Duration::from_secs(10),
    max_send_buffer: 16 * 1024,
};

/// A running management listener. Dropping it stops the listener too (without waiting).
pub struct Management {
    local_addr: SocketAddr,
    routes: Arc<RwLock<Router>>,
    watches_end: CancellationToken,
    /// Set, when the listener is to stop, with the instant its close grace counts from and the
    /// deadline past which its connections are closed.
    stop: watch::Sender<Option<(Instant, Instant)>>,
    stopped: oneshot::Receiver<()>,
}

impl Management {
    /// Binds `address` and starts serving `routes` under `limits` on a new thread with a runtime
    /// of its own. Errors (port in use, no thread) come back before anything is served.
    pub fn start(address: SocketAddr, limits: ServerLimits, routes: Router) -> io::Result<Self> {
        let listener = StdTcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        // One worker is enough: every answer is ready-made or a short computation.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let routes = Arc::new(RwLock::new(routes));
        let app = Router::new().fallback_service(Current(routes.clone()));
        let (stop, stop_signal) = watch::channel(None);
        let (stopped_sender, stopped) = oneshot::channel();
        let watches_end = CancellationToken::new();
        let ending = watches_end.clone();
        thread::Builder::new()
            .name("management".into())
            .spawn(move || {
                let deadline = runtime.block_on(serve(listener, app, limits, stop_signal, ending));
                // Every connection task, and with them the routes and what they hold (the health
                // registry, the store), is gone once the runtime is. A blocking call that never
                // returns (a health check run from a testability switch, on a hung disk) is left
                // behind at the deadline rather than waited for.
                runtime.shutdown_timeout(deadline.saturating_duration_since(Instant::now()));
                let _ = stopped_sender.send(());
            })?;
        tracing::info!(
            address = %local_addr,
            "management endpoints (health, metrics) on http://{local_addr}"
        );
        Ok(Self {
            local_addr,
            routes,
            watches_end,
            stop,
            stopped,
        })
    }

    /// The address the listener is bound to, with the real port when 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The token the listener cancels when it stops, before closing its connections: the gRPC
    /// health service's, so that every open `Watch` call ends ([`crate::grpc::routes`]).
    pub fn watches_end(&self) -> CancellationToken {
        self.watches_end.clone()
    }

    /// Serves `routes` from now on, on every connection, including open keep-alive ones.
    pub fn serve_routes(&self, routes: Router) {
        *self.routes.write().unwrap_or_else(PoisonError::into_inner) = routes;
    }

    /// Stops accepting, ends every gRPC `Watch` call, gives idle keep-alive connections what is
    /// left of the close grace that began at `grace_from` (when the public listener closed) and
    /// requests in progress until `deadline`, and returns once the thread has dropped everything
    /// it held, or at `deadline` if it has not (it then finishes on its own).
    pub async fn stop(self, grace_from: Instant, deadline: Instant) {
        let Self { stop, stopped, .. } = self;
        // An error means the thread already ended.
        let _ = stop.send(Some((grace_from, deadline)));
        match tokio::time::timeout_at(deadline, stopped).await {
            Ok(Ok(())) => tracing::info!("management listener stopped"),
            Ok(Err(_)) => tracing::error!("the management listener's thread failed"),
            Err(_) => tracing::warn!("the management listener did not stop in time; left behind"),
        }
    }
}

/// Serves until told to stop, then ends the `Watch` calls and serves until the stop's deadline
/// at most; returns that deadline.
async fn serve(
    listener: StdTcpListener,
    app: Router,
    limits: ServerLimits,
    stop: watch::Receiver<Option<(Instant, Instant)>>,
    watches_end: CancellationToken,
) -> Instant {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, "the management listener cannot be served");
            return Instant::now();
        }
    };
    // A dropped sender (the owner is gone) also means "stop", at once.
    let stopped = |mut stop: watch::Receiver<Option<(Instant, Instant)>>| async move {
        match stop.wait_for(Option::is_some).await {
            Ok(when) => when.unwrap_or_else(|| (Instant::now(), Instant::now())),
            Err(_) => (Instant::now(), Instant::now()),
        }
    };
    let stopping = {
        let stop = stop.clone();
        async move {
            let (grace_from, _) = stopped(stop).await;
            // A Watch call lasts until its client hangs up; ended first, its connection can
            // close.
            watches_end.cancel();
            grace_from
        }
    };
    let serving = server::serve_with_h2c(listener, app, limits, HTTP2, stopping);
    tokio::pin!(serving);
    let told = stop.clone();
    let bound = async {
        let (_, deadline) = stopped(stop).await;
        tokio::time::sleep_until(deadline).await;
    };
    tokio::select! {
        () = &mut serving => {}
        () = bound => tracing::warn!("management connections closed at the stop's deadline"),
    }
    let deadline = told.borrow().map(|(_, deadline)| deadline);
    deadline.unwrap_or_else(Instant::now)
}

/// The routes currently served: read for every request, so a swap reaches open connections.
#[derive(Clone)]
struct Current(Arc<RwLock<Router>>);

impl Service<Request> for Current {
    type Response = Response;
    type Error = Infallible;
    type Future = Oneshot<Router, Request>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // A clone of a router is a reference count; the lock is held only for it.
        let routes = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        routes.oneshot(request)
    }
}
