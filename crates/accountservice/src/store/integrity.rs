//! What the store knows about the health of its file, beyond what redb tells it.
//!
//! redb caches every page it has read, and its table length lives in memory, so a read
//! transaction alone cannot notice that the file under it was removed, replaced, truncated or
//! overwritten. Two things close that gap:
//!
//! - [`FileWatch`] looks at the file itself on every health check: the path must still name the
//!   file redb opened (same device and inode), be readable, start with redb's magic number, and not
//!   have shrunk. These faults clear when the file is put back.
//! - [`Faults`] remembers a storage error or a panic inside redb. redb refuses to go on after an
//!   I/O error ("close and re-open the database"), so such a fault is sticky: lookups and checks
//!   fail fast with the first cause until the process restarts, which is what the orchestrator
//!   does when readiness and `/health` fail.

use std::{
    fs::File,
    io,
    os::unix::fs::{FileExt as _, MetadataExt as _},
    path::{Path, PathBuf},
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use super::StoreError;

/// The first bytes of every redb file (redb's `MAGICNUMBER`, a PNG-style signature).
pub const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// A handle on the database file of our own, to compare the path and the contents against.
#[derive(Debug)]
pub struct FileWatch {
    path: PathBuf,
    handle: File,
    device: u64,
    inode: u64,
    /// The length seen by the first verification after the last write; 0 until then. The
    /// service writes only while seeding, so the file never shrinks while it serves.
    length: AtomicU64,
}

impl FileWatch {
    /// Opens `path` read-only; call it right after redb opened the same path.
    pub fn open(path: &Path) -> io::Result<Self> {
        let handle = File::open(path)?;
        let metadata = handle.metadata()?;
        Ok(Self {
            path: path.to_path_buf(),
            handle,
            device: metadata.dev(),
            inode: metadata.ino(),
            length: AtomicU64::new(0),
        })
    }

    /// Forgets the length, after a write that may legitimately have changed it.
    pub fn written(&self) {
        self.length.store(0, Ordering::Release);
    }

    /// Checks the file as described in the module documentation.
    pub fn verify(&self) -> Result<(), Fault> {
        let unusable = |summary: &'static str, detail: String| Fault {
            summary,
            detail: format!("{}: {detail}", self.path.display()),
        };
        match File::open(&self.path).and_then(|file| file.metadata()) {
            Ok(metadata) if (metadata.dev(), metadata.ino()) != (self.device, self.inode) => {
                return Err(unusable(
                    "file replaced",
                    "the path now names another file than the one opened at start".into(),
                ));
            }
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(unusable(
                    "file removed",
                    "the open file was unlinked; its data is gone at the next start".into(),
                ));
            }
            Err(error) => {
                return Err(unusable(
                    "file unreadable",
                    format!("cannot open it again ({error}); a restart would fail"),
                ));
            }
        }
        let mut head = [0_u8; REDB_MAGIC.len()];
        if let Err(error) = self.handle.read_exact_at(&mut head, 0) {
            return Err(unusable(
                "file header unreadable",
                format!("reading the header failed: {error}"),
            ));
        }
        if head != REDB_MAGIC {
            return Err(unusable(
                "file header damaged",
                "the file no longer starts with redb's magic number".into(),
            ));
        }
        let length = self
            .handle
            .metadata()
            .map_err(|error| unusable("file unreadable", format!("fstat failed: {error}")))?
            .len();
        let known = self.length.load(Ordering::Acquire);
        if known == 0 {
            self.length.store(length, Ordering::Release);
        } else if length < known {
            return Err(unusable(
                "file truncated",
                format!("it shrank from {known} to {length} bytes"),
            ));
        }
        Ok(())
    }
}

/// One reason the store is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// A few words safe to show anyone, e.g. "file removed".
    pub summary: &'static str,
    /// The whole story, for logs and `--health-details always`.
    pub detail: String,
}

impl From<Fault> for StoreError {
    fn from(Fault { summary, detail }: Fault) -> Self {
        StoreError::Unusable { summary, detail }
    }
}

/// The faults currently making the store unusable.
///
/// Both faults live in one [`FaultState`] under one mutex, so there is no lock order to get
/// wrong; nothing is logged while the mutex is held (the log line is decided under it and
/// written after it is released).
#[derive(Debug, Default)]
pub struct Faults {
    /// Set while either fault is present: the fast path of every lookup.
    any: AtomicBool,
    state: Mutex<FaultState>,
}

/// Everything [`Faults`] knows, guarded as one value.
#[derive(Debug, Default)]
struct FaultState {
    /// A storage error or panic inside redb; never cleared.
    sticky: Option<Fault>,
    /// A problem with the file seen by the last verification; cleared when it is gone.
    file: Option<Fault>,
}

impl FaultState {
    fn any(&self) -> bool {
        self.sticky.is_some() || self.file.is_some()
    }
}

/// A log line decided under the lock, written after it is released.
enum Change {
    Sticky(Fault),
    FileFault(Fault),
    FileUsable,
}

impl Change {
    fn log(self) {
        match self {
            Change::Sticky(fault) => tracing::error!(
                summary = fault.summary,
                detail = %fault.detail,
                "the database is unusable until restart"
            ),
            Change::FileFault(fault) => tracing::error!(
                summary = fault.summary,
                detail = %fault.detail,
                "the database file is not usable"
            ),
            Change::FileUsable => tracing::info!("the database file is usable again"),
        }
    }
}

impl Faults {
    /// `Err` with the first fault, if any: a sticky one before a file one.
    pub fn current(&self) -> Result<(), StoreError> {
        if !self.any.load(Ordering::Acquire) {
            return Ok(());
        }
        let fault = {
            let state = self.lock();
            state.sticky.as_ref().or(state.file.as_ref()).cloned()
        };
        match fault {
            Some(fault) => Err(fault.into()),
            None => Ok(()),
        }
    }

    /// Records a fault that only a restart clears; the first one is kept.
    pub fn set_sticky(&self, fault: Fault) {
        let change = {
            let mut state = self.lock();
            let change = state.sticky.is_none().then(|| {
                state.sticky = Some(fault.clone());
                Change::Sticky(fault)
            });
            self.any.store(true, Ordering::Release);
            change
        };
        if let Some(change) = change {
            change.log();
        }
    }

    /// Records the outcome of a file verification.
    pub fn set_file(&self, fault: Option<Fault>) {
        let change = {
            let mut state = self.lock();
            let change = match (&state.file, &fault) {
                (None, Some(fault)) => Some(Change::FileFault(fault.clone())),
                (Some(_), None) => Some(Change::FileUsable),
                _ => None,
            };
            state.file = fault;
            // Under the lock, so the flag always matches the state last written.
            self.any.store(state.any(), Ordering::Release);
            change
        };
        if let Some(change) = change {
            change.log();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        // The state is two plain values, consistent after every statement: a panic elsewhere
        // while it was held leaves nothing half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redb_like_file(dir: &Path) -> PathBuf {
        let path = dir.join("accounts.db");
        let mut bytes = REDB_MAGIC.to_vec();
        bytes.resize(4096, 7);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn an_untouched_file_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let watch = FileWatch::open(&redb_like_file(dir.path())).unwrap();
        watch.verify().unwrap();
        watch.verify().unwrap();
    }

    fn summary(fault: Fault) -> &'static str {
        fault.summary
    }

    fn fault(summary: &'static str, detail: &str) -> Fault {
        Fault {
            summary,
            detail: detail.into(),
        }
    }

    #[test]
    fn removal_replacement_damage_and_truncation_are_each_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = redb_like_file(dir.path());
        let watch = FileWatch::open(&path).unwrap();
        watch.verify().unwrap();

        std::fs::rename(&path, dir.path().join("aside")).unwrap();
        assert_eq!(summary(watch.verify().unwrap_err()), "file removed");
        std::fs::rename(dir.path().join("aside"), &path).unwrap();
        watch.verify().unwrap();

        std::fs::write(dir.path().join("other"), REDB_MAGIC).unwrap();
        std::fs::rename(dir.path().join("other"), dir.path().join("aside")).unwrap();
        std::fs::hard_link(&path, dir.path().join("keep")).unwrap();
        std::fs::rename(dir.path().join("aside"), &path).unwrap();
        assert_eq!(summary(watch.verify().unwrap_err()), "file replaced");
        std::fs::rename(dir.path().join("keep"), &path).unwrap();
        watch.verify().unwrap();

        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[0; 9], 0).unwrap();
        assert_eq!(summary(watch.verify().unwrap_err()), "file header damaged");
        file.write_all_at(&REDB_MAGIC, 0).unwrap();
        watch.verify().unwrap();

        file.set_len(1024).unwrap();
        assert_eq!(summary(watch.verify().unwrap_err()), "file truncated");
    }

    #[test]
    fn a_file_fault_clears_but_a_sticky_fault_stays() {
        let faults = Faults::default();
        faults.current().unwrap();
        faults.set_file(Some(fault("file removed", "x")));
        assert!(faults.current().is_err());
        faults.set_file(None);
        faults.current().unwrap();
        faults.set_sticky(fault("storage error", "disk"));
        faults.set_sticky(fault("later", "ignored"));
        faults.set_file(None);
        let error = faults.current().unwrap_err();
        assert!(matches!(
            error,
            StoreError::Unusable {
                summary: "storage error",
                ..
            }
        ));
    }

    #[test]
    fn faults_read_and_written_from_many_threads_never_deadlock() {
        // Readers (lookups), file verifications (health checks) and sticky faults (storage
        // errors) at once, as on the fault path of a busy service. A deadlock must fail the
        // test, not hang it: the threads report to a channel the test waits on with a bound.
        const THREADS: usize = 6;
        const ITERATIONS: usize = 20_000;
        let faults = std::sync::Arc::new(Faults::default());
        let (done, finished) = std::sync::mpsc::channel();
        for thread in 0..THREADS {
            let faults = faults.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                for i in 0..ITERATIONS {
                    match (thread % 3, i % 2) {
                        (0, _) => {
                            let _ = faults.current();
                        }
                        (1, 0) => faults.set_file(Some(fault("file removed", "x"))),
                        (1, _) => faults.set_file(None),
                        _ if i % 1000 == 999 => faults.set_sticky(fault("storage error", "y")),
                        _ => {
                            let _ = faults.current();
                        }
                    }
                }
                let _ = done.send(thread);
            });
        }
        drop(done);
        // Far above the milliseconds this takes; the old two-lock version hung within it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        for _ in 0..THREADS {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            finished
                .recv_timeout(left)
                .expect("threads using Faults did not finish: deadlock");
        }
        // The sticky fault was recorded and wins over the file fault.
        faults.set_file(Some(fault("file removed", "x")));
        assert!(matches!(
            faults.current(),
            Err(StoreError::Unusable {
                summary: "storage error",
                ..
            })
        ));
    }
}
