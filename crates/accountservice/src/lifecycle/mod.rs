//! The life of the service once it is built: the signals that end it ([`Signals`]), the drain
//! ([`Draining`]) and the order of stopping ([`Lifecycle::run`]). `crate::startup` builds
//! everything and hands over here; `crate::server` is the HTTP mechanism this drives.
//!
//! [`Lifecycle::run`] serves, with the health checks refreshed in the background, until the stop
//! is asked for (SIGTERM or Ctrl-C through [`Signals`]; tests use a channel), then, in order:
//!
//! 1. records whether the instance's own health was `DOWN` at that moment ([`Stopped`]; exit
//!    code [`EXIT_UNHEALTHY`] if so), before the drain marks it out of service itself;
//! 2. begins the drain ([`Draining`], its one record): every answer from now on carries
//!    `Connection: close`, so clients move to other instances, and readiness answers 503
//!    "draining" at once (the manual [`LIFECYCLE_COMPONENT`]), so balancers and orchestrators
//!    stop sending traffic while the requests already here finish;
//! 3. keeps serving for `--pre-stop-delay`, so load balancers see "not ready" and move traffic
//!    before the listener closes;
//! 4. stops accepting (the server loop first answers the connections the kernel had already
//!    queued), lets in-flight requests finish within `--shutdown-timeout`, gives idle keep-alive
//!    connections `--close-grace` to close on their own, then closes what is left;
//! 5. stops the management listener, which answered probes ("draining") until now; its close
//!    grace counts from the moment the public listener closed, so the two run side by side and a
//!    stop takes one grace, not two;
//! 6. stops the health refresher;
//! 7. closes the database as soon as its last user has let go of it ([`Lent`]): a connection
//!    the runtime is still tearing down, or a health check's read still running on a blocking
//!    thread, may hold it a moment longer.
//!
//! A server that ends before it is told to has crashed: steps 5 to 7 run all the same, and the
//! run ends in an error.

mod drain;
mod lent;
mod signals;

use std::{
    future::Future,
    io,
    time::{Duration, Instant},
};

use axum::Router;
use health::{Health, Scope, Status};
use tokio::{
    net::TcpListener,
    sync::oneshot,
    task::{JoinError, JoinHandle},
};

pub use drain::{Draining, LIFECYCLE_COMPONENT};
pub use lent::{Claim, Lent};
pub use signals::Signals;

use crate::{
    config::Settings,
    management::Management,
    server::{self, ServerLimits},
    startup::StartupError,
    store::{PgStore, RedbStore},
};

/// The exit status of the binary after a clean drain that was asked for while the instance's own
/// health was `DOWN`: Swarm then records the replaced task as failed ("non-zero exit (3)"), and a
/// `restart_policy: on-failure` restarts it.
pub const EXIT_UNHEALTHY: u8 = 3;

/// How a stop that was asked for ended (the drain itself went as configured either way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// The instance was not `DOWN` when the stop came.
    Healthy,
    /// The instance's overall health was `DOWN` when the stop came, for this reason (the
    /// public short reason of `/health`, e.g. `database: read failed`). The stop's own
    /// `draining` status is not counted: it is set after this is decided.
    Unhealthy(String),
}

impl Stopped {
    /// The instance's own health now.
    fn judge(health: &Health) -> Self {
        let now = health.report(Scope::Overall);
        match now.status {
            Status::Down => {
                Self::Unhealthy(now.reason.unwrap_or_else(|| "health was DOWN".to_owned()))
            }
            _ => Self::Healthy,
        }
    }
}

/// What the stop sequence stops, in the order it stops them.
pub struct Lifecycle {
    health: Health,
    draining: Draining,
    management: Option<Management>,
    store: StoreClaim,
    pre_stop_delay: Duration,
    shutdown_timeout: Duration,
}

impl Lifecycle {
    /// The stop sequence over the service's registry, drain, management listener and the claim
    /// on its store, with the delays of `settings`.
    pub fn new(
        health: Health,
        draining: Draining,
        management: Option<Management>,
        store: StoreClaim,
        settings: &Settings,
    ) -> Self {
        Self {
            health,
            draining,
            management,
            store,
            pre_stop_delay: settings.pre_stop_delay,
            shutdown_timeout: settings.shutdown_timeout,
        }
    }

    /// The management listener, when there is one.
    pub fn management(&self) -> Option<&Management> {
        self.management.as_ref()
    }

    /// Serves `app` on `listener` until `shutdown` completes, then stops in the order of the
    /// module documentation; says whether the instance was healthy when the stop came.
    pub async fn run(
        self,
        listener: TcpListener,
        app: Router,
        limits: ServerLimits,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<Stopped, StartupError> {
        let Self {
            health,
            draining,
            management,
            store,
            pre_stop_delay,
            shutdown_timeout,
        } = self;
        // From the first answer on, the startup probe passes, and never fails again.
        health.startup().complete();
        let refresher = Refresher::spawn(&health);
        let mut server = PublicServer::spawn(listener, app, limits);

        // When the public listener closed: the management listener's close grace counts from
        // it too.
        let mut grace_from = None;
        let outcome: Result<Stopped, StartupError> = async {
            server.serve_until(shutdown).await?;
            // 1. Before the drain marks the instance out of service itself.
            let stopped = Stopped::judge(&health);
            // 2. `Connection: close` on every answer; readiness 503 "draining".
            draining.start();
            // 3. Balancers see "not ready" and move traffic while this instance still serves.
            if !pre_stop_delay.is_zero() {
                tracing::info!(
                    delay = ?pre_stop_delay,
                    "shutting down: readiness is failing; still serving during the pre-stop delay"
                );
                server
                    .serve_until(tokio::time::sleep(pre_stop_delay))
                    .await?;
            }
            // 4. No new connections; the requests in flight get the timeout to finish.
            grace_from = Some(server.drain(shutdown_timeout).await);
            Ok(stopped)
        }
        .await;

        // 5. Probes were answered ("draining") until now; the public port is closed.
        if let Some(management) = management {
            management
                .stop(grace_from.unwrap_or_else(tokio::time::Instant::now))
                .await;
        }
        // 6. No new database check starts.
        refresher.stop().await;
        // 7. The stop sequence's own handles on the store (the registry runs the database
        // check) go first; the router's go with the server task and its connections.
        drop((health, draining));
        close_store(store).await;
        outcome
    }
}

/// The public server's task, and the means to make it stop accepting (sent the instant its
/// close grace counts from).
struct PublicServer {
    task: JoinHandle<()>,
    stop_accepting: oneshot::Sender<tokio::time::Instant>,
}

impl PublicServer {
    fn spawn(listener: TcpListener, app: Router, limits: ServerLimits) -> Self {
        let (stop_accepting, stop_signal) = oneshot::channel();
        let task = tokio::spawn(server::serve(listener, app, limits, async move {
            // An error means the sender was dropped, which also means "stop".
            stop_signal
                .await
                .unwrap_or_else(|_| tokio::time::Instant::now())
        }));
        Self {
            task,
            stop_accepting,
        }
    }

    /// Serves until `until` completes. The server loop only returns once told to stop, so a
    /// server that ends first has crashed.
    async fn serve_until(&mut self, until: impl Future<Output = ()>) -> Result<(), StartupError> {
        tokio::select! {
            result = &mut self.task => Err(unexpected_stop(result)),
            () = until => Ok(()),
        }
    }

    /// Stops accepting and lets the connections finish within `timeout`; past it, closes them.
    /// Returns when the listener was told to close: the close grace counts from then.
    async fn drain(self, timeout: Duration) -> tokio::time::Instant {
        let Self {
            mut task,
            stop_accepting,
        } = self;
        tracing::info!(
            timeout = ?timeout,
            "shutting down: no new connections, draining in-flight requests"
        );
        let started = Instant::now();
        let grace_from = tokio::time::Instant::now();
        // The receiver lives inside the server task; if it is gone the server already stopped.
        let _ = stop_accepting.send(grace_from);
        match tokio::time::timeout(timeout, &mut task).await {
            Ok(Ok(())) => tracing::info!(elapsed = ?started.elapsed(), "drained"),
            Ok(Err(error)) => tracing::error!(%error, "server task failed while draining"),
            Err(_) => {
                tracing::warn!(
                    timeout = ?timeout,
                    "drain timed out; closing the remaining connections"
                );
                task.abort();
            }
        }
        grace_from
    }
}

/// The error for a server task that ended before it was told to.
fn unexpected_stop(result: Result<(), JoinError>) -> StartupError {
    match result {
        Ok(()) => StartupError::Serve(io::Error::other("server stopped unexpectedly")),
        Err(error) => StartupError::Task(error),
    }
}

/// The background health refresher, and the means to stop it.
struct Refresher {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Refresher {
    fn spawn(health: &Health) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = health.spawn_refresher(async move {
            let _ = stopped.await;
        });
        Self { stop, task }
    }

    /// Stops the refresher and waits until it has let go of the registry.
    async fn stop(self) {
        // An error means the refresher already ended.
        let _ = self.stop.send(());
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the health refresher failed");
        }
    }
}

/// How long the stop waits for the last other users of the store to let go: a connection task
/// the runtime is still tearing down, or a database check's read still running on a blocking
/// thread (which its timeout abandoned but cannot cancel).
const STORE_RELEASE_WAIT: Duration = Duration::from_secs(3);

/// What the stop sequence closes: the redb file once its last user lets go, or the PostgreSQL
/// pool (its clones share it: closing one closes it for all).
pub enum StoreClaim {
    /// The embedded file, lent to the handlers and the health check.
    Redb(Claim<RedbStore>),
    /// The pool.
    Postgres(PgStore),
}

/// Closes the database: the PostgreSQL pool at once (nothing is served any more), the redb file
/// once its last user has let go of it, waiting up to [`STORE_RELEASE_WAIT`]; past that it
/// closes when the last user drops it (at the latest when the runtime stops).
async fn close_store(store: StoreClaim) {
    let store = match store {
        StoreClaim::Redb(store) => store,
        StoreClaim::Postgres(pool) => {
            pool.close();
            tracing::info!(url = pool.shown_url(), "database connections closed");
            return;
        }
    };
    let Some(store) = store.returned_within(STORE_RELEASE_WAIT).await else {
        tracing::warn!(
            waited = ?STORE_RELEASE_WAIT,
            "the database is still in use after the drain; it closes when released"
        );
        return;
    };
    let path = store.path().display().to_string();
    match store.close() {
        Ok(()) => tracing::info!(db_path = %path, "database closed"),
        Err(error) => tracing::error!(
            error = %crate::error::chain(&error),
            db_path = %path,
            "closing the database failed"
        ),
    }
}
