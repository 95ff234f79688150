//! [`PgStore`]: accounts in PostgreSQL, read through a pool of connections with prepared
//! statements, every wait bounded.
//!
//! The pool is deadpool-postgres: its `Status` gives the size, idle and waiting counts the
//! health check reports, a failed connect comes back as the server's error (not as a bare
//! timeout), and its waits are bounded once a runtime and timeouts are set (by default they are
//! not, and a caller would wait forever). On top of those, every call here has one bound of its
//! own: getting a connection (opening one included) within the acquire timeout, each statement
//! within the server's `statement_timeout` plus a grace on the client, for a server that no
//! longer answers at all. A connection whose statement timed out on the client is taken out of
//! the pool, never reused: its state is unknown. Connections the server closed are dropped when
//! they are next taken (deadpool's fast recycling checks `is_closed`), and a dead peer is noticed
//! by TCP keepalive and `TCP_USER_TIMEOUT` (see [`super::settings`]).

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, Timeouts,
};
use tokio_postgres::NoTls;

use super::{
    failure,
    host_by_host::{self, HostByHost},
    migrations::{self, Applied},
    pool_metrics::PoolMetrics,
    settings::{CLIENT_GRACE, PgSettings, seconds},
    tls::RustlsConnect,
};
use crate::{
    domain::{Account, AccountId},
    store::{AccountStore, SeedReport, StoreError},
};

const LOOKUP: &str = "SELECT name FROM accounts WHERE id = $1";
const CHECK: &str = "SELECT count(*) FROM (SELECT 1 FROM accounts LIMIT 1) AS any_account";
const COUNT: &str = "SELECT count(*) FROM accounts";
const SEED: &str = "INSERT INTO accounts (id, name) \
                    SELECT * FROM unnest($1::text[], $2::text[]) \
                    ON CONFLICT (id) DO NOTHING";

/// The pool's state, as the health check reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// Connections open.
    pub size: usize,
    /// Connections at most.
    pub max: usize,
    /// Open connections nobody is using.
    pub idle: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

impl std::fmt::Display for PoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pool size {} of {}, idle {}, waiting {}",
            self.size, self.max, self.idle, self.waiting
        )
    }
}

/// Accounts in PostgreSQL. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// The URL with the password redacted, for logs and health details.
    shown: Arc<str>,
    acquire_timeout: Duration,
    query_timeout: Duration,
    startup_statement_timeout: Duration,
    metrics: Arc<PoolMetrics>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.shown)
            .field("pool", &self.state())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects (within the connect timeout, for each host the URL names), applies the
    /// migrations and keeps the connection in the pool. Fails with one line naming the redacted URL and the cause.
    pub async fn connect(settings: &PgSettings) -> Result<Self, StoreError> {
        let store = Self::new(settings)?;
        // Several hosts are tried one after the other, `connect_timeout` each, as with libpq.
        let bound = host_by_host::connect_bound(settings.url.config(), settings.connect_timeout);
        store.migrate(bound).await?;
        Ok(store)
    }

    /// The pool, without connecting yet.
    pub fn new(settings: &PgSettings) -> Result<Self, StoreError> {
        let config = settings.url.config().clone();
        // Only `is_closed`: a round trip per checkout would double a lookup's cost; dead
        // connections are caught by the statement bound and the TCP settings instead.
        let manager_config = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match settings.url.tls().client_config()? {
            None => Manager::from_connect(config, HostByHost::new(NoTls), manager_config()),
            Some(tls) => Manager::from_connect(
                config,
                HostByHost::new(RustlsConnect::new(tls)),
                manager_config(),
            ),
        };
        let acquire = Some(settings.acquire_timeout);
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(acquire)
            .create_timeout(acquire)
            .recycle_timeout(acquire)
            .build()
            .map_err(|error| StoreError::Config(format!("cannot build the pool: {error}")))?;
        Ok(Self {
            pool,
            shown: settings.url.to_string().into(),
            acquire_timeout: settings.acquire_timeout,
            query_timeout: settings.query_timeout(),
            startup_statement_timeout: settings.startup_statement_timeout,
            metrics: Arc::default(),
        })
    }

    /// The counters and histograms of `/metrics` (see `pool_metrics`).
    pub fn metrics(&self) -> &PoolMetrics {
        &self.metrics
    }

    /// How long the client waits for one statement's answer.
    pub fn query_timeout(&self) -> Duration {
        self.query_timeout
    }

    /// The URL with its password redacted.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    /// The pool's state now.
    pub fn state(&self) -> PoolState {
        let status = self.pool.status();
        PoolState {
            size: status.size,
            max: status.max_size,
            idle: status.available,
            waiting: status.waiting,
        }
    }

    /// Closes the pool: idle connections close now, busy ones when they are returned.
    pub fn close(&self) {
        self.pool.close();
    }

    /// Applies the migrations on a connection opened within `connect_timeout`.
    async fn migrate(&self, connect_timeout: Duration) -> Result<Applied, StoreError> {
        let timeouts = Timeouts {
            wait: Some(connect_timeout),
            create: Some(connect_timeout),
            recycle: Some(connect_timeout),
        };
        let mut client = bounded("connect", connect_timeout, self.pool.timeout_get(&timeouts))
            .await?
            .map_err(|error| pool_error("connect", error, connect_timeout))?;
        let applied = migrations::apply(&mut client, self.startup_statement_timeout).await?;
        if applied.from != applied.to {
            tracing::info!(
                from = applied.from,
                to = applied.to,
                "database schema migrated from version {} to {}",
                applied.from,
                applied.to
            );
        }
        Ok(applied)
    }

    /// A connection from the pool within the acquire timeout.
    async fn connection(&self, operation: &'static str) -> Result<Object, StoreError> {
        if self.pool.status().available == 0 {
            self.metrics.waited();
        }
        let started = Instant::now();
        let result = bounded(operation, self.acquire_timeout, self.pool.get())
            .await
            .and_then(|got| {
                got.map_err(|error| pool_error(operation, error, self.acquire_timeout))
            });
        self.metrics.acquired(started.elapsed().as_secs_f64());
        result.inspect_err(|error| self.metrics.failed(error))
    }

    /// Runs `query` on `client` within `limit`; a connection that timed out is taken out of
    /// the pool (its answer, or its open transaction, must never meet the next user).
    async fn run<T>(
        &self,
        operation: &'static str,
        limit: Duration,
        mut client: Object,
        query: impl AsyncFnOnce(&mut Object) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let outcome = tokio::time::timeout(limit, query(&mut client)).await;
        self.metrics.queried(started.elapsed().as_secs_f64());
        let result = match outcome {
            Ok(result) => result.map_err(|error| StoreError::postgres(operation, error)),
            Err(_) => {
                drop(Object::take(client));
                Err(StoreError::timed_out(operation, limit))
            }
        };
        result.inspect_err(|error| self.metrics.failed(error))
    }

    /// Looks one account up.
    pub async fn get(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        let client = self.connection("read").await?;
        let row = self
            .run("read", self.query_timeout, client, async |client| {
                let statement = client.prepare_cached(LOOKUP).await?;
                client.query_opt(&statement, &[&id.as_str()]).await
            })
            .await?;
        Ok(row.map(|row| Account {
            id: id.to_string(),
            name: row.get(0),
        }))
    }

    /// Proves the database answers a read of the accounts table through the pool, within the
    /// acquire and query bounds.
    pub async fn check(&self) -> Result<(), StoreError> {
        let client = self.connection("check").await?;
        self.run("check", self.query_timeout, client, async |client| {
            let statement = client.prepare_cached(CHECK).await?;
            client.query_one(&statement, &[]).await.map(drop)
        })
        .await
    }

    /// How many accounts are stored (a full count: for start-up, not for every check).
    pub async fn count(&self) -> Result<u64, StoreError> {
        let client = self.connection("count").await?;
        let timeout = self.startup_statement_timeout;
        let count: i64 = self
            .run("count", timeout + CLIENT_GRACE, client, async |client| {
                let transaction = client.transaction().await?;
                transaction
                    .batch_execute(&set_local_timeout(timeout))
                    .await?;
                let row = transaction.query_one(COUNT, &[]).await?;
                transaction.commit().await?;
                Ok(row.get(0))
            })
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Inserts the given accounts that are missing, in one transaction: `ON CONFLICT DO
    /// NOTHING`, so replicas seeding at once never overwrite a row or fail on each other's.
    pub async fn seed(&self, accounts: &[Account]) -> Result<SeedReport, StoreError> {
        if accounts.is_empty() {
            return Ok(SeedReport::default());
        }
        let client = self.connection("seed").await?;
        let timeout = self.startup_statement_timeout;
        let ids: Vec<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
        let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
        let inserted = self
            .run("seed", timeout + CLIENT_GRACE, client, async |client| {
                let transaction = client.transaction().await?;
                transaction
                    .batch_execute(&set_local_timeout(timeout))
                    .await?;
                let inserted = transaction.execute(SEED, &[&ids, &names]).await?;
                transaction.commit().await?;
                Ok(inserted)
            })
            .await?;
        let total = accounts.len() as u64;
        Ok(SeedReport {
            inserted,
            existing: total.saturating_sub(inserted),
        })
    }
}

/// `SET LOCAL statement_timeout` for start-up work, longer than a lookup's.
fn set_local_timeout(timeout: Duration) -> String {
    format!(
        "SET LOCAL statement_timeout = {}",
        timeout.as_millis().max(1)
    )
}

/// `future` within `limit`, else a "timed out after …" error for `operation`.
async fn bounded<T>(
    operation: &'static str,
    limit: Duration,
    future: impl Future<Output = T>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| StoreError::timed_out(operation, limit))
}

/// A pool error as a store error: the server's own error when connecting failed, else a
/// timeout or a closed pool.
fn pool_error(operation: &'static str, error: PoolError, limit: Duration) -> StoreError {
    match error {
        PoolError::Backend(error) => StoreError::postgres(operation, error),
        PoolError::Timeout(_) => StoreError::timed_out(operation, limit),
        PoolError::Closed => StoreError::Unavailable("the connection pool is closed".into()),
        other => StoreError::Unavailable(format!("the connection pool failed: {other}")),
    }
}

impl StoreError {
    /// A PostgreSQL error during `operation`, with its short cause.
    pub(crate) fn postgres(operation: &'static str, error: tokio_postgres::Error) -> Self {
        Self::Postgres {
            operation,
            cause: failure::cause(&error).to_owned(),
            source: Some(error),
        }
    }

    /// `operation` gave up after `limit`.
    pub(crate) fn timed_out(operation: &'static str, limit: Duration) -> Self {
        Self::Postgres {
            operation,
            cause: format!("timed out after {}", seconds(limit)),
            source: None,
        }
    }
}

/// A [`PgStore`] seen through the synchronous [`AccountStore`] interface, for the seeder, which
/// runs on a blocking thread: each call waits for the async call on the runtime of `handle`.
/// Never use it on an async worker thread.
pub struct Blocking {
    store: PgStore,
    handle: tokio::runtime::Handle,
}

impl Blocking {
    /// `store`, its calls run on the runtime of `handle`.
    pub fn new(store: PgStore, handle: tokio::runtime::Handle) -> Self {
        Self { store, handle }
    }
}

impl AccountStore for Blocking {
    fn get(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.handle.block_on(self.store.get(id))
    }

    fn seed(&self, accounts: &[Account]) -> Result<SeedReport, StoreError> {
        self.handle.block_on(self.store.seed(accounts))
    }

    fn check(&self) -> Result<u64, StoreError> {
        self.handle.block_on(self.store.count())
    }

    /// One server for every replica.
    fn is_shared(&self) -> bool {
        true
    }
}
