//! The life of the service once it is built: the signals that end it ([`Signals`]), the drain
//! ([`Draining`]), the division of the orchestrator's grace between the phases of a stop
//! ([`StopBudget`]) and the order of stopping ([`Lifecycle::run`]). `crate::startup` builds
//! everything and hands over here; `crate::server` is the HTTP mechanism this drives.
//!
//! [`Lifecycle::run`] serves, with the health checks refreshed in the background, until the stop
//! is asked for (SIGTERM or Ctrl-C through [`Signals`]; tests use a channel), then, in order,
//! each phase under its bound from the [`StopBudget`], so the process exits inside the grace:
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
//!    queued), lets in-flight requests finish within the drain (`--shutdown-timeout`), gives
//!    idle keep-alive connections `--close-grace` to close on their own, then closes what is
//!    left;
//! 5. stops the management listener, which answered probes ("draining") until now; its close
//!    grace counts from the moment the public listener closed, so the two run side by side and a
//!    stop takes one grace, not two; its last requests get the management share of the budget;
//! 6. stops the health refresher;
//! 7. closes the database as soon as its last user has let go of it ([`Lent`]): a connection
//!    the runtime is still tearing down, or a health check's read still running on a blocking
//!    thread, may hold it a moment longer, at most the store's share of the budget; a read that
//!    never returns is left behind, and the binary shuts its runtime down with a bound
//!    ([`StopBudget::runtime`]) rather than wait for it.
//!
//! A second stop request (a second SIGTERM or Ctrl-C) cuts every remaining phase short: the
//! pre-stop delay and the drain end, connections are closed, and nothing more is waited for.
//! The exit code still says whether the instance was healthy when the first one came.
//!
//! A server that ends before it is told to has crashed: steps 5 to 7 run all the same, and the
//! run ends in an error.

mod budget;
mod lent;
mod signals;

use std::{
    future::Future,
    io,
    pin::Pin,
    time::{Duration, Instant},
};

use axum::Router;
use health::{Health, Scope, Status};
use tokio::{
    net::TcpListener,
    sync::oneshot,
    task::{JoinError, JoinHandle},
};

pub use crate::draining::{Draining, LIFECYCLE_COMPONENT};
pub use budget::{BudgetError, StopBudget, TAIL_PHASE};
pub use lent::{Claim, Lent};
pub use signals::Signals;

use crate::{
    management::Management,
    server::{self, ServerLimits},
    store::{PgStore, RedbStore},
};

/// Why serving ended before the service was told to stop.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The server failed while serving.
    #[error("the HTTP server failed")]
    Serve(#[source] io::Error),
    /// A server task panicked or was cancelled.
    #[error("a server task did not complete")]
    Task(#[source] JoinError),
}

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
    budget: StopBudget,
}

impl Lifecycle {
    /// The stop sequence over the service's registry, drain, management listener and the claim
    /// on its store, each phase bounded by `budget`.
    pub fn new(
        health: Health,
        draining: Draining,
        management: Option<Management>,
        store: StoreClaim,
        budget: StopBudget,
    ) -> Self {
        Self {
            health,
            draining,
            management,
            store,
            budget,
        }
    }

    /// The management listener, when there is one.
    pub fn management(&self) -> Option<&Management> {
        self.management.as_ref()
    }

    /// Serves `app` on `listener` until `shutdown` completes, then stops in the order of the
    /// module documentation, cutting the stop short if `hurry` completes; says whether the
    /// instance was healthy when the stop came.
    pub async fn run(
        self,
        listener: TcpListener,
        app: Router,
        limits: ServerLimits,
        shutdown: impl Future<Output = ()> + Send,
        hurry: impl Future<Output = ()> + Send,
    ) -> Result<Stopped, ServeError> {
        let Self {
            health,
            draining,
            management,
            store,
            budget,
        } = self;
        let mut hurry = Hurry::new(hurry);
        // From the first answer on, the startup probe passes, and never fails again.
        health.startup().complete();
        let refresher = Refresher::spawn(&health);
        let mut server = PublicServer::spawn(listener, app, limits);

        // When the public listener closed: the management listener's close grace counts from
        // it too.
        let mut grace_from = None;
        let outcome: Result<Stopped, ServeError> = async {
            server.serve_until(shutdown).await?;
            tracing::info!(
                grace = ?budget.grace,
                pre_stop_delay = ?budget.pre_stop,
                drain = ?budget.drain,
                "stopping within the grace"
            );
            // 1. Before the drain marks the instance out of service itself.
            let stopped = Stopped::judge(&health);
            // 2. `Connection: close` on every answer; readiness 503 "draining".
            draining.start();
            // 3. Balancers see "not ready" and move traffic while this instance still serves.
            if !budget.pre_stop.is_zero() {
                tracing::info!(
                    delay = ?budget.pre_stop,
                    "shutting down: readiness is failing; still serving during the pre-stop delay"
                );
                let delay = server.serve_until(tokio::time::sleep(budget.pre_stop));
                hurry.within(delay).await.transpose()?;
            }
            // 4. No new connections; the requests in flight get the drain to finish.
            grace_from = Some(server.drain(budget.drain, &mut hurry).await);
            Ok(stopped)
        }
        .await;

        // 5. Probes were answered ("draining") until now; the public port is closed.
        if let Some(management) = management {
            let now = tokio::time::Instant::now();
            let deadline = now + budget.management;
            let stopping = management.stop(grace_from.unwrap_or(now), deadline);
            if hurry.within(stopping).await.is_none() {
                tracing::warn!("the management listener was left to stop on its own");
            }
        }
        // 6. and 7.: the store's share of the budget covers both.
        let release_by = tokio::time::Instant::now() + budget.store_release;
        // 6. No new database check starts.
        if hurry
            .within(tokio::time::timeout_at(release_by, refresher.stop()))
            .await
            .and_then(Result::ok)
            .is_none()
        {
            tracing::warn!("the health refresher was left to stop on its own");
        }
        // 7. The stop sequence's own handles on the store (the registry runs the database
        // check) go first; the router's go with the server task and its connections.
        drop((health, draining));
        close_store(store, release_by, &mut hurry).await;
        outcome
    }
}

/// The second stop request: once it has come, every remaining wait of the stop is skipped.
struct Hurry<'a> {
    signal: Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
    came: bool,
}

impl<'a> Hurry<'a> {
    fn new(signal: impl Future<Output = ()> + Send + 'a) -> Self {
        Self {
            signal: Box::pin(signal),
            came: false,
        }
    }

    /// `phase`'s output, or `None` if the second request came first (or had come already).
    async fn within<T>(&mut self, phase: impl Future<Output = T>) -> Option<T> {
        if self.came {
            return None;
        }
        tokio::select! {
            output = phase => Some(output),
            () = &mut self.signal => {
                self.came = true;
                None
            }
        }
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
    async fn serve_until(&mut self, until: impl Future<Output = ()>) -> Result<(), ServeError> {
        tokio::select! {
            result = &mut self.task => Err(unexpected_stop(result)),
            () = until => Ok(()),
        }
    }

    /// Stops accepting and lets the connections finish within `timeout` (or until `hurry`);
    /// past it, closes them. Returns when the listener was told to close: the close grace
    /// counts from then.
    async fn drain(self, timeout: Duration, hurry: &mut Hurry<'_>) -> tokio::time::Instant {
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
        match hurry.within(tokio::time::timeout(timeout, &mut task)).await {
            Some(Ok(Ok(()))) => tracing::info!(elapsed = ?started.elapsed(), "drained"),
            Some(Ok(Err(error))) => tracing::error!(%error, "server task failed while draining"),
            Some(Err(_)) => {
                tracing::warn!(
                    timeout = ?timeout,
                    "drain timed out; closing the remaining connections"
                );
                task.abort();
            }
            None => {
                tracing::warn!("drain cut short; closing the remaining connections");
                task.abort();
            }
        }
        grace_from
    }
}

/// The error for a server task that ended before it was told to.
fn unexpected_stop(result: Result<(), JoinError>) -> ServeError {
    match result {
        Ok(()) => ServeError::Serve(io::Error::other("server stopped unexpectedly")),
        Err(error) => ServeError::Task(error),
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

/// What the stop sequence closes: the redb file once its last user lets go, or the PostgreSQL
/// pool (its clones share it: closing one closes it for all).
pub enum StoreClaim {
    /// The embedded file, lent to the handlers and the health check.
    Redb(Claim<RedbStore>),
    /// The pool.
    Postgres(PgStore),
}

/// Closes the database: the PostgreSQL pool at once (nothing is served any more); the redb file
/// once its last user has let go of it, waiting until `release_by` (a connection task the
/// runtime is still tearing down, or a database check's read still running on a blocking
/// thread, which its timeout abandoned but cannot cancel); past that, or after a second stop
/// request, it closes when the last user drops it, if that happens before the process exits.
async fn close_store(store: StoreClaim, release_by: tokio::time::Instant, hurry: &mut Hurry<'_>) {
    let store = match store {
        StoreClaim::Redb(store) => store,
        StoreClaim::Postgres(pool) => {
            pool.close();
            tracing::info!(url = pool.shown_url(), "database connections closed");
            return;
        }
    };
    let returned = hurry
        .within(store.returned_before(release_by))
        .await
        .flatten();
    let Some(store) = returned else {
        tracing::warn!("the database is still in use after the drain; it closes when released");
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
