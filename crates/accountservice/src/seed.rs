//! Seeding the fake accounts of the original service, in chunks, with progress output.
//!
//! Each chunk is one write transaction: a million accounts take ten commits instead of a
//! million (the original did one BoltDB transaction per account). Progress is one log line per
//! chunk (none when everything fits in one): readable in a terminal and in container logs alike,
//! and no terminal-drawing code in a binary whose image has a size budget.

use crate::{
    domain::Account,
    store::{AccountStore, SeedReport, StoreError},
};

/// Accounts written per transaction: large enough that commits (each an fsync) are rare, small
/// enough that a chunk's accounts (~6 MB) and the transaction's dirty pages stay modest.
pub const DEFAULT_CHUNK_SIZE: u64 = 100_000;

/// Makes sure fake accounts `0..count` exist (ids from `"10000"`, names `Person_<n>`), writing
/// only the missing ones. Blocking: call it off the async reactor.
pub fn seed_fake_accounts(
    store: &dyn AccountStore,
    count: u64,
    chunk_size: u64,
) -> Result<SeedReport, StoreError> {
    seed_with_progress(store, count, chunk_size, &|_, _| {})
}

/// [`seed_fake_accounts`], calling `on_progress(done, total)` after each chunk, e.g. to update
/// what a startup probe shows ("seeding, 40%").
pub fn seed_with_progress(
    store: &dyn AccountStore,
    count: u64,
    chunk_size: u64,
    on_progress: &dyn Fn(u64, u64),
) -> Result<SeedReport, StoreError> {
    let chunk_size = chunk_size.max(1);
    let log_progress = count > chunk_size;
    let mut report = SeedReport::default();
    let mut start = 0;
    while start < count {
        let end = count.min(start.saturating_add(chunk_size));
        let chunk: Vec<Account> = (start..end).map(Account::fake).collect();
        // Marks the start of a write transaction, which a crash test waits for.
        tracing::debug!(start, end, "seeding accounts: writing {start}..{end}");
        report.add(store.seed(&chunk)?);
        if log_progress {
            tracing::info!(done = end, total = count, "seeding accounts: {end}/{count}");
        }
        on_progress(end, count);
        start = end;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use mockall::predicate::function;

    use super::*;
    use crate::store::MockAccountStore;

    #[test]
    fn accounts_are_written_in_chunks_of_the_given_size() {
        let mut store = MockAccountStore::new();
        let mut seq = mockall::Sequence::new();
        for (first, len) in [("10000", 4), ("10004", 4), ("10008", 2)] {
            store
                .expect_seed()
                .with(function(move |chunk: &[Account]| {
                    chunk.len() == len && chunk[0].id == first
                }))
                .times(1)
                .in_sequence(&mut seq)
                .returning(|chunk| {
                    Ok(SeedReport {
                        inserted: chunk.len() as u64,
                        existing: 0,
                    })
                });
        }
        let report = seed_fake_accounts(&store, 10, 4).unwrap();
        assert_eq!(
            report,
            SeedReport {
                inserted: 10,
                existing: 0
            }
        );
    }

    #[test]
    fn reports_of_all_chunks_are_added_up() {
        let mut store = MockAccountStore::new();
        store.expect_seed().times(2).returning(|chunk| {
            Ok(SeedReport {
                inserted: 1,
                existing: chunk.len() as u64 - 1,
            })
        });
        let report = seed_fake_accounts(&store, 6, 3).unwrap();
        assert_eq!(
            report,
            SeedReport {
                inserted: 2,
                existing: 4
            }
        );
    }

    #[test]
    fn progress_is_reported_after_each_chunk() {
        let mut store = MockAccountStore::new();
        store.expect_seed().times(3).returning(|chunk| {
            Ok(SeedReport {
                inserted: chunk.len() as u64,
                existing: 0,
            })
        });
        let seen = std::sync::Mutex::new(Vec::new());
        seed_with_progress(&store, 10, 4, &|done, total| {
            seen.lock().unwrap().push((done, total));
        })
        .unwrap();
        assert_eq!(seen.into_inner().unwrap(), [(4, 10), (8, 10), (10, 10)]);
    }

    #[test]
    fn zero_accounts_touches_nothing() {
        let store = MockAccountStore::new();
        let report = seed_fake_accounts(&store, 0, 10).unwrap();
        assert_eq!(report.total(), 0);
    }

    #[test]
    fn a_store_failure_stops_seeding_with_the_error() {
        let mut store = MockAccountStore::new();
        store
            .expect_seed()
            .times(1)
            .returning(|_| Err(StoreError::Unavailable("disk full".into())));
        let error = seed_fake_accounts(&store, 10, 4).unwrap_err();
        assert!(error.to_string().contains("disk full"));
    }
}
