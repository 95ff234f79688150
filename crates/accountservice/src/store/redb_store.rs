//! The redb implementation of [`AccountStore`]: one file, one table of account JSON by id.
//!
//! Opening is careful because the original (BoltDB without a lock timeout) blocked forever on a
//! file held by another process and would scribble on any file it was given:
//!
//! - A file that exists, is not empty and does not start with redb's magic number is refused
//!   *before* redb sees it. redb 4 also checks the magic number before its first write (read in
//!   `TransactionalMemory::new`), so this is belt and braces; checking ourselves means the
//!   "left byte-for-byte untouched" guarantee does not rest on a library's internals.
//! - redb takes non-blocking OFD locks and answers `DatabaseAlreadyOpen` at once when another
//!   handle (another process, or this one) holds the file. We retry that for a bounded time, so
//!   a restart can outlive a predecessor that is still closing, then give up with a clear error.
//! - A missing file is created; an empty file is initialised (redb's rule).
//!
//! Lookups read through one shared read snapshot of the accounts table, opened on the first
//! lookup and dropped by every write (the service writes only while seeding, before it serves);
//! a snapshot a lookup opened before a write is never shared after it (see `SnapshotCache`).
//! A fresh read transaction and table open per lookup was a visible share of the service's CPU
//! under load (see BENCHMARKS.md, Notes); [`AccountStore::check`] still opens a fresh transaction
//! each time, so the health check exercises the whole path.
//!
//! At run time the store also watches its file and remembers storage failures (see
//! [`super::integrity`]): every read is run under `catch_unwind`, because redb panics on some
//! damaged pages, and a storage error or panic makes the store fail fast until restart.

use std::{
    any::Any,
    fs::File,
    io::{self, Read as _},
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
    thread,
    time::{Duration, Instant},
};

use redb::{
    Database, DatabaseError, ReadOnlyTable, ReadableDatabase as _, ReadableTable as _,
    ReadableTableMetadata as _, StorageError, TableDefinition, TableError,
};

use super::{
    AccountStore, SeedReport, StoreError,
    integrity::{Fault, Faults, FileWatch, REDB_MAGIC},
};
use crate::domain::{Account, AccountId};

/// The accounts table: id → account JSON (`{"id":"10000","name":"Person_0"}`).
///
/// JSON rather than a compact binary encoding: it is what the original stored, it stays readable
/// with any redb tool, and decoding ~40 bytes of JSON costs well under a microsecond, which is
/// noise next to the HTTP work of a request (see `benches/store.rs`).
///
/// Public so that tools and tests can read a file written by the service with redb directly.
pub const ACCOUNTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("accounts");

/// Pause between attempts while another process holds the file.
const LOCK_RETRY_INTERVAL: Duration = Duration::from_millis(100);

/// An open account database. Dropping it closes the file; [`RedbStore::close`] reports errors.
#[derive(Debug)]
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    file: FileWatch,
    faults: Faults,
    /// The accounts table as of the last write, shared by every lookup.
    snapshot: SnapshotCache<AccountsTable>,
}

/// A read-only view of [`ACCOUNTS`]; it keeps its read transaction alive.
type AccountsTable = ReadOnlyTable<&'static str, &'static [u8]>;

impl RedbStore {
    /// Opens (or creates) the database at `path`, retrying for up to `lock_timeout` while another
    /// process holds it, with redb's default page cache. Blocking: call it off the async reactor.
    pub fn open(path: impl AsRef<Path>, lock_timeout: Duration) -> Result<Self, StoreError> {
        Self::open_with_cache(path, lock_timeout, None)
    }

    /// [`RedbStore::open`], with the page cache bounded to `cache_bytes` when given (see
    /// `memory_limit::database_cache_bytes`): the cache grows with the accounts clients ask for.
    pub fn open_with_cache(
        path: impl AsRef<Path>,
        lock_timeout: Duration,
        cache_bytes: Option<usize>,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        refuse_non_database(&path)?;
        let mut builder = Database::builder();
        if let Some(bytes) = cache_bytes {
            builder.set_cache_size(bytes);
        }
        let started = Instant::now();
        loop {
            match builder.create(&path) {
                Ok(db) => {
                    let file = FileWatch::open(&path).map_err(|source| StoreError::Open {
                        path: path.clone(),
                        source,
                    })?;
                    return Ok(Self {
                        db,
                        path,
                        file,
                        faults: Faults::default(),
                        snapshot: SnapshotCache::default(),
                    });
                }
                Err(DatabaseError::DatabaseAlreadyOpen) => {
                    let waited = started.elapsed();
                    if waited >= lock_timeout {
                        return Err(StoreError::AlreadyOpen { path, waited });
                    }
                    thread::sleep(LOCK_RETRY_INTERVAL.min(lock_timeout - waited));
                }
                Err(DatabaseError::Storage(StorageError::Io(source)))
                    if source.kind() == io::ErrorKind::InvalidData =>
                {
                    // redb's own magic-number check: the file changed after ours.
                    return Err(StoreError::NotADatabase {
                        path,
                        reason: source.to_string(),
                    });
                }
                Err(DatabaseError::Storage(StorageError::Io(source))) => {
                    return Err(StoreError::Open { path, source });
                }
                Err(source) => return Err(StoreError::Database { path, source }),
            }
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and closes the file, releasing its lock. A panic inside redb (possible on a
    /// damaged file) is reported as an error, not propagated.
    pub fn close(self) -> Result<(), StoreError> {
        let db = self.db;
        match catch_unwind(AssertUnwindSafe(move || db.close())) {
            Ok(result) => result.map_err(|source| StoreError::transaction("close", source)),
            Err(panic) => Err(Fault {
                summary: "storage engine panicked",
                detail: format!("while closing: {}", panic_message(&*panic)),
            }
            .into()),
        }
    }

    /// Runs a read against redb: fails fast while a fault is recorded, turns a panic into an
    /// error, and records storage errors and panics as sticky faults.
    fn read<T>(
        &self,
        operation: &'static str,
        read: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.faults.current()?;
        match catch_unwind(AssertUnwindSafe(read)) {
            Ok(Err(StoreError::Transaction { operation, source }))
                if is_storage_failure(&source) =>
            {
                self.faults.set_sticky(Fault {
                    summary: "storage error, restart needed",
                    detail: format!("database {operation} failed: {source}"),
                });
                Err(StoreError::Transaction { operation, source })
            }
            Ok(result) => result,
            Err(panic) => {
                let fault = Fault {
                    summary: "storage engine panicked, restart needed",
                    detail: format!(
                        "redb panicked during a {operation}: {}",
                        panic_message(&*panic)
                    ),
                };
                self.faults.set_sticky(fault.clone());
                Err(fault.into())
            }
        }
    }

    /// The shared snapshot of the accounts table, opened if there is none yet; `None` while the
    /// table does not exist (never seeded).
    fn accounts_table(&self) -> Result<Option<Arc<AccountsTable>>, StoreError> {
        let generation = match self.snapshot.get() {
            Ok(table) => return Ok(Some(table)),
            Err(generation) => generation,
        };
        let txn = self
            .db
            .begin_read()
            .map_err(|e| StoreError::transaction("read", e))?;
        let table = match txn.open_table(ACCOUNTS) {
            Ok(table) => Arc::new(table),
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(StoreError::transaction("read", e)),
        };
        self.snapshot.install(generation, table.clone());
        Ok(Some(table))
    }
}

/// A value shared by every reader until the next write, which cannot be put back stale.
///
/// A reader that finds no value opens one itself, which takes time; if a write commits
/// meanwhile, the value it opened may predate that write. Every write bumps a generation, and
/// [`SnapshotCache::install`] only keeps a value opened under the current one: the
/// [`Generation`] it needs can only come from [`SnapshotCache::get`], taken before opening.
#[derive(Debug)]
struct SnapshotCache<T> {
    state: RwLock<CacheState<T>>,
}

#[derive(Debug)]
struct CacheState<T> {
    /// Bumped by every [`SnapshotCache::invalidate`].
    generation: u64,
    value: Option<Arc<T>>,
}

/// Which write a reader's value was opened after; only [`SnapshotCache::get`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Generation(u64);

impl<T> Default for SnapshotCache<T> {
    fn default() -> Self {
        Self {
            state: RwLock::new(CacheState {
                generation: 0,
                value: None,
            }),
        }
    }
}

impl<T> SnapshotCache<T> {
    /// The shared value, or the generation to open a new one under.
    fn get(&self) -> Result<Arc<T>, Generation> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        match &state.value {
            Some(value) => Ok(value.clone()),
            None => Err(Generation(state.generation)),
        }
    }

    /// Shares `value`, opened after [`SnapshotCache::get`] returned `generation`, unless a write
    /// happened since (then it may be stale, and the next reader opens a fresh one).
    fn install(&self, generation: Generation, value: Arc<T>) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if Generation(state.generation) == generation && state.value.is_none() {
            state.value = Some(value);
        }
    }

    /// Forgets the shared value; call it after every committed write.
    fn invalidate(&self) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.generation += 1;
        state.value = None;
    }
}

/// Whether a redb error means the storage itself failed (as opposed to a caller's mistake):
/// after those redb wants to be closed and reopened.
fn is_storage_failure(error: &redb::Error) -> bool {
    matches!(
        error,
        redb::Error::Io(_)
            | redb::Error::PreviousIo
            | redb::Error::Corrupted(_)
            | redb::Error::LockPoisoned(_)
            | redb::Error::DatabaseClosed
    )
}

/// The message of a caught panic.
fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Refuses a non-empty file that does not start with redb's magic number, without writing to it.
fn refuse_non_database(path: &Path) -> Result<(), StoreError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        // Missing: redb creates it. Anything else (permissions...) is reported by redb's open.
        Err(_) => return Ok(()),
    };
    let mut head = Vec::with_capacity(REDB_MAGIC.len());
    (&mut file)
        .take(REDB_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    if head.is_empty() || head == REDB_MAGIC {
        return Ok(());
    }
    let reason = if head.len() < REDB_MAGIC.len() {
        format!("only {} bytes long", head.len())
    } else {
        "it does not start with redb's magic number".to_owned()
    };
    Err(StoreError::NotADatabase {
        path: path.to_path_buf(),
        reason,
    })
}

impl AccountStore for RedbStore {
    /// A file inside this replica's own volume: a replacement starts with a fresh one.
    fn is_shared(&self) -> bool {
        false
    }

    fn get(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.read("read", || {
            // Never seeded: no account exists yet.
            let Some(table) = self.accounts_table()? else {
                return Ok(None);
            };
            let Some(value) = table
                .get(id.as_str())
                .map_err(|e| StoreError::transaction("read", e))?
            else {
                return Ok(None);
            };
            serde_json::from_slice(value.value())
                .map(Some)
                .map_err(|source| StoreError::Decode {
                    id: id.to_string(),
                    source,
                })
        })
    }

    fn seed(&self, accounts: &[Account]) -> Result<SeedReport, StoreError> {
        let seed_error = |e: redb::Error| StoreError::Transaction {
            operation: "seed",
            source: e,
        };
        let mut txn = self.db.begin_write().map_err(|e| seed_error(e.into()))?;
        // Quick repair records the allocator state with each commit (and commits in two phases),
        // so reopening after a crash does not have to walk a million-account file.
        txn.set_quick_repair(true);
        let mut report = SeedReport::default();
        let mut json = Vec::with_capacity(64);
        {
            let mut table = txn.open_table(ACCOUNTS).map_err(|e| seed_error(e.into()))?;
            for account in accounts {
                let id = account.id.as_str();
                if table.get(id).map_err(|e| seed_error(e.into()))?.is_some() {
                    report.existing += 1;
                    continue;
                }
                json.clear();
                serde_json::to_writer(&mut json, account).map_err(|source| StoreError::Decode {
                    id: account.id.clone(),
                    source,
                })?;
                table
                    .insert(id, json.as_slice())
                    .map_err(|e| seed_error(e.into()))?;
                report.inserted += 1;
            }
        }
        if report.inserted == 0 {
            // Nothing to write: leave the file exactly as it was.
            txn.abort().map_err(|e| seed_error(e.into()))?;
        } else {
            txn.commit().map_err(|e| seed_error(e.into()))?;
            self.file.written();
            // Lookups must see what was just written.
            self.snapshot.invalidate();
        }
        Ok(report)
    }

    /// Verifies the file on disk (see `store::integrity`) and records the outcome, which
    /// lookups then fail fast with too; then runs a read transaction, which reports the first
    /// fault recorded (a sticky one before a file one) instead, if there is any.
    fn check(&self) -> Result<u64, StoreError> {
        self.faults.set_file(self.file.verify().err());
        self.read("check", || {
            let txn = self
                .db
                .begin_read()
                .map_err(|e| StoreError::transaction("check", e))?;
            match txn.open_table(ACCOUNTS) {
                Ok(table) => table.len().map_err(|e| StoreError::transaction("check", e)),
                Err(TableError::TableDoesNotExist(_)) => Ok(0),
                Err(e) => Err(StoreError::transaction("check", e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.db");
        (dir, path)
    }

    fn id(raw: &str) -> AccountId {
        AccountId::parse(raw).unwrap()
    }

    #[test]
    fn a_missing_file_is_created_as_an_empty_database() {
        let (_dir, path) = temp_db();
        let store = RedbStore::open(&path, Duration::ZERO).unwrap();
        assert!(path.exists());
        assert_eq!(store.check().unwrap(), 0);
        assert_eq!(store.get(&id("10000")).unwrap(), None);
    }

    #[test]
    fn a_bounded_cache_serves_every_account_and_evicts_instead_of_growing() {
        let (_dir, path) = temp_db();
        let store = RedbStore::open_with_cache(&path, Duration::ZERO, Some(64 * 1024)).unwrap();
        let accounts: Vec<_> = (0..20_000).map(Account::fake).collect();
        store.seed(&accounts).unwrap();
        for account in accounts.iter().step_by(7) {
            assert_eq!(store.get(&id(&account.id)).unwrap().as_ref(), Some(account));
        }
        // 20,000 accounts take far more than 64 KiB of pages: had the cache not been bounded,
        // nothing would have been evicted.
        let stats = store.db.cache_stats();
        assert!(stats.evictions() > 0, "{stats:?}");
        assert!(stats.used_bytes() <= 64 * 1024, "{stats:?}");
    }

    #[test]
    fn seeded_accounts_can_be_read_back() {
        let (_dir, path) = temp_db();
        let store = RedbStore::open(&path, Duration::ZERO).unwrap();
        let accounts: Vec<_> = (0..100).map(Account::fake).collect();
        let report = store.seed(&accounts).unwrap();
        assert_eq!(
            report,
            SeedReport {
                inserted: 100,
                existing: 0
            }
        );
        assert_eq!(store.get(&id("10042")).unwrap(), Some(Account::fake(42)));
        assert_eq!(store.get(&id("10100")).unwrap(), None);
        assert_eq!(store.check().unwrap(), 100);
    }

    #[test]
    fn lookups_see_every_write_although_they_share_a_snapshot() {
        let (_dir, path) = temp_db();
        let store = RedbStore::open(&path, Duration::ZERO).unwrap();
        // Before the table exists, and after: the empty answer is not remembered.
        assert_eq!(store.get(&id("10000")).unwrap(), None);
        store.seed(&[Account::fake(0)]).unwrap();
        assert_eq!(store.get(&id("10000")).unwrap(), Some(Account::fake(0)));
        // The snapshot now exists; a later write must replace it.
        assert_eq!(store.get(&id("10001")).unwrap(), None);
        store.seed(&[Account::fake(1)]).unwrap();
        assert_eq!(store.get(&id("10001")).unwrap(), Some(Account::fake(1)));
    }

    #[test]
    fn a_snapshot_opened_before_a_write_is_not_shared_after_it() {
        let cache = SnapshotCache::<&str>::default();
        // A reader finds nothing and starts opening a snapshot...
        let Err(generation) = cache.get() else {
            panic!("a new cache holds nothing")
        };
        // ...a write commits and invalidates meanwhile...
        cache.invalidate();
        // ...and the reader's now stale snapshot is not kept.
        cache.install(generation, Arc::new("stale"));
        let Err(generation) = cache.get() else {
            panic!("the stale snapshot was shared")
        };
        cache.install(generation, Arc::new("fresh"));
        assert_eq!(cache.get().ok().as_deref(), Some(&"fresh"));
    }

    #[test]
    fn seeding_twice_inserts_only_what_is_missing() {
        let (_dir, path) = temp_db();
        let store = RedbStore::open(&path, Duration::ZERO).unwrap();
        let first: Vec<_> = (0..50).map(Account::fake).collect();
        store.seed(&first).unwrap();
        let all: Vec<_> = (0..100).map(Account::fake).collect();
        let report = store.seed(&all).unwrap();
        assert_eq!(
            report,
            SeedReport {
                inserted: 50,
                existing: 50
            }
        );
        assert_eq!(store.check().unwrap(), 100);
    }

    #[test]
    fn seeding_never_overwrites_an_existing_account() {
        let (_dir, path) = temp_db();
        let store = RedbStore::open(&path, Duration::ZERO).unwrap();
        let renamed = Account {
            id: "10042".into(),
            name: "Renamed".into(),
        };
        store.seed(std::slice::from_ref(&renamed)).unwrap();
        let report = store.seed(&[Account::fake(42)]).unwrap();
        assert_eq!(
            report,
            SeedReport {
                inserted: 0,
                existing: 1
            }
        );
        assert_eq!(store.get(&id("10042")).unwrap(), Some(renamed));
    }

    #[test]
    fn data_survives_closing_and_reopening() {
        let (_dir, path) = temp_db();
        let store = RedbStore::open(&path, Duration::ZERO).unwrap();
        store.seed(&[Account::fake(7)]).unwrap();
        store.close().unwrap();
        let store = RedbStore::open(&path, Duration::ZERO).unwrap();
        assert_eq!(store.get(&id("10007")).unwrap(), Some(Account::fake(7)));
    }

    #[test]
    fn a_second_open_of_the_same_file_fails_after_the_lock_timeout() {
        let (_dir, path) = temp_db();
        let _first = RedbStore::open(&path, Duration::ZERO).unwrap();
        let started = Instant::now();
        let error = RedbStore::open(&path, Duration::from_millis(300)).unwrap_err();
        let waited = started.elapsed();
        assert!(matches!(error, StoreError::AlreadyOpen { .. }), "{error:?}");
        assert!(
            waited >= Duration::from_millis(300),
            "gave up after {waited:?}"
        );
        assert!(waited < Duration::from_secs(5), "took {waited:?}");
        assert!(error.to_string().contains("in use by another process"));
    }

    #[test]
    fn the_lock_is_released_when_the_store_is_closed() {
        let (_dir, path) = temp_db();
        RedbStore::open(&path, Duration::ZERO)
            .unwrap()
            .close()
            .unwrap();
        RedbStore::open(&path, Duration::ZERO).unwrap();
    }

    fn assert_refused_and_untouched(contents: &[u8]) {
        let (_dir, path) = temp_db();
        std::fs::write(&path, contents).unwrap();
        let error = RedbStore::open(&path, Duration::ZERO).unwrap_err();
        assert!(
            matches!(error, StoreError::NotADatabase { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("not a redb database"), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), contents);
    }

    #[test]
    fn a_text_file_is_refused_and_left_untouched() {
        assert_refused_and_untouched(b"id,name\n10000,Person_0\n");
    }

    #[test]
    fn a_file_of_random_bytes_is_refused_and_left_untouched() {
        // A fixed xorshift stream: "random" without a dependency, and reproducible.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let bytes: Vec<u8> = (0..64 * 1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        assert_refused_and_untouched(&bytes);
    }

    #[test]
    fn a_file_shorter_than_the_magic_number_is_refused() {
        assert_refused_and_untouched(b"redb");
    }

    #[test]
    fn a_redb_file_can_be_recognised_by_its_magic_number() {
        let (_dir, path) = temp_db();
        RedbStore::open(&path, Duration::ZERO)
            .unwrap()
            .close()
            .unwrap();
        let head = std::fs::read(&path).unwrap();
        assert_eq!(head[..REDB_MAGIC.len()], REDB_MAGIC);
    }

    #[test]
    fn an_unwritable_location_gives_an_open_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_dir = dir.path().join("file");
        std::fs::write(&not_a_dir, b"x").unwrap();
        let path = not_a_dir.join("accounts.db");
        let error = RedbStore::open(&path, Duration::ZERO).unwrap_err();
        assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
        assert!(error.to_string().contains("accounts.db"), "{error}");
    }
}
