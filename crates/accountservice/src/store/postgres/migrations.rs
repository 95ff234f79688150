//! The schema, as versioned migrations embedded in the binary.
//!
//! At start [`apply`] takes a transaction-scoped advisory lock, so replicas starting at once
//! migrate one after the other (each later one finds the work done), reads the version recorded
//! in `accountservice_schema`, refuses a database whose schema is newer than this binary knows,
//! and applies the missing migrations, each recorded with its version, in the same transaction:
//! a failed start leaves the schema as it was.

use tokio_postgres::Client;

use crate::store::StoreError;

/// One step of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its number; migrations apply in this order, each once.
    pub version: i32,
    /// What it does, recorded with it.
    pub description: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// Every migration this binary knows, in order. Append only: a released migration never
/// changes.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "accounts by id",
    sql: "CREATE TABLE accounts (id text PRIMARY KEY, name text NOT NULL)",
}];

/// The schema version this binary writes and reads.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |migration| migration.version)
}

/// The advisory lock key the migrations are serialised on ("acctsvc!" as a number), so that it
/// cannot meet another application's key by accident.
pub const LOCK_KEY: i64 = 0x6163_6374_7376_6321;

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The schema version found.
    pub from: i32,
    /// The schema version now.
    pub to: i32,
}

/// Brings the schema up to [`latest`] as the module documentation describes. `client` must
/// not be in a transaction; `statement_timeout` bounds every statement, waiting for the lock
/// included.
pub async fn apply(
    client: &mut Client,
    statement_timeout: std::time::Duration,
) -> Result<Applied, StoreError> {
    let fail = |error: tokio_postgres::Error| StoreError::postgres("migration", error);
    let transaction = client.transaction().await.map_err(fail)?;
    let millis = statement_timeout.as_millis().max(1);
    transaction
        .batch_execute(&format!(
            "SET LOCAL statement_timeout = {millis}; SET LOCAL lock_timeout = {millis}"
        ))
        .await
        .map_err(fail)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(fail)?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS accountservice_schema (
                version integer PRIMARY KEY,
                description text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(fail)?;
    let from: i32 = transaction
        .query_one(
            "SELECT coalesce(max(version), 0) FROM accountservice_schema",
            &[],
        )
        .await
        .map_err(fail)?
        .get(0);
    let known = latest();
    if from > known {
        return Err(StoreError::SchemaTooNew { found: from, known });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > from) {
        transaction
            .batch_execute(migration.sql)
            .await
            .map_err(fail)?;
        transaction
            .execute(
                "INSERT INTO accountservice_schema (version, description) VALUES ($1, $2)",
                &[&migration.version, &migration.description],
            )
            .await
            .map_err(fail)?;
    }
    transaction.commit().await.map_err(fail)?;
    Ok(Applied { from, to: known })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i32 + 1, "{migration:?}");
        }
        assert_eq!(latest(), MIGRATIONS.len() as i32);
    }
}
