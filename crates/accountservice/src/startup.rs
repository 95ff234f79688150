//! `Application`: opens the store, seeds it, binds the listener, serves until told to stop.
//!
//! The life cycle, in order (each step logs one line):
//! 1. open the database (bounded wait for another process's lock);
//! 2. seed the fake accounts that are missing;
//! 3. run the health checks once, so the very first probe is answered truthfully;
//! 4. bind the listener (port 0 picks a free port; the log gives the real address);
//! 5. serve, with the health checks refreshed in the background, until the `shutdown` future
//!    completes; then turn readiness to 503 "draining" at once, keep serving for
//!    `--pre-stop-delay`, stop accepting, let in-flight requests finish for at most
//!    `--shutdown-timeout`, and close the database.
//!
//! A stop that was asked for ends in [`Stopped`]: whether the instance's own health was `DOWN`
//! when the stop came. The binary turns that into its exit status ([`EXIT_UNHEALTHY`]), so an
//! orchestrator that stops a replica because it failed its health check records a failure with
//! the reason, not a clean completion.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use axum::Router;
use health::{
    Health, Probes, Scope, Status,
    http::{HttpOptions, Identity},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinError};

use crate::{
    checks,
    config::Settings,
    fleet::{Fleet, FleetOptions},
    metrics::Metrics,
    router::{self, Endpoints},
    routes::testability::Testability,
    seed::{self, DEFAULT_CHUNK_SIZE},
    served_by,
    server::{self, Draining, ServerLimits},
    state::AppState,
    store::{AccountStore, FaultInjectingStore, FaultSwitch, RedbStore, SeedReport, StoreError},
};

/// The manual health component set while the service shuts down.
pub const LIFECYCLE_COMPONENT: &str = "lifecycle";

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

/// Why the service could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Seeding failed.
    #[error("cannot seed the accounts")]
    Seed(#[source] StoreError),
    /// The listener could not be bound.
    #[error("cannot listen on {address}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// The server failed while serving.
    #[error("the HTTP server failed")]
    Serve(#[source] io::Error),
    /// The health registry could not be built from the settings.
    #[error("invalid health check settings")]
    Health(#[from] health::BuildError),
    /// A background task panicked or was cancelled.
    #[error("a start-up task did not complete")]
    Task(#[from] JoinError),
}

/// A started service: database open and seeded, listener bound, not yet serving.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: AppState,
    endpoints: Endpoints,
    store: Arc<RedbStore>,
    shutdown_timeout: Duration,
    pre_stop_delay: Duration,
    limits: ServerLimits,
}

impl Application {
    /// Runs start-up steps 1 to 4 for `settings`.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        let started_at = SystemTime::now();
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            db_path = %settings.db_path.display(),
            "starting accountservice"
        );
        let store = open_store(settings).await?;
        seed_store(&store, settings.seed_accounts).await?;

        // With testability on, every store call goes through a switch that can fail it, so the
        // database fault travels the same paths as a real one. Off, nothing is in between.
        let fault = settings
            .testability
            .then(|| Arc::new(FaultSwitch::default()));
        let serving: Arc<dyn AccountStore> = match &fault {
            Some(switch) => Arc::new(FaultInjectingStore::new(store.clone(), switch.clone())),
            None => store.clone(),
        };
        let health = checks::registry(serving.clone(), settings)?;
        health.refresh_now().await;
        let report = health.report(Scope::Overall);
        tracing::info!(
            status = %report.status,
            reason = report.reason.as_deref().unwrap_or(""),
            "first health check done"
        );
        if fault.is_some() {
            tracing::warn!(
                "testability routes are ON (/testability/...): anyone who can reach this port \
                 can make the instance unhealthy; never enable them in production"
            );
        }
        let served_by = served_by::detect();
        let fleet = settings.peers.clone().map(|peers| {
            Arc::new(Fleet::new(FleetOptions::new(
                peers,
                settings.health_interval,
                settings.health_timeout,
                served_by.clone(),
            )))
        });
        let address = SocketAddr::new(settings.bind, settings.port);
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| StartupError::Bind { address, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { address, source })?;
        let endpoints = Endpoints {
            fleet,
            draining: Draining::default(),
            max_concurrent_requests: settings.max_concurrent_requests,
            metrics: Arc::new(Metrics::new(health.clone())),
            testability: fault.map(|database| Testability {
                health: health.clone(),
                database,
            }),
            health_options: HttpOptions {
                details: settings.health_details,
                service_id: "accountservice".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: Some("account lookup over an embedded database".into()),
                identity: Identity {
                    instance: served_by.clone(),
                    address: served_by::address(&served_by, local_addr),
                    started_at: Some(started_at),
                },
            },
            health,
        };

        let state = AppState::new(serving, served_by);
        Ok(Self {
            listener,
            local_addr,
            state,
            endpoints,
            store,
            shutdown_timeout: settings.shutdown_timeout,
            pre_stop_delay: settings.pre_stop_delay,
            limits: ServerLimits {
                header_read_timeout: settings.header_read_timeout,
                max_header_bytes: settings.max_header_bytes,
                max_connections: settings.max_connections,
            },
        })
    }

    /// The address the listener is bound to, with the real port when 0 was asked for.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The state handlers receive (store and instance name).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The health registry, metrics and testability switches the endpoints are built over.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The health registry.
    pub fn health(&self) -> &Health {
        &self.endpoints.health
    }

    /// Serves [`router::app`] until `shutdown` completes, then drains and closes the database;
    /// says whether the instance was healthy when the stop came.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<Stopped, StartupError> {
        let app = router::app(self.state.clone(), self.endpoints.clone());
        self.serve(app, shutdown).await
    }

    /// Like [`Application::run_until`] with a router of the caller's making (built over
    /// [`Application::state`] and [`Application::endpoints`]).
    pub async fn serve(
        self,
        app: Router,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<Stopped, StartupError> {
        tracing::info!(
            address = %self.local_addr,
            served_by = %self.state.served_by,
            "listening on http://{}",
            self.local_addr
        );
        let Self {
            listener,
            state,
            endpoints,
            store,
            shutdown_timeout,
            pre_stop_delay,
            limits,
            ..
        } = self;
        // Only the router's copies of the state may hold the store from here on, so that it can
        // be closed once the server has stopped.
        let Endpoints {
            health,
            metrics,
            testability,
            health_options,
            max_concurrent_requests: _,
            draining,
            fleet,
        } = endpoints;
        drop((state, metrics, testability, health_options, fleet));
        let (stop_refresher, refresher_stopped) = oneshot::channel::<()>();
        let refresher = health.spawn_refresher(async move {
            let _ = refresher_stopped.await;
        });
        let (stop_accepting, stop_signal) = oneshot::channel::<()>();
        let mut server = tokio::spawn(server::serve(listener, app, limits, async move {
            // An error means the sender was dropped, which also means "stop".
            let _ = stop_signal.await;
        }));

        tokio::select! {
            result = &mut server => {
                stop_health(health, stop_refresher, refresher).await;
                close_store(store).await;
                return Err(unexpected_stop(result));
            }
            () = shutdown => {}
        }
        // Decided before the drain marks the instance out of service itself.
        let at_stop = health.report(Scope::Overall);
        let stopped = match at_stop.status {
            Status::Down => Stopped::Unhealthy(
                at_stop
                    .reason
                    .unwrap_or_else(|| "health was DOWN".to_owned()),
            ),
            _ => Stopped::Healthy,
        };

        // Readiness and /health fail from this moment, so balancers and orchestrators stop
        // sending traffic while the requests already here finish; every answer from now on
        // closes its connection, so clients move to other instances.
        draining.start();
        health.set_manual(
            LIFECYCLE_COMPONENT,
            Status::OutOfService,
            "draining",
            Probes::READINESS,
        );
        if !pre_stop_delay.is_zero() {
            tracing::info!(
                delay = ?pre_stop_delay,
                "shutting down: readiness is failing; still serving during the pre-stop delay"
            );
            tokio::select! {
                result = &mut server => {
                    stop_health(health, stop_refresher, refresher).await;
                    close_store(store).await;
                    return Err(unexpected_stop(result));
                }
                () = tokio::time::sleep(pre_stop_delay) => {}
            }
        }
        tracing::info!(
            timeout = ?shutdown_timeout,
            "shutting down: no new connections, draining in-flight requests"
        );
        let started = Instant::now();
        // The receiver lives inside the server task; if it is gone the server already stopped.
        let _ = stop_accepting.send(());
        match tokio::time::timeout(shutdown_timeout, &mut server).await {
            Ok(Ok(())) => tracing::info!(elapsed = ?started.elapsed(), "drained"),
            Ok(Err(error)) => tracing::error!(%error, "server task failed while draining"),
            Err(_) => {
                tracing::warn!(
                    timeout = ?shutdown_timeout,
                    "drain timed out; closing the remaining connections"
                );
                server.abort();
            }
        }
        stop_health(health, stop_refresher, refresher).await;
        close_store(store).await;
        Ok(stopped)
    }
}

/// Stops the background health refresher, waits for it and drops the registry, so no check
/// holds the store when it is closed.
async fn stop_health(
    health: Health,
    stop: oneshot::Sender<()>,
    refresher: tokio::task::JoinHandle<()>,
) {
    // An error means the refresher already ended.
    let _ = stop.send(());
    if let Err(error) = refresher.await {
        tracing::error!(%error, "the health refresher failed");
    }
    drop(health);
}

/// The error for a server task that ended before it was told to: the accept loop only returns
/// on shutdown, so this is a crash.
fn unexpected_stop(result: Result<(), JoinError>) -> StartupError {
    match result {
        Ok(()) => StartupError::Serve(io::Error::other("server stopped unexpectedly")),
        Err(error) => StartupError::Task(error),
    }
}

/// Opens the database off the reactor (redb's open is blocking and may wait for a lock).
async fn open_store(settings: &Settings) -> Result<Arc<RedbStore>, StartupError> {
    let path = settings.db_path.clone();
    let lock_timeout = settings.db_lock_timeout;
    let store = tokio::task::spawn_blocking(move || RedbStore::open(path, lock_timeout)).await??;
    Ok(Arc::new(store))
}

/// Seeds off the reactor and logs what was done.
async fn seed_store(store: &Arc<RedbStore>, count: u64) -> Result<SeedReport, StartupError> {
    let started = Instant::now();
    let seeding = store.clone();
    let report = tokio::task::spawn_blocking(move || {
        seed::seed_fake_accounts(seeding.as_ref(), count, DEFAULT_CHUNK_SIZE)
    })
    .await?
    .map_err(StartupError::Seed)?;
    let stored = store.check().map_err(StartupError::Seed)?;
    tracing::info!(
        inserted = report.inserted,
        existing = report.existing,
        stored,
        elapsed = ?started.elapsed(),
        "seeded {count} fake accounts ({} inserted, {} already present)",
        report.inserted,
        report.existing
    );
    Ok(report)
}

/// How long shutdown waits for the last other holders of the store to let go: a database check
/// already running on a blocking thread (bounded by the check timeout) or a connection task the
/// runtime is still tearing down.
const STORE_RELEASE_WAIT: Duration = Duration::from_secs(3);

/// Closes the database once this is the last handle, waiting up to [`STORE_RELEASE_WAIT`] for
/// the others; past that it closes when the last holder drops it (at the latest when the
/// runtime stops).
async fn close_store(mut store: Arc<RedbStore>) {
    let started = Instant::now();
    let store = loop {
        match Arc::try_unwrap(store) {
            Ok(store) => break store,
            Err(shared) if started.elapsed() < STORE_RELEASE_WAIT => {
                store = shared;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(_) => {
                tracing::warn!(
                    waited = ?STORE_RELEASE_WAIT,
                    "the database is still in use after the drain; it closes when released"
                );
                return;
            }
        }
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
