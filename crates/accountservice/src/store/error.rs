//! Errors of the account store. Messages name the file and say what to do; they are for
//! operators and logs, never for HTTP clients (see `crate::error`).

use std::{io, path::PathBuf, time::Duration};

/// Everything that can go wrong opening or using the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the file's lock, for longer than the configured wait.
    #[error(
        "database file {path} is in use by another process (still locked after {waited:?}); \
         is another accountservice running on it?"
    )]
    AlreadyOpen {
        /// The database file.
        path: PathBuf,
        /// How long the open kept retrying.
        waited: Duration,
    },
    /// The file exists, is not empty and is not a redb database. It was not modified.
    #[error(
        "{path} is not a redb database ({reason}); refusing to use it, the file was left untouched"
    )]
    NotADatabase {
        /// The refused file.
        path: PathBuf,
        /// What gave it away.
        reason: String,
    },
    /// The file could not be opened or created (permissions, missing directory, read-only disk).
    #[error("cannot open database file {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// redb refused the file or failed while opening it.
    #[error("cannot open database file {path}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// redb's reason.
        #[source]
        source: redb::DatabaseError,
    },
    /// A read or write transaction failed.
    #[error("database {operation} failed")]
    Transaction {
        /// What was being done, e.g. "read" or "seed".
        operation: &'static str,
        /// redb's reason.
        #[source]
        source: redb::Error,
    },
    /// A stored value is not an account.
    #[error("stored value for account {id} is not valid account JSON")]
    Decode {
        /// The key whose value failed to decode.
        id: String,
        /// The decoder's reason.
        #[source]
        source: serde_json::Error,
    },
    /// The database cannot be trusted any more: its file was removed, replaced or damaged, or a
    /// storage error or panic in redb left it unusable until restart.
    #[error("database unusable: {summary}: {detail}")]
    Unusable {
        /// A few words safe to show anyone, e.g. "file removed".
        summary: &'static str,
        /// The whole story, for logs and `--health-details always`.
        detail: String,
    },
    /// PostgreSQL failed or did not answer in time. `cause` is a few words safe to show anyone
    /// ("connection refused", "timed out after 1 s"); the source has the server's own words.
    #[error("PostgreSQL {operation} failed: {cause}")]
    Postgres {
        /// What was being done: "connect", "read", "check", "seed", "migration".
        operation: &'static str,
        /// The short cause, from the error's kind, never its text.
        cause: String,
        /// tokio-postgres's error, absent for a timeout of our own.
        #[source]
        source: Option<tokio_postgres::Error>,
    },
    /// The database's schema is newer than this binary knows: refused rather than misread.
    #[error(
        "the database schema is version {found}, newer than this binary's version {known}; \
         run an accountservice that knows it"
    )]
    SchemaTooNew {
        /// The version recorded in the database.
        found: i32,
        /// The newest version this binary knows.
        known: i32,
    },
    /// The database settings cannot be used (an unreadable URL or password file, ...).
    #[error("{0}")]
    Config(String),
    /// The store was deliberately made unavailable (fault injection, shutdown).
    #[error("the account store is unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// The short reason a health check shows: a few words, no internals.
    pub fn summary(&self) -> &str {
        match self {
            Self::Unusable { summary, .. } => summary,
            Self::Postgres { cause, .. } => cause,
            Self::SchemaTooNew { .. } => "schema newer than this binary",
            _ => "read failed",
        }
    }

    /// Wraps any redb error raised while doing `operation`.
    pub(crate) fn transaction(operation: &'static str, source: impl Into<redb::Error>) -> Self {
        Self::Transaction {
            operation,
            source: source.into(),
        }
    }
}
