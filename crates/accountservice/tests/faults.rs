//! Fault tests: the real binary under SIGKILL, a full disk, a database file tampered with at run
//! time, and SIGTERM under load, each checked for what is kept and what is reported.
//!
//! Every wait is bounded; no assertion depends on how fast this machine happens to be.
//!
//! Two tests need root (a tmpfs to fill, file modes as root sees them): `cargo test` lists them
//! as ignored, `cargo xtask faults` runs them as root (CI does), and without root they fail.

mod support;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant, SystemTime},
};

use accountservice::{domain::Account, seed::DEFAULT_CHUNK_SIZE as CHUNK, store::ACCOUNTS};
use redb::{ReadableDatabase as _, ReadableTable as _};
use support::{
    Connection, Failure, SEEDING_TIMEOUT, Service, TIMEOUT, args, fake_account, get, poll_until,
    run_to_exit,
};

/// The `key=value` fields of a log line, e.g. `inserted=200000`.
fn field(line: &str, name: &str) -> u64 {
    let prefix = format!("{name}=");
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(&prefix))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no numeric {name}= in {line:?}"))
}

/// Reads every stored account straight from the file with redb (repairing it first, as any
/// open after a crash does) and checks each one is whole: a JSON account whose id is its key
/// and whose name is the seeded one. Returns the account numbers, sorted.
fn whole_accounts(path: &Path) -> Vec<u64> {
    let db = redb::Database::open(path)
        .unwrap_or_else(|error| panic!("redb cannot open {}: {error}", path.display()));
    let txn = db.begin_read().expect("read transaction");
    let table = txn.open_table(ACCOUNTS).expect("accounts table");
    let mut numbers = Vec::new();
    for entry in table.iter().expect("iterate") {
        let (key, value) = entry.expect("readable entry");
        let id = key.value();
        let account: serde_json::Value = serde_json::from_slice(value.value())
            .unwrap_or_else(|error| panic!("account {id} is not JSON: {error}"));
        let number = id
            .parse::<u64>()
            .ok()
            .and_then(|id| id.checked_sub(Account::FIRST_FAKE_ID))
            .unwrap_or_else(|| panic!("unexpected id {id:?}"));
        let (expected_id, expected_name) = fake_account(number);
        assert_eq!(account["id"], expected_id.as_str(), "{account}");
        assert_eq!(account["name"], expected_name.as_str(), "{account}");
        assert_eq!(account.as_object().map(|fields| fields.len()), Some(2));
        numbers.push(number);
    }
    numbers.sort_unstable();
    numbers
}

/// Asserts that `numbers` is exactly `0..count`: nothing missing, nothing extra.
fn assert_exactly_first(numbers: &[u64], count: u64) {
    assert_eq!(numbers.len() as u64, count, "stored account count");
    if let Some((index, number)) = numbers
        .iter()
        .enumerate()
        .find(|(index, number)| *index as u64 != **number)
    {
        panic!("account {index} missing (found {number} in its place)");
    }
}

fn expect_account(address: std::net::SocketAddr, number: u64) {
    let (id, name) = fake_account(number);
    let answer = get(address, &format!("/accounts/{id}"));
    assert_eq!(answer.status, 200, "account {id}: {answer:?}");
    assert_eq!(answer.json()["name"], name.as_str());
}

/// Sends SIGTERM once the instance has answered a request, and expects exit code 0: the answer
/// shows the instance serving, so the stop tested is a drain, not one during start-up.
fn stop_cleanly(service: &mut Service, address: std::net::SocketAddr) {
    assert_eq!(get(address, "/health/live").status, 200);
    service.terminate();
    assert_eq!(service.wait().code(), Some(0), "{}", service.stderr());
}

/// Sends SIGTERM to an instance whose health is DOWN and expects it to drain, then exit 3 with
/// its last line on stderr giving the reason, which starts with `reason`.
fn stop_unhealthy(service: &mut Service, reason: &str) {
    service.terminate();
    let status = service.wait();
    let stderr = service.stderr();
    assert_eq!(status.code(), Some(3), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "accountservice: stopped while unhealthy: {reason}"
        )),
        "{stderr}"
    );
    assert!(
        service
            .rest_of_log()
            .iter()
            .any(|line| line.contains("drained")),
        "no drain"
    );
}

/// Fails the test, with `why`, unless it runs as root: a root-only test must never pass
/// without doing its work.
fn require_root(why: &str) {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .expect("a Uid line in /proc/self/status");
    assert_eq!(
        uid, "0",
        "this test needs root ({why}); run it with `cargo xtask faults` as root, as CI does"
    );
}

// ---- 1. SIGKILL while seeding ---------------------------------------------------------------

/// Three seeding transactions: a debug build takes seconds over each, so the kill, sent as the
/// second begins, lands well before the last commits.
const KILL_SEED: u64 = 3 * CHUNK;

#[test]
fn a_sigkill_while_seeding_loses_no_committed_account_and_a_restart_completes_the_set() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = dir.path().join("accounts.db");
    let seed = KILL_SEED.to_string();

    let mut first = Service::start(
        dir.path(),
        &args(
            "accounts.db",
            &[
                "--seed-accounts",
                &seed,
                "--log-filter",
                "info,accountservice::seed=debug",
            ],
        ),
    );
    // Logged as the second transaction begins, after the first committed: the kill lands while
    // it inserts (which takes seconds), or at the latest while it commits.
    first.wait_for_line_within(
        &format!("seeding accounts: writing {CHUNK}..{}", 2 * CHUNK),
        SEEDING_TIMEOUT,
    );
    first.kill_9();
    let seeded_already = first
        .drain_log()
        .iter()
        .any(|line| line.contains(&format!("seeding accounts: {KILL_SEED}/")));
    assert!(
        !seeded_already,
        "seeding ended before the kill; the test proves nothing"
    );
    let status = first.wait();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );

    // What the crash left, read from a copy so the restart below meets the file as it was.
    let copy = dir.path().join("crashed-copy.db");
    fs::copy(&db, &copy).unwrap();
    let survived = whole_accounts(&copy);
    let kept = survived.len() as u64;
    assert!(
        (CHUNK..KILL_SEED).contains(&kept) && kept.is_multiple_of(CHUNK),
        "a crash must keep whole transactions only: {kept} accounts survived"
    );
    assert_exactly_first(&survived, kept);

    let started = Instant::now();
    let mut second = Service::start(
        dir.path(),
        &args("accounts.db", &["--seed-accounts", &seed]),
    );
    let seeded = second.wait_for_line_within(
        &format!("seeded {KILL_SEED} fake accounts"),
        SEEDING_TIMEOUT,
    );
    let address = second.wait_until_listening();
    let restart = started.elapsed();
    let (inserted, existing, stored) = (
        field(&seeded, "inserted"),
        field(&seeded, "existing"),
        field(&seeded, "stored"),
    );
    assert_eq!(existing, kept, "{seeded}");
    assert_eq!(inserted + existing, KILL_SEED, "{seeded}");
    assert_eq!(stored, KILL_SEED, "{seeded}");

    for number in [0, kept - 1, kept, KILL_SEED / 2 + 7, KILL_SEED - 1] {
        expect_account(address, number);
    }
    let (beyond, _) = fake_account(KILL_SEED);
    assert_eq!(get(address, &format!("/accounts/{beyond}")).status, 404);
    assert_eq!(get(address, "/health").status, 200);
    second.terminate();
    assert_eq!(second.wait().code(), Some(0), "{}", second.stderr());

    let all = whole_accounts(&db);
    assert_exactly_first(&all, KILL_SEED);
    println!(
        "killed with {kept} of {KILL_SEED} accounts committed; restart inserted {inserted}, found \
         {existing}, stored {stored}; restart to listening took {restart:?}"
    );
}

// ---- 2. Disk full while seeding -------------------------------------------------------------

/// A tmpfs mounted for one test and unmounted when dropped, even if the test fails.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("cannot run mount");
        // No silent skip: a machine that cannot mount cannot run this test, and must say so.
        assert!(
            output.status.success(),
            "this test needs to mount a small tmpfs (root or CAP_SYS_ADMIN) to fill a disk: \
             `mount -t tmpfs` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            // Still busy (a child not yet reaped): detach it so it goes once unused.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

#[test]
#[ignore = "needs root: run by `cargo xtask faults`"]
fn a_full_disk_while_seeding_is_a_clear_error_and_the_earlier_accounts_survive() {
    require_root("mounts a 2 MiB tmpfs to fill a disk");
    let disk = Tmpfs::mount("2m");
    let dir = disk.path();

    let mut first = Service::start(dir, &args("accounts.db", &["--seed-accounts", "100"]));
    let address = first.wait_until_listening();
    stop_cleanly(&mut first, address);

    // ~14 MB of accounts on a 2 MiB disk.
    let (status, stderr) = run_to_exit(
        dir,
        &args("accounts.db", &["--seed-accounts", "100000"]),
        SEEDING_TIMEOUT,
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line, no panic: {stderr}");
    assert!(
        stderr.starts_with("accountservice: error: cannot seed the accounts: "),
        "{stderr}"
    );
    assert!(stderr.contains("No space left on device"), "{stderr}");

    // Twice: the second start also proves the first one's shutdown on the full disk (its close
    // cannot write either) damaged nothing.
    for round in 1..=2 {
        let mut again = Service::start(dir, &args("accounts.db", &["--seed-accounts", "100"]));
        let seeded = again.wait_for_line("seeded 100 fake accounts");
        assert!(
            seeded.contains("(0 inserted, 100 already present)"),
            "round {round}: {seeded}"
        );
        assert_eq!(field(&seeded, "stored"), 100, "round {round}: {seeded}");
        let address = again.wait_until_listening();
        expect_account(address, 0);
        expect_account(address, 99);
        assert_eq!(get(address, "/accounts/10100").status, 404);
        let health = get(address, "/health");
        assert_eq!(health.status, 200, "{health:?}");
        again.terminate();
        assert_eq!(again.wait().code(), Some(0), "{}", again.stderr());
    }
    assert_exactly_first(&whole_accounts(&dir.join("accounts.db")), 100);
}

// ---- 3. The database file tampered with at run time -----------------------------------------
//
// What redb does (redb 4.6, measured with scratch runs of this binary):
// - It reads the file with `pread` through its own page cache and keeps every page it has read
//   there; reads of cached pages never touch the file again, and the table length the read
//   transaction reports lives in memory. (With debug assertions redb walks every page at open,
//   hiding every change below; the workspace builds redb without them in tests for that reason.)
// - Removed (unlink) or replaced (rename over the path): the process keeps its open file, and
//   reads go on working on data no restart will find.
// - chmod 000: permissions are checked at open(2) only, and root ignores them anyway.
// - Truncated in place: a read of an uncached page fails, redb latches the failure, and every
//   later read that misses the cache fails ("close and re-open the database"). Writing the file
//   back does not help: only a restart recovers.
// - Overwritten in place (zeros, garbage): a read of an uncached page panics inside redb
//   (`unreachable!` in btree.rs) instead of returning an error.
//
// What the service does about it (`store::integrity`): every health check verifies that the
// path still names the open file, that it starts with redb's magic number and has not shrunk,
// so removal, replacement, a damaged header and truncation turn `/health` and readiness 503
// within one interval ("file removed", "file replaced", "file header damaged", "file
// truncated"), and lookups answer 503 while they last; moving the file back recovers. A storage
// error or panic in redb is caught, answered 503 and remembered: the store then fails fast with
// "storage error, restart needed" until the orchestrator replaces the instance.

/// Accounts seeded by the first run of a tamper test: enough pages that most are not cached by
/// a second run that seeds only 100 (in builds that read lazily).
const TAMPER_SEED: u64 = 20_000;

/// Seeds [`TAMPER_SEED`] accounts, stops, and starts again over the same file with a 0.2 s
/// health interval. Returns the running second instance, its address and the database path.
fn tamper_setup(dir: &Path) -> (Service, std::net::SocketAddr, PathBuf) {
    let seed = TAMPER_SEED.to_string();
    let mut first = Service::start(dir, &args("accounts.db", &["--seed-accounts", &seed]));
    let address = first.wait_until_listening_within(SEEDING_TIMEOUT);
    stop_cleanly(&mut first, address);

    let mut service = Service::start(
        dir,
        &args(
            "accounts.db",
            &[
                "--seed-accounts",
                "100",
                "--health-interval",
                "0.2",
                "--health-details",
                "always",
            ],
        ),
    );
    let address = service.wait_until_listening();
    assert_eq!(get(address, "/health").status, 200);
    (service, address, dir.join("accounts.db"))
}

/// Account numbers spread over the whole table, most of them on pages not yet read.
fn sample() -> impl Iterator<Item = u64> {
    (0..TAMPER_SEED).step_by(97)
}

/// After a fault that changes nothing for the open file (chmod as root): the instance keeps
/// serving every account and reports healthy over several check intervals.
fn assert_still_serving_the_open_file(service: &mut Service, address: std::net::SocketAddr) {
    // Several checks after the change, so a check that noticed anything would have reported it.
    wait_for_fresh_checks(address, 3);
    for number in sample() {
        expect_account(address, number);
    }
    for path in ["/health", "/health/ready", "/health/live"] {
        let answer = get(address, path);
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
    }
    assert!(service.is_running());
    service.terminate();
    assert_eq!(service.wait().code(), Some(0), "{}", service.stderr());
}

/// Waits until the database check has run `rounds` more times (its `checkedAt`, shown with
/// `--health-details always`, changed that often).
fn wait_for_fresh_checks(address: std::net::SocketAddr, rounds: usize) {
    let checked_at = || {
        let health = get(address, "/health").json();
        health["components"]["database"]["details"]["checkedAt"]
            .as_str()
            .unwrap_or_else(|| panic!("no checkedAt in {health}"))
            .to_owned()
    };
    let mut last = checked_at();
    let deadline = Instant::now() + TIMEOUT;
    for _ in 0..rounds {
        loop {
            let now = checked_at();
            if now != last {
                last = now;
                break;
            }
            assert!(Instant::now() < deadline, "no new check within {TIMEOUT:?}");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Waits for `/health` to fail with `reason`, then checks readiness and liveness fail too (the
/// file is the replica's own: a restart can cure it), and a lookup answers 503 JSON.
fn assert_reported_as(address: std::net::SocketAddr, reason: &str) {
    let (health, took) = poll_until(address, "/health", Duration::from_secs(10), |answer| {
        answer.status == 503
    });
    assert_eq!(health.json()["reason"], reason, "{health:?}");
    assert_eq!(get(address, "/health/ready").status, 503);
    assert_eq!(get(address, "/health/live").status, 503);
    let lookup = get(address, "/accounts/10001");
    assert_eq!(lookup.status, 503, "{lookup:?}");
    assert_eq!(lookup.json()["error"], "account store unavailable");
    println!("/health 503 {reason:?} after {took:?}");
}

/// Waits for `/health` to be 200 again and lookups to work.
fn assert_recovered(address: std::net::SocketAddr) {
    let (_, took) = poll_until(address, "/health", Duration::from_secs(10), |answer| {
        answer.status == 200
    });
    for number in sample().take(20) {
        expect_account(address, number);
    }
    println!("recovered after {took:?}");
}

#[test]
fn a_database_file_moved_away_is_reported_removed_and_recovers_when_moved_back() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mut service, address, db) = tamper_setup(dir.path());
    let aside = dir.path().join("aside.db");
    fs::rename(&db, &aside).unwrap();
    assert_reported_as(address, "database: file removed");
    fs::rename(&aside, &db).unwrap();
    assert_recovered(address);
    stop_cleanly(&mut service, address);
}

#[test]
fn a_database_file_removed_at_run_time_is_reported_and_a_restart_starts_empty() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mut service, address, db) = tamper_setup(dir.path());
    fs::remove_file(&db).unwrap();
    assert_reported_as(address, "database: file removed");
    assert!(service.is_running());
    stop_unhealthy(&mut service, "database: file removed");

    // The data lived only in the unlinked file: the next instance creates a new one. This is
    // what no instance can recover; the orchestrator's volume is the safeguard.
    let mut next = Service::start(
        dir.path(),
        &args("accounts.db", &["--seed-accounts", "100"]),
    );
    let seeded = next.wait_for_line("seeded 100 fake accounts");
    assert!(
        seeded.contains("(100 inserted, 0 already present)"),
        "{seeded}"
    );
    assert_eq!(field(&seeded, "stored"), 100, "{seeded}");
}

#[test]
fn a_database_file_replaced_at_run_time_is_reported_and_a_restart_refuses_the_stranger() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mut service, address, db) = tamper_setup(dir.path());
    let stranger = dir.path().join("stranger");
    fs::write(&stranger, b"not a database\n".repeat(1000)).unwrap();
    fs::rename(&stranger, &db).unwrap();
    assert_reported_as(address, "database: file replaced");
    stop_unhealthy(&mut service, "database: file replaced");

    let (status, stderr) = run_to_exit(dir.path(), &args("accounts.db", &[]), TIMEOUT);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not a redb database"), "{stderr}");
}

#[test]
#[ignore = "needs root: run by `cargo xtask faults`"]
fn a_database_file_made_unreadable_by_mode_changes_nothing_when_running_as_root() {
    require_root("checks what a file mode does to a service running as root");
    // Root (as these tests run) reads any file whatever its mode, and the service's own handle
    // was opened before the change; a non-root service would report "file unreadable" (a restart
    // would fail to open it), which the unit tests of the file watch cover by other means.
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mut service, address, db) = tamper_setup(dir.path());
    fs::set_permissions(&db, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    assert_still_serving_the_open_file(&mut service, address);
}

/// After a fault that damages the open file itself: within a bounded time `/health` and
/// `/health/ready` answer 503 with a reason, `/health/live` stays 200, every lookup answers
/// either the right account (from redb's cache) or a 503 JSON error, never a dropped
/// connection, and SIGTERM ends the process without a panic.
fn assert_damage_is_reported(mut service: Service, address: std::net::SocketAddr) {
    let mut unavailable = 0;
    for number in sample() {
        let (id, name) = fake_account(number);
        let mut connection = Connection::open(address).expect("connect");
        let answer = connection
            .get(&format!("/accounts/{id}"))
            .unwrap_or_else(|failure| {
                panic!(
                    "account {id}: no answer ({failure:?}); stderr: {}",
                    service.stderr()
                )
            });
        match answer.status {
            200 => assert_eq!(answer.json()["name"], name.as_str()),
            503 => {
                assert_eq!(answer.json()["error"], "account store unavailable");
                unavailable += 1;
            }
            status => panic!("account {id}: {status} {answer:?}"),
        }
    }
    let (health, took) = poll_until(address, "/health", Duration::from_secs(10), |answer| {
        answer.status == 503
    });
    let reason = health.json()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!reason.is_empty(), "{health:?}");
    assert_eq!(get(address, "/health/ready").status, 503);
    // A storage error of the replica's own file: a restart can cure it.
    assert_eq!(get(address, "/health/live").status, 503);
    assert!(service.is_running(), "{}", service.stderr());
    println!("{unavailable} lookups answered 503; /health 503 {reason:?} after {took:?}");
    // A panic inside redb may be printed by the panic hook, but it is caught: the process
    // answered every request above, drains and exits by itself, saying why it was unhealthy.
    // The reason may have moved on from the file fault to the storage error it caused.
    stop_unhealthy(&mut service, "database: ");
}

#[test]
fn a_database_file_truncated_at_run_time_turns_readiness_503_and_lookups_503_json() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (service, address, db) = tamper_setup(dir.path());
    fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(0)
        .unwrap();
    assert_damage_is_reported(service, address);
}

#[test]
fn a_database_file_overwritten_with_zeros_at_run_time_turns_readiness_503_without_a_panic() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (service, address, db) = tamper_setup(dir.path());
    let length = fs::metadata(&db).unwrap().len();
    let zeros = vec![0; usize::try_from(length).unwrap()];
    // In place (same inode), as a failing disk or a stray `dd` would do it.
    std::io::Write::write_all(
        &mut fs::OpenOptions::new().write(true).open(&db).unwrap(),
        &zeros,
    )
    .unwrap();
    assert_damage_is_reported(service, address);
}

// ---- 4. SIGTERM under load ------------------------------------------------------------------

/// Client loops hammering the service at once.
const CLIENTS: usize = 8;

/// What one client loop saw.
#[derive(Debug, Default)]
struct Tally {
    /// 200 answers with the right account.
    ok: u64,
    /// 200 answers carrying `Connection: close`: requests the server was handling when the drain
    /// began (hyper finishes those, then closes the connection).
    finished_by_drain: u64,
    /// When each request was written that a keep-alive connection closed by the drain left
    /// without an answer (the server had not read it yet).
    unanswered_sent_at: Vec<SystemTime>,
    /// New connections refused once the listener had closed.
    refused_after_sigterm: u64,
    /// Anything else: wrong answers, cut-off answers, failures before SIGTERM.
    errors: Vec<String>,
}

/// Answers each client loop gets before the test sends SIGTERM, so that the signal meets a
/// service under load from every loop.
const WARM_UP_ANSWERS: u64 = 50;

fn client_loop(
    client: usize,
    address: std::net::SocketAddr,
    sigterm_at: &OnceLock<Instant>,
    warmed_up: &AtomicUsize,
    give_up: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut connection: Option<Connection> = None;
    let mut request = client as u64;
    while Instant::now() < give_up {
        let mut open = match connection.take() {
            Some(open) => open,
            None => match Connection::open(address) {
                Ok(open) => open,
                Err(error) => {
                    if sigterm_at.get().is_some() {
                        tally.refused_after_sigterm += 1;
                    } else {
                        tally
                            .errors
                            .push(format!("connect before SIGTERM: {error}"));
                    }
                    return tally;
                }
            },
        };
        let number = request % 100;
        request += CLIENTS as u64;
        let (id, name) = fake_account(number);
        let sent_at = SystemTime::now();
        match open.get(&format!("/accounts/{id}")) {
            Ok(answer) => {
                if answer.status != 200 || answer.json()["name"] != name.as_str() {
                    tally.errors.push(format!("{id}: {answer:?}"));
                } else {
                    tally.ok += 1;
                    if tally.ok == WARM_UP_ANSWERS {
                        warmed_up.fetch_add(1, Ordering::AcqRel);
                    }
                }
                if answer.closes() {
                    tally.finished_by_drain += 1;
                } else {
                    connection = Some(open);
                }
            }
            Err(Failure::ClosedUnanswered(error)) => {
                if sigterm_at.get().is_some() {
                    tally.unanswered_sent_at.push(sent_at);
                } else {
                    tally
                        .errors
                        .push(format!("{id}: unanswered, no SIGTERM yet: {error}"));
                }
            }
            Err(Failure::Truncated(error)) => tally.errors.push(format!("{id}: cut off: {error}")),
        }
    }
    tally.errors.push("still running at the deadline".into());
    tally
}

/// The time stamp that starts a text log line (`2026-11-25T12:13:43.877030Z  INFO ...`).
fn log_time(line: &str) -> SystemTime {
    let parse = || -> Option<SystemTime> {
        let stamp = line.split_whitespace().next()?.strip_suffix('Z')?;
        let (date, time) = stamp.split_once('T')?;
        let mut date = date.split('-').map(|part| part.parse::<i64>().ok());
        let (year, month, day) = (date.next()??, date.next()??, date.next()??);
        let (clock, fraction) = time.split_once('.').unwrap_or((time, "0"));
        let mut clock = clock.split(':').map(|part| part.parse::<u64>().ok());
        let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
        let nanos: u64 = format!("{fraction:0<9}").get(..9)?.parse().ok()?;
        // Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm).
        let year = if month <= 2 { year - 1 } else { year };
        let era = year.div_euclid(400);
        let year_of_era = year - era * 400;
        let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        let days = u64::try_from(era * 146_097 + day_of_era - 719_468).ok()?;
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_nanos(nanos))
    };
    parse().unwrap_or_else(|| panic!("no time stamp at the start of {line:?}"))
}

/// What a SIGTERM under load did, added up over all client loops.
#[derive(Debug)]
struct LoadOutcome {
    ok: u64,
    finished_by_drain: u64,
    /// Unanswered requests written before the server logged that it stops accepting: sent
    /// before the listener closed, on connections it had accepted, and never answered.
    unanswered_sent_before_drain: u64,
    /// Unanswered requests written after that line (a client racing the close).
    unanswered_sent_after_drain: u64,
    refused_after_sigterm: u64,
    /// 200 answers to `/accounts/...` the server logged (the edge layer's DEBUG access line).
    answered_by_server: u64,
    errors: Vec<String>,
    every_loop_served: bool,
    exit_code: Option<i32>,
    exited_after: Duration,
    log: String,
    stderr: String,
}

/// Runs [`CLIENTS`] keep-alive client loops against the service until each has had
/// [`WARM_UP_ANSWERS`] answers, sends SIGTERM, and lets the loops run on until their connections
/// are refused.
fn sigterm_under_load() -> LoadOutcome {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut service = Service::start(
        dir.path(),
        &args(
            "accounts.db",
            &["--log-filter", "info,accountservice::guard=debug"],
        ),
    );
    let address = service.wait_until_listening();

    let sigterm_at = Arc::new(OnceLock::new());
    let warmed_up = Arc::new(AtomicUsize::new(0));
    let give_up = Instant::now() + Duration::from_secs(60);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (sigterm_at, warmed_up) = (sigterm_at.clone(), warmed_up.clone());
            thread::spawn(move || client_loop(client, address, &sigterm_at, &warmed_up, give_up))
        })
        .collect();
    let deadline = Instant::now() + TIMEOUT;
    while warmed_up.load(Ordering::Acquire) < CLIENTS {
        assert!(
            Instant::now() < deadline,
            "the client loops did not get {WARM_UP_ANSWERS} answers each within {TIMEOUT:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let signalled = Instant::now();
    sigterm_at.set(signalled).expect("set once");
    service.terminate();
    let status = service.wait();
    let exited_after = signalled.elapsed();

    let tallies: Vec<Tally> = clients
        .into_iter()
        .map(|client| client.join().expect("client loop"))
        .collect();
    let log = service.rest_of_log();
    let answered_by_server = log
        .iter()
        .filter(|line| {
            line.contains("finished processing request")
                && line.contains("uri=/accounts/")
                && line.contains("status=200")
        })
        .count() as u64;
    let drain_began = log
        .iter()
        .find(|line| line.contains("shutting down: no new connections"))
        .map(|line| log_time(line))
        .unwrap_or_else(|| panic!("no drain line in {log:#?}"));
    let unanswered: Vec<SystemTime> = tallies
        .iter()
        .flat_map(|t| t.unanswered_sent_at.iter().copied())
        .collect();
    let before_drain = unanswered.iter().filter(|at| **at < drain_began).count() as u64;
    let sum = |field: fn(&Tally) -> u64| tallies.iter().map(field).sum::<u64>();
    let outcome = LoadOutcome {
        ok: sum(|t| t.ok),
        finished_by_drain: sum(|t| t.finished_by_drain),
        unanswered_sent_before_drain: before_drain,
        unanswered_sent_after_drain: unanswered.len() as u64 - before_drain,
        refused_after_sigterm: sum(|t| t.refused_after_sigterm),
        answered_by_server,
        errors: tallies.iter().flat_map(|t| t.errors.clone()).collect(),
        every_loop_served: tallies.iter().all(|t| t.ok > 0),
        exit_code: status.code(),
        exited_after,
        log: log.join("\n"),
        stderr: service.stderr(),
    };
    println!(
        "{CLIENTS} clients: {} answered 200 ({} in flight when the drain began, answered with \
         Connection: close); unanswered on keep-alive connections the drain closed: {} sent \
         before it began, {} after; {} new connections refused after SIGTERM; server logged {} \
         answers; exit {:?} {:?} after SIGTERM",
        outcome.ok,
        outcome.finished_by_drain,
        outcome.unanswered_sent_before_drain,
        outcome.unanswered_sent_after_drain,
        outcome.refused_after_sigterm,
        outcome.answered_by_server,
        outcome.exit_code,
        outcome.exited_after,
    );
    outcome
}

#[test]
fn sigterm_under_load_delivers_every_answer_the_server_produced_and_exits_zero() {
    let outcome = sigterm_under_load();
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    assert!(
        outcome.every_loop_served,
        "a loop got no answer before SIGTERM"
    );
    // Every request the server handled reached its client: the drain cut no answer off, and
    // every request it did not answer it never read (so any client may safely retry it).
    assert_eq!(
        outcome.answered_by_server, outcome.ok,
        "answers logged by the server vs received by clients"
    );
    assert_eq!(outcome.exit_code, Some(0), "{}", outcome.stderr);
    assert!(outcome.log.contains("drained"), "{}", outcome.log);
    assert!(!outcome.log.contains("drain timed out"), "{}", outcome.log);
}

#[test]
fn sigterm_under_load_answers_every_request_sent_before_the_listener_closed() {
    let outcome = sigterm_under_load();
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    assert_eq!(
        outcome.unanswered_sent_before_drain, 0,
        "requests sent on open connections before the listener closed went unanswered"
    );
    assert_eq!(outcome.exit_code, Some(0), "{}", outcome.stderr);
}
