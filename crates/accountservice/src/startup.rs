//! `Application`: opens the store, seeds it, binds the listener, and hands over to
//! `crate::lifecycle`, which serves until told to stop and then stops everything in order.
//!
//! The start-up, in order (each step logs one line):
//! 1. bind the public port without listening yet, and with `--management-port` bind that port
//!    and start serving it (503 "starting", gRPC health `UNAVAILABLE`, until step 4), so a port
//!    in use is an error before anything is served;
//! 2. open the database (bounded wait for another process's lock);
//! 3. seed the fake accounts that are missing;
//! 4. run the health checks once, so the very first probe is answered truthfully; the
//!    management port serves its routes and gRPC health from here on;
//! 5. listen on the public port (the log gives the real address when port 0 was asked for);
//! 6. serve until the `shutdown` future completes, then drain and close
//!    ([`crate::lifecycle`] lists the order of stopping).
//!
//! A stop that was asked for ends in [`Stopped`]: whether the instance's own health was `DOWN`
//! when the stop came. The binary turns that into its exit status
//! ([`crate::lifecycle::EXIT_UNHEALTHY`]), so an orchestrator that stops a replica because it
//! failed its health check records a failure with the reason, not a clean completion.
//!
//! Until step 5 the start-up state (`/health/started`) is 503 with what is going on
//! ("seeding, 40% (400000 of 1000000 accounts)"); from step 5 on it is 200 for good.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    sync::Arc,
    time::{Instant, SystemTime},
};

use axum::{
    Json, Router,
    http::StatusCode,
    response::{IntoResponse as _, Response},
};
use health::{
    Health, Scope, Startup,
    http::{HttpOptions, Identity},
};
use tokio::{
    net::{TcpListener, TcpSocket},
    task::JoinError,
};

use crate::{
    checks,
    config::Settings,
    fleet::{Fleet, FleetOptions},
    grpc,
    lifecycle::{BudgetError, Draining, Lent, Lifecycle, ServeError, StopBudget, StoreClaim},
    management::{self, Management},
    memory_limit,
    metrics::Metrics,
    outage::{Me, Outage, OutageSeries, WatchOptions, Watcher},
    router::{self, EndpointSettings, Endpoints, Split},
    routes::testability::Testability,
    seed::{self, DEFAULT_CHUNK_SIZE},
    served_by,
    server::{MIN_HEADER_BYTES, ServerLimits},
    state::AppState,
    store::{
        AccountStore, FaultInjectingStore, FaultSwitch, PgStore, RedbStore, SeedReport, Store,
        StoreError,
        postgres::{Blocking, PgSettings, pool_metrics::PoolCollector},
    },
};

/// How a stop ended: decided by the stop sequence, named here too because
/// [`Application::run_until`] returns it.
pub use crate::lifecycle::Stopped;

/// Why the service could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// PostgreSQL could not be reached or its schema could not be brought up to date.
    #[error("cannot use the database at {url}")]
    Database {
        /// The URL, password redacted.
        url: String,
        /// The cause (boxed: the URL makes this variant the largest).
        #[source]
        source: Box<StoreError>,
    },
    /// Seeding failed.
    #[error("cannot seed the accounts")]
    Seed(#[source] StoreError),
    /// The management port is the public port.
    #[error("the management port must differ from the public port ({port})")]
    SamePort {
        /// The port both were given.
        port: u16,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {address}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// Serving ended before the service was told to stop.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The health registry could not be built from the settings.
    #[error("invalid health check settings")]
    Health(#[from] health::BuildError),
    /// The phases of a stop do not fit the orchestrator's grace.
    #[error(transparent)]
    StopBudget(#[from] BudgetError),
    /// A background task panicked or was cancelled.
    #[error("a start-up task did not complete")]
    Task(#[from] JoinError),
    /// The connection caps do not fit the memory limit.
    #[error(transparent)]
    Memory(#[from] memory_limit::PlanError),
}

/// A started service: database open and seeded, listener bound, not yet serving (the
/// management listener, if any, already is).
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    limits: ServerLimits,
    /// With a management port, the public port's routes, built with the management routes.
    public_routes: Option<Router>,
    state: AppState,
    endpoints: Endpoints,
    lifecycle: Lifecycle,
}

impl Application {
    /// Runs start-up steps 1 to 5 for `settings`.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        let started_at = SystemTime::now();
        // Before anything starts: settings whose stop cannot fit the grace are refused.
        let budget = StopBudget::of(settings)?;
        let version = settings.version();
        tracing::info!(
            version,
            db_path = %settings.db_path.display(),
            "starting accountservice"
        );
        let address = SocketAddr::new(settings.bind, settings.port);
        let management_address = settings.management_address();
        if management_address.is_some_and(|m| m.port() == address.port() && m.port() != 0) {
            return Err(StartupError::SamePort {
                port: address.port(),
            });
        }
        let caps = connection_caps(settings)?;
        tracing::info!(
            memory_limit = caps.limit,
            max_connections = caps.public,
            backlog = caps.backlog,
            management_max_connections = caps.management,
            database_cache = memory_limit::database_cache_bytes(caps.limit),
            "connection caps set"
        );
        let limits = |max_connections| ServerLimits {
            header_read_timeout: settings.header_read_timeout,
            max_header_bytes: settings.max_header_bytes,
            max_connections,
            close_grace: settings.close_grace,
            write_timeout: settings.write_timeout,
        };
        // Created first, so that everything slow below can say how far it got, on the
        // management port if there is one.
        let startup = Startup::new();
        let public = reserve(address).map_err(|source| StartupError::Bind { address, source })?;
        let management = management_address
            .map(|address| {
                Management::start(
                    address,
                    limits(caps.management),
                    starting_routes(startup.clone()),
                )
                .map_err(|source| StartupError::Bind { address, source })
            })
            .transpose()?;
        startup.progress("opening the database");
        // With testability on, every store call goes through a switch that can fail it, so the
        // database fault travels the same paths as a real one. Off, nothing is in between.
        let fault = settings
            .testability
            .then(|| Arc::new(FaultSwitch::default()));
        let (serving, claim) = match settings.database()? {
            Some(database) => {
                let store = connect_postgres(&database).await?;
                let seeding: Arc<dyn AccountStore> = Arc::new(Blocking::new(
                    store.clone(),
                    tokio::runtime::Handle::current(),
                ));
                seed_store(seeding, settings.seed_accounts, &startup).await?;
                let serving = Store::Postgres {
                    store: store.clone(),
                    fault: fault.clone(),
                };
                (serving, StoreClaim::Postgres(store))
            }
            None => {
                // Lent to the handlers and the health check; the lifecycle's claim gets it back,
                // to close it, once the last of them has let go.
                let (store, claim) = Lent::new(open_store(settings, caps.limit).await?);
                seed_store(store.clone(), settings.seed_accounts, &startup).await?;
                let serving: Arc<dyn AccountStore> = match &fault {
                    Some(switch) => {
                        Arc::new(FaultInjectingStore::new(store.clone(), switch.clone()))
                    }
                    None => store,
                };
                (Store::Embedded(serving), StoreClaim::Redb(claim))
            }
        };
        let health = checks::registry(serving.clone(), settings, &startup)?;
        startup.progress("running the first health checks");
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
        let listener = public
            .listen(caps.backlog)
            .map_err(|source| StartupError::Bind { address, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { address, source })?;
        let draining = Draining::reported_in(health.clone());
        // Is it me, or everyone? Watches the checks a restart cannot cure; it holds no handle
        // that keeps the registry (and so the store) alive, and ends with it.
        let outage = Arc::new(Outage::new(
            &health,
            checks::DATABASE,
            settings.health_interval,
        ));
        let peer_port = management
            .as_ref()
            .map_or(local_addr.port(), |m| m.local_addr().port());
        Watcher::new(
            outage.clone(),
            &health,
            WatchOptions {
                peers: settings.peers.clone(),
                me: Me::detect(peer_port),
                interval: settings.health_interval,
                timeout: settings.health_timeout,
                grace: settings.local_fault_grace,
            },
        )
        .spawn();
        let mut metrics = Metrics::new(health.clone(), &version);
        if let Store::Postgres { store, .. } = &serving {
            metrics.register_collector(Box::new(PoolCollector::new(store.clone())));
        }
        metrics.register_collector(Box::new(OutageSeries::new(outage.clone())));
        let endpoints = Endpoints {
            fleet,
            draining: draining.clone(),
            metrics: Arc::new(metrics),
            testability: fault.map(|database| Testability {
                health: health.clone(),
                database,
            }),
            health: health.clone(),
            settings: EndpointSettings {
                max_concurrent_requests: settings.max_concurrent_requests,
                health: HttpOptions {
                    details: settings.health_details,
                    service_id: "accountservice".into(),
                    version,
                    description: Some("account lookup over an embedded database".into()),
                    identity: Identity {
                        instance: served_by.clone(),
                        address: served_by::address(&served_by, local_addr),
                        started_at: Some(started_at),
                        slot: settings.slot,
                    },
                },
            },
        };

        let state = AppState::new(serving, served_by).with_outage(outage);
        let public_routes = management.as_ref().map(|management| {
            let grpc_health = grpc::routes(
                health.clone(),
                management.watches_end(),
                settings.header_read_timeout,
            );
            let Split {
                public,
                management: routes,
            } = router::split(state.clone(), endpoints.clone(), grpc_health);
            management.serve_routes(routes);
            public
        });
        Ok(Self {
            listener,
            local_addr,
            limits: limits(caps.public),
            public_routes,
            state,
            endpoints,
            lifecycle: Lifecycle::new(health, draining, management, claim, budget),
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

    /// The live handles (health registry, metrics, testability switches, drain flag, fleet view)
    /// and the settings the endpoints are built from: what [`router::app`] takes.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The management listener's address, when there is one.
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.lifecycle.management().map(Management::local_addr)
    }

    /// The health registry.
    pub fn health(&self) -> &Health {
        &self.endpoints.health
    }

    /// Serves [`router::app`] (with a management port, the public half of [`router::split`])
    /// until `shutdown` completes, then drains and closes the database; says whether the
    /// instance was healthy when the stop came.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<Stopped, StartupError> {
        self.serve_router(None, shutdown, std::future::pending())
            .await
    }

    /// Like [`Application::run_until`], and the stop is cut short (every remaining wait
    /// skipped) when `hurry` completes: the binary's second SIGTERM or Ctrl-C.
    pub async fn run_until_hurried(
        self,
        shutdown: impl Future<Output = ()> + Send,
        hurry: impl Future<Output = ()> + Send,
    ) -> Result<Stopped, StartupError> {
        self.serve_router(None, shutdown, hurry).await
    }

    /// Like [`Application::run_until`] with a router of the caller's making (built over
    /// [`Application::state`] and [`Application::endpoints`]) on the public port.
    pub async fn serve(
        self,
        app: Router,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<Stopped, StartupError> {
        self.serve_router(Some(app), shutdown, std::future::pending())
            .await
    }

    async fn serve_router(
        self,
        app: Option<Router>,
        shutdown: impl Future<Output = ()> + Send,
        hurry: impl Future<Output = ()> + Send,
    ) -> Result<Stopped, StartupError> {
        tracing::info!(
            address = %self.local_addr,
            served_by = %self.state.served_by,
            "listening on http://{}",
            self.local_addr
        );
        let (listener, app, limits, lifecycle) = self.into_serving(app);
        Ok(lifecycle
            .run(listener, app, limits, shutdown, hurry)
            .await?)
    }

    /// What serving needs: the listener, the public router (`app`, else the one built at
    /// start-up) and the lifecycle. What the router is built from and is not used is dropped
    /// here, so that from now on only the router and the lifecycle hold the store.
    fn into_serving(self, app: Option<Router>) -> (TcpListener, Router, ServerLimits, Lifecycle) {
        let app = app
            .or(self.public_routes)
            .unwrap_or_else(|| router::app(self.state, self.endpoints));
        (self.listener, app, self.limits, self.lifecycle)
    }
}

/// Pending connections the public listener queues before accepting them (what tokio's own
/// `TcpListener::bind` uses).
const LISTEN_BACKLOG: u32 = 1024;

/// The two listeners' connection caps for `settings`, under the memory limit if there is one;
/// an error if an explicit `--max-connections` cannot fit (`main` exits 2 with it, as for any
/// invalid setting, before anything starts).
pub fn connection_caps(
    settings: &Settings,
) -> Result<memory_limit::ConnectionCaps, memory_limit::PlanError> {
    let limit = settings.memory_limit.resolve();
    let max_header_bytes = settings.max_header_bytes.max(MIN_HEADER_BYTES);
    memory_limit::plan(
        limit,
        memory_limit::Demands {
            requested: settings.max_connections,
            default: DEFAULT_MAX_CONNECTIONS,
            management: if settings.management_address().is_some() {
                management::MAX_CONNECTIONS
            } else {
                0
            },
            public_worst: memory_limit::http1_worst_case(max_header_bytes),
            management_worst: memory_limit::h2c_worst_case(max_header_bytes, &management::HTTP2),
            backlog: LISTEN_BACKLOG,
        },
    )
}

/// The public port's connection cap when no memory limit holds fewer and none is given.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Binds `address` without listening: the port is taken (an error now if it is in use), but
/// clients are refused, as before, until the service is ready to listen.
fn reserve(address: SocketAddr) -> io::Result<TcpSocket> {
    let socket = match address {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As the standard library's bind does, so a restart need not wait out TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    Ok(socket)
}

/// What the management port answers before the health registry exists: the start-up state at
/// `/health/started` and `/startupz` (503 with the progress, "seeding, 40% (…)"), gRPC health
/// `UNAVAILABLE` with the same progress, 503 to every other path.
fn starting_routes(startup: Startup) -> Router {
    health::http::startup_router(startup.clone())
        .merge(grpc::starting(startup))
        .fallback(|| async { starting() })
}

fn starting() -> Response {
    let body = serde_json::json!({"status": "OUT_OF_SERVICE", "reason": "starting"});
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// Opens the database off the reactor (redb's open is blocking and may wait for a lock).
async fn open_store(
    settings: &Settings,
    memory_limit: Option<u64>,
) -> Result<RedbStore, StartupError> {
    let path = settings.db_path.clone();
    let lock_timeout = settings.db_lock_timeout;
    let cache = memory_limit::database_cache_bytes(memory_limit)
        .map(|bytes| usize::try_from(bytes).unwrap_or(usize::MAX));
    Ok(
        tokio::task::spawn_blocking(move || RedbStore::open_with_cache(path, lock_timeout, cache))
            .await??,
    )
}

/// Connects to PostgreSQL and applies the migrations (see `store::postgres`).
async fn connect_postgres(database: &PgSettings) -> Result<PgStore, StartupError> {
    tracing::info!(
        url = %database.url,
        pool_size = database.pool_size,
        "connecting to PostgreSQL"
    );
    let store = PgStore::connect(database)
        .await
        .map_err(|source| StartupError::Database {
            url: database.url.to_string(),
            source: Box::new(source),
        })?;
    tracing::info!(url = %database.url, "PostgreSQL schema is current");
    Ok(store)
}

/// Seeds off the reactor and logs what was done.
async fn seed_store(
    store: Arc<dyn AccountStore>,
    count: u64,
    startup: &Startup,
) -> Result<SeedReport, StartupError> {
    let started = Instant::now();
    let startup = startup.clone();
    startup.progress(format!("seeding, 0% (0 of {count} accounts)"));
    let (report, stored) = tokio::task::spawn_blocking(move || {
        let report =
            seed::seed_with_progress(store.as_ref(), count, DEFAULT_CHUNK_SIZE, &|done, total| {
                let percent = done.saturating_mul(100) / total.max(1);
                startup.progress(format!("seeding, {percent}% ({done} of {total} accounts)"));
            })?;
        Ok((report, store.check()?))
    })
    .await?
    .map_err(StartupError::Seed)?;
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
