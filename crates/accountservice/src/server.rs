//! The server loop: accepts connections under a cap, serves each with hyper under header-size
//! and header-time limits, and drains gracefully. [`serve`] speaks HTTP/1.1 only (the public
//! port); [`serve_with_h2c`] also speaks HTTP/2 with prior knowledge (h2c) on the same port, for
//! gRPC health (the management port).
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
//!
//! With h2c ([`serve_with_h2c`]) a connection's first bytes say which protocol it speaks
//! (hyper-util's auto builder: the HTTP/2 preface, or HTTP/1.1), and HTTP/1.1 connections get
//! exactly the limits above. HTTP/2 has no request head to time, so it is bounded otherwise
//! ([`Http2Limits`]): streams per connection, the header list size (the same
//! [`ServerLimits::max_header_bytes`]), small flow-control windows (no route reads a body of
//! any size), keep-alive pings that close a connection whose peer stopped answering, and an
//! idle timeout: a connection of either protocol with no request in progress (responses still
//! being sent count, such as a gRPC `Watch` stream) for [`ServerLimits::header_read_timeout`] is
//! closed gracefully (`GOAWAY`), and dropped if it has not closed within the same time again (an
//! HTTP/2 close waits for the client to answer a ping). The same timer closes a connection that
//! never sends its first bytes.
//!
//! **Every connection makes progress or goes** ([`ServerLimits::write_timeout`]): hyper has no
//! write timeout, so a client that sends requests and never reads the answers would hold its
//! connection, and a slot under the cap, for good. Every connection's socket is wrapped
//! ([`WriteProgress`]): a write or flush that stays pending for the bound fails, and hyper closes
//! the connection. HTTP/2 can also stall above the socket, when the client never opens its flow-
//! control window again (no `WINDOW_UPDATE`): hyper then stops asking the response body for
//! more, and a response whose next part has waited for the bound to be taken closes the
//! connection as well (`Tracked`).
//!
//! Every connection's kernel buffers are pinned to a small size on the listener, which its
//! connections inherit, backlog included ([`SOCKET_RECEIVE_BUFFER`] and
//! [`SOCKET_SEND_BUFFER`]): the kernel charges them to the container's
//! memory, and left to itself it grows them to megabytes per connection.

use std::{
    fmt::Display,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use axum::Router;
use hyper::{
    Request, Response,
    body::{Body, Frame, Incoming, SizeHint},
    server::conn::http1,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use pin_project_lite::pin_project;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, watch},
    task::JoinSet,
    time::Instant,
};

/// The receive buffer asked of the kernel for every connection (`SO_RCVBUF`, set on the
/// listeners so that connections waiting in the backlog have it too). A request head is at most
/// `--max-header-bytes`, and no route reads a body: a small window costs a client nothing.
pub const SOCKET_RECEIVE_BUFFER: usize = 4 * 1024;

/// The send buffer asked of the kernel for every connection (`SO_SNDBUF`): answers are small;
/// a larger one (`/metrics`, `/openapi.json`) goes out in a few more writes.
pub const SOCKET_SEND_BUFFER: usize = 8 * 1024;

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
    /// How long a response may make no write progress (the client reads nothing) before its
    /// connection is closed.
    pub write_timeout: Duration,
}

/// How HTTP/2 connections are bounded where h2c is served ([`serve_with_h2c`]), besides the
/// header list size ([`ServerLimits::max_header_bytes`]) and the idle timeout
/// ([`ServerLimits::header_read_timeout`]).
#[derive(Debug, Clone, Copy)]
pub struct Http2Limits {
    /// Streams (requests) open at once on one connection; the protocol refuses more.
    pub max_concurrent_streams: u32,
    /// Bytes a client may send on one stream before the server has read them.
    pub stream_window: u32,
    /// Bytes a client may send on the whole connection before the server has read them.
    pub connection_window: u32,
    /// How long a connection may carry nothing before the server pings it.
    pub keep_alive_interval: Duration,
    /// How long the client has to answer that ping; no answer closes the connection, so a
    /// vanished client does not hold a stream (a gRPC `Watch`) open.
    pub keep_alive_timeout: Duration,
    /// Bytes of a stream's response HTTP/2 buffers while the client's window is closed.
    pub max_send_buffer: usize,
}

/// hyper's smallest allowed read buffer, which bounds the request head.
pub const MIN_HEADER_BYTES: usize = 8192;

/// Pause after an accept error such as EMFILE, so the loop does not spin while the process is
/// out of file descriptors.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves `app` over HTTP/1.1 on `listener` until `stop` completes, then stops accepting, asks
/// every connection to finish its in-flight request and close, and returns when all have.
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
    let write_timeout = limits.write_timeout;
    accept_loop(
        listener,
        limits,
        stop,
        move |stream, peer, closing, permit| {
            let service = TowerToHyperService::new(app.clone());
            let io = TokioIo::new(WriteProgress::new(stream, write_timeout));
            let connection = builder.serve_connection(io, service);
            // hyper's header read timeout already closes idle connections.
            drive(
                connection,
                |connection: Pin<&mut _>| connection.graceful_shutdown(),
                closing,
                std::future::pending(),
                peer,
                permit,
            )
        },
    )
    .await;
}

/// Like [`serve`], and also serves HTTP/2 with prior knowledge (h2c) on the same port: each
/// connection's first bytes say which it speaks. HTTP/1.1 connections are served exactly as by
/// [`serve`]; HTTP/2 ones under `http2`'s limits, and closed once idle (see the module docs).
pub async fn serve_with_h2c(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    http2: Http2Limits,
    stop: impl Future<Output = Instant>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(http2.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .initial_stream_window_size(http2.stream_window)
        .initial_connection_window_size(http2.connection_window)
        .keep_alive_interval(http2.keep_alive_interval)
        .keep_alive_timeout(http2.keep_alive_timeout)
        .max_send_buf_size(http2.max_send_buffer);
    let (idle_timeout, write_timeout) = (limits.header_read_timeout, limits.write_timeout);
    accept_loop(
        listener,
        limits,
        stop,
        move |stream, peer, closing, permit| {
            let (activity, quiet) = watch::channel(Activity::default());
            let service = Tracked {
                inner: TowerToHyperService::new(app.clone()),
                activity: Arc::new(activity),
            };
            let io = TokioIo::new(WriteProgress::new(stream, write_timeout));
            let connection = builder.serve_connection(io, service).into_owned();
            let quiet_for_stall = quiet.clone();
            drive(
                connection,
                |connection: Pin<&mut _>| connection.graceful_shutdown(),
                closing,
                async move {
                    let idle = idle(quiet, idle_timeout);
                    let stalled = stalled(quiet_for_stall, write_timeout);
                    tokio::pin!(idle, stalled);
                    std::future::poll_fn(|cx| match idle.as_mut().poll(cx) {
                        Poll::Ready(bound) => Poll::Ready(bound),
                        // A stalled client will not answer a graceful close either: no time
                        // to close.
                        Poll::Pending => stalled.as_mut().poll(cx).map(|_| Duration::ZERO),
                    })
                    .await
                },
                peer,
                permit,
            )
        },
    )
    .await;
}

/// The accept loop and the drain, for connections served by `connect` (given the stream, the
/// peer's address, the signal to close and the connection's permit under the cap).
async fn accept_loop<F, C>(
    listener: TcpListener,
    limits: ServerLimits,
    stop: impl Future<Output = Instant>,
    connect: F,
) where
    F: Fn(TcpStream, SocketAddr, watch::Receiver<bool>, OwnedSemaphorePermit) -> C,
    C: Future<Output = ()> + Send + 'static,
{
    bound_socket_buffers(&listener);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Set once the drain is over: every connection still open finishes what it has and closes.
    let (closing, _) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let spawn = |tasks: &mut JoinSet<()>,
                 stream: TcpStream,
                 peer: SocketAddr,
                 permit: OwnedSemaphorePermit| {
        // Small answers go out at once instead of waiting for Nagle's algorithm.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, %peer, "cannot set TCP_NODELAY");
        }
        // Spawned as it is: wrapped in an `async` block it would be held twice.
        tasks.spawn(connect(stream, peer, closing.subscribe(), permit));
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
    closing.send_replace(true);
    while tasks.join_next().await.is_some() {}
}

/// Serves one connection until it ends; once `closing` is set or `idle` completes, asks it to
/// finish what it has and close (`close`: hyper's graceful shutdown of that connection). After
/// `idle`, the connection gets the time `idle` gave to close, then it is dropped. Holds the
/// connection's `permit` under the cap until then.
fn drive<C, E, F, I>(
    connection: C,
    close: F,
    closing: watch::Receiver<bool>,
    idle: I,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
) -> Driven<C, F, impl Future<Output = ()>, I>
where
    C: Future<Output = Result<(), E>>,
    E: Display,
    F: FnOnce(Pin<&mut C>),
    I: Future<Output = Duration>,
{
    Driven {
        connection,
        close: Some(close),
        closing: closed(closing),
        idle,
        cutoff: None,
        peer,
        _permit: permit,
    }
}

pin_project! {
    /// [`drive`]'s future, written out rather than an `async fn`: every open connection is one
    /// of these, and an `async` body would hold the connection twice over (once as its argument,
    /// once pinned in its body; again in the task that awaits it), several kilobytes per
    /// connection.
    struct Driven<C, F, K, I> {
        #[pin]
        connection: C,
        // Taken once the connection has been asked to close.
        close: Option<F>,
        #[pin]
        closing: K,
        #[pin]
        idle: I,
        // After `idle`: when the connection is dropped if it has not closed (made only then).
        cutoff: Option<Pin<Box<tokio::time::Sleep>>>,
        peer: SocketAddr,
        _permit: OwnedSemaphorePermit,
    }
}

impl<C, E, F, K, I> Future for Driven<C, F, K, I>
where
    C: Future<Output = Result<(), E>>,
    E: Display,
    F: FnOnce(Pin<&mut C>),
    K: Future<Output = ()>,
    I: Future<Output = Duration>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        loop {
            if let Poll::Ready(result) = this.connection.as_mut().poll(cx) {
                if let Err(error) = result {
                    // Timeouts, resets and malformed requests are the client's business.
                    tracing::debug!(%error, peer = %this.peer, "connection ended with an error");
                }
                return Poll::Ready(());
            }
            if this.close.is_some() {
                let bound = if this.closing.as_mut().poll(cx).is_ready() {
                    // The server's own drain bounds the wait.
                    None
                } else if let Poll::Ready(bound) = this.idle.as_mut().poll(cx) {
                    Some(bound)
                } else {
                    return Poll::Pending;
                };
                if let Some(close) = this.close.take() {
                    close(this.connection.as_mut());
                }
                // An HTTP/2 close waits for the client to answer a ping; one that never does is
                // cut off.
                *this.cutoff = bound.map(|bound| Box::pin(tokio::time::sleep(bound)));
                // The connection may close at once.
                continue;
            }
            if let Some(cutoff) = this.cutoff.as_mut()
                && cutoff.as_mut().poll(cx).is_ready()
            {
                tracing::debug!(peer = %this.peer, "an idle connection did not close; dropped");
                return Poll::Ready(());
            }
            return Poll::Pending;
        }
    }
}

/// Completes once `closing` is set (or its sender is gone).
async fn closed(mut closing: watch::Receiver<bool>) {
    let _ = closing.wait_for(|closing| *closing).await;
}

/// What a connection served with h2c is doing, for [`idle`] and [`stalled`].
#[derive(Debug, Default, Clone, Copy)]
struct Activity {
    /// Requests in progress: from the moment a head is read until its response body is dropped
    /// (sent, or abandoned with its stream).
    in_progress: usize,
    /// Response bodies with a part ready that hyper has not taken yet (or not asked for the
    /// first one): while the client's window stays closed, hyper takes nothing.
    waiting: usize,
    /// Parts taken so far, the measure of progress.
    taken: u64,
}

/// Completes, with `timeout`, once the connection has had no request in progress for
/// `timeout` (a response still being sent counts).
async fn idle(mut activity: watch::Receiver<Activity>, timeout: Duration) -> Duration {
    loop {
        let gone = activity.wait_for(|now| now.in_progress == 0).await.is_err();
        if gone {
            // The service, which holds the sender, went with the connection.
            return std::future::pending().await;
        }
        match tokio::time::timeout(timeout, activity.changed()).await {
            Err(_) => return timeout,
            Ok(Err(_)) => return std::future::pending().await,
            Ok(Ok(())) => {}
        }
    }
}

/// Completes, with `bound`, once some response has had a part waiting to be taken for `bound`
/// without any part of any response being taken meanwhile.
async fn stalled(mut activity: watch::Receiver<Activity>, bound: Duration) -> Duration {
    loop {
        let Ok(now) = activity
            .wait_for(|now| now.waiting > 0)
            .await
            .map(|now| *now)
        else {
            return std::future::pending().await;
        };
        let deadline = Instant::now() + bound;
        loop {
            match tokio::time::timeout_at(deadline, activity.changed()).await {
                Err(_) => return bound,
                Ok(Err(_)) => return std::future::pending().await,
                Ok(Ok(())) => {
                    let later = *activity.borrow_and_update();
                    if later.waiting == 0 || later.taken != now.taken {
                        break;
                    }
                }
            }
        }
    }
}

/// A connection's service that keeps its [`Activity`].
struct Tracked<S> {
    inner: S,
    activity: Arc<watch::Sender<Activity>>,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = Response<Watched<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.activity.send_modify(|now| now.in_progress += 1);
        TrackedFuture {
            inner: self.inner.call(request),
            in_progress: Some(InProgress(self.activity.clone())),
        }
    }
}

/// One request in progress on a connection, until dropped.
struct InProgress(Arc<watch::Sender<Activity>>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0
            .send_modify(|now| now.in_progress = now.in_progress.saturating_sub(1));
    }
}

pin_project! {
    /// [`Tracked`]'s future: the inner one, whose response body then holds the request's
    /// [`InProgress`].
    struct TrackedFuture<F> {
        #[pin]
        inner: F,
        in_progress: Option<InProgress>,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Watched<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let Some(in_progress) = this.in_progress.take() else {
            // Polled again after it completed: hyper never does.
            return Poll::Pending;
        };
        in_progress.0.send_modify(|now| now.waiting += 1);
        Poll::Ready(Ok(response.map(|body| Watched {
            body,
            in_progress,
            waiting: true,
        })))
    }
}

pin_project! {
    /// A response body on a tracked connection: holds its request's [`InProgress`] and says
    /// whether a part of it waits to be taken.
    struct Watched<B> {
        #[pin]
        body: B,
        in_progress: InProgress,
        waiting: bool,
    }

    impl<B> PinnedDrop for Watched<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if *this.waiting {
                this.in_progress.0.send_modify(|now| now.waiting = now.waiting.saturating_sub(1));
            }
        }
    }
}

impl<B: Body> Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let activity = &this.in_progress.0;
        if std::mem::take(this.waiting) {
            activity.send_modify(|now| {
                now.waiting = now.waiting.saturating_sub(1);
                now.taken += 1;
            });
        }
        let polled = this.body.poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            *this.waiting = true;
            activity.send_modify(|now| now.waiting += 1);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

pin_project! {
    /// A connection's socket whose writes must make progress: a write or flush pending for
    /// longer than the bound fails with `TimedOut`, which ends the connection. The timer is
    /// made when a write first stalls, not for every connection: most never stall.
    pub struct WriteProgress<S> {
        #[pin]
        inner: S,
        bound: Duration,
        // Armed while a write is pending; kept, and re-armed, once made.
        stall: Option<Pin<Box<tokio::time::Sleep>>>,
        stalled: bool,
    }
}

impl<S> WriteProgress<S> {
    /// `inner`, whose writes may stay pending for at most `bound`.
    pub fn new(inner: S, bound: Duration) -> Self {
        Self {
            inner,
            bound,
            stall: None,
            stalled: false,
        }
    }
}

impl<S> WriteProgress<S> {
    /// `poll` of a write or flush, under the bound.
    fn bounded<T>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let this = self.project();
        match poll(this.inner, cx) {
            Poll::Ready(result) => {
                *this.stalled = false;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let deadline = Instant::now() + *this.bound;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !std::mem::replace(this.stalled, true) {
                    stall.as_mut().reset(deadline);
                }
                match stall.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer has read nothing for the write timeout",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: tokio::io::AsyncRead> tokio::io::AsyncRead for WriteProgress<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite> tokio::io::AsyncWrite for WriteProgress<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.bounded(cx, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.bounded(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.bounded(cx, |inner, cx| inner.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.bounded(cx, |inner, cx| inner.poll_shutdown(cx))
    }
}

/// Pins the kernel buffers of the listener's connections (inherited from the listener, backlog
/// included) to the sizes the memory plan counts.
fn bound_socket_buffers(listener: &TcpListener) {
    let socket = socket2::SockRef::from(listener);
    let receive = socket.set_recv_buffer_size(SOCKET_RECEIVE_BUFFER);
    let send = socket.set_send_buffer_size(SOCKET_SEND_BUFFER);
    if let Err(error) = receive.and(send) {
        tracing::warn!(%error, "cannot bound the connections' socket buffers");
    }
}

pin_project! {
    /// A body that holds `guard` (a count, a permit) for as long as the body itself exists.
    pub struct Guarded<B, G> {
        #[pin]
        body: B,
        guard: G,
    }
}

impl<B, G> Guarded<B, G> {
    /// `body`, holding `guard` until dropped.
    pub fn new(body: B, guard: G) -> Self {
        Self { body, guard }
    }
}

impl<B: Body, G> Body for Guarded<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
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
