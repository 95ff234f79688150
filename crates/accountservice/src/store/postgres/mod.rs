//! The PostgreSQL backend (`--database-url`): one database shared by every replica, behind the
//! same lookups as the embedded redb file.
//!
//! - [`settings`]: the URL (libpq URL or key=value, parsed by tokio-postgres), the password file,
//!   every bound (connect, acquire, statement, TCP keepalive and user timeout), and the URL as
//!   it may be shown: with the password redacted.
//! - [`tls`]: `sslmode` and `sslrootcert` with rustls.
//! - [`failure`]: what went wrong, in the few words a health reason or an exit line can carry
//!   ("connection refused", "authentication failed", "too many clients", ...).
//! - [`host_by_host`]: several hosts tried in order, each attempt bounded as a whole, as libpq
//!   does (tokio-postgres bounds only the TCP connect), those that failed lately last.
//! - [`migrations`]: the versioned schema embedded in the binary, applied at start under an
//!   advisory lock and recorded in the database.
//! - `pg_store`: [`PgStore`], the pool and the prepared statements of lookups, seeding and
//!   the health check.
//! - [`pool_metrics`]: the pool's series in `/metrics` (connections by state, waits, acquire
//!   and query durations, errors by cause).

pub mod failure;
pub mod host_by_host;
pub mod migrations;
mod pg_store;
pub mod pool_metrics;
pub mod settings;
pub mod tls;

pub use pg_store::{Blocking, PgStore, PoolState};
pub use settings::{DatabaseUrl, PgSettings};
