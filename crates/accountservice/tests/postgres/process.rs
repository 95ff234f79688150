//! The real binary over PostgreSQL: several replicas starting at once, and the one line it exits
//! with when the database cannot be used, never with the password in it.

use std::time::{Duration, Instant};

use crate::{
    app::{SLACK, shared},
    pg::{BlackHole, MISSING, PASSWORD, binaries_in, free_port},
    support::{self, Service, run_to_exit},
};

/// Runs the binary over `url` until it exits (it must, within `limit`); its stderr.
pub fn exit_line(url: &str, extra: &[&str], limit: Duration) -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut args = support::args("accounts.db", &["--database-url", url]);
    args.extend_from_slice(extra);
    let (status, stderr) = run_to_exit(dir.path(), &args, limit);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    assert!(!stderr.contains(PASSWORD), "the password leaked: {stderr}");
    stderr
}

#[test]
fn three_replicas_starting_at_once_migrate_once_and_seed_exactly_100_rows() {
    let server = shared();
    let db = server.create_database("three");
    let url = server.url(&db);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut replicas: Vec<Service> = dirs
        .iter()
        .map(|dir| {
            Service::start(
                dir.path(),
                &support::args("accounts.db", &["--database-url", &url]),
            )
        })
        .collect();
    let mut inserted = 0;
    for replica in &mut replicas {
        let line = replica.wait_for_line("seeded 100 fake accounts");
        let count = line
            .split("seeded 100 fake accounts (")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no inserted count in {line}"));
        inserted += count;
        replica.wait_until_listening();
    }
    assert_eq!(
        inserted, 100,
        "the replicas inserted {inserted} rows between them"
    );
    assert_eq!(server.psql(&db, "SELECT count(*) FROM accounts"), "100");
    assert_eq!(
        server.psql(
            &db,
            "SELECT string_agg(version::text, ',') FROM accountservice_schema"
        ),
        "1"
    );
    for replica in &mut replicas {
        replica.terminate();
        assert!(replica.wait().success());
    }
}

#[test]
fn a_wrong_password_exits_saying_authentication_failed() {
    let server = shared();
    let url = format!(
        "postgres://postgres:wrong-{PASSWORD}x@127.0.0.1:{}/postgres",
        server.port()
    );
    let line = exit_line(&url, &[], Duration::from_secs(30));
    assert!(line.contains("authentication failed"), "{line}");
    assert!(
        line.contains("postgres://postgres:***@127.0.0.1:"),
        "{line}"
    );
    assert!(!line.contains("wrong-"), "{line}");
}

#[test]
fn an_unknown_database_exits_saying_so() {
    let server = shared();
    let line = exit_line(&server.url("no_such_db"), &[], Duration::from_secs(30));
    assert!(line.contains("unknown database"), "{line}");
}

#[test]
fn a_port_nobody_listens_on_exits_saying_connection_refused() {
    let url = format!(
        "postgres://app:{PASSWORD}@127.0.0.1:{}/accounts",
        free_port()
    );
    let line = exit_line(&url, &[], Duration::from_secs(30));
    assert!(line.contains("connection refused"), "{line}");
}

#[test]
fn a_server_that_accepts_and_never_answers_exits_within_the_connect_timeout() {
    let hole = BlackHole::new();
    let url = format!(
        "postgres://app:{PASSWORD}@127.0.0.1:{}/accounts",
        hole.port()
    );
    let started = Instant::now();
    let line = exit_line(
        &url,
        &["--database-connect-timeout", "1"],
        Duration::from_secs(30),
    );
    assert!(line.contains("timed out after 1 s"), "{line}");
    assert!(
        started.elapsed() < Duration::from_secs(10) + SLACK,
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_unreachable_host_exits_within_the_connect_timeout() {
    // TEST-NET-1 (RFC 5737): routed nowhere, so the connect fails at once (refused or
    // unreachable, as a firewall or the routing table decides) or hangs until the timeout.
    let url = format!("postgres://app:{PASSWORD}@192.0.2.1:5432/accounts");
    let started = Instant::now();
    let line = exit_line(
        &url,
        &["--database-connect-timeout", "1"],
        Duration::from_secs(30),
    );
    assert!(
        ["timed out after 1 s", "unreachable", "connection refused"]
            .iter()
            .any(|cause| line.contains(cause)),
        "{line}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10) + SLACK,
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_schema_newer_than_the_binary_is_refused_naming_both_versions() {
    let server = shared();
    let db = server.create_database("newer");
    server.psql(
        &db,
        "CREATE TABLE accountservice_schema (version integer PRIMARY KEY, \
         description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()); \
         INSERT INTO accountservice_schema (version, description) VALUES (1, 'a'), (7, 'b')",
    );
    let line = exit_line(&server.url(&db), &[], Duration::from_secs(30));
    assert!(
        line.contains("schema is version 7, newer than this binary's version 1"),
        "{line}"
    );
}

#[test]
fn a_bad_url_is_refused_without_repeating_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgres://app:{PASSWORD}@db/accounts?sslmode=bogus");
    let (status, stderr) = run_to_exit(
        dir.path(),
        &["--database-url", &url],
        Duration::from_secs(30),
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--database-url"), "{stderr}");
    assert!(stderr.contains("sslmode"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
}

#[test]
fn help_never_shows_the_url_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let output = support::command(dir.path(), &["--help"])
        .env(
            "ACCOUNTSERVICE_DATABASE_URL",
            format!("postgres://app:{PASSWORD}@db/accounts"),
        )
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("--database-url"), "{help}");
    assert!(!help.contains(PASSWORD), "{help}");
}

#[test]
fn the_url_and_password_can_come_from_secret_files() {
    let server = shared();
    let db = server.create_database("files");
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("url");
    let password_file = dir.path().join("password");
    std::fs::write(
        &url_file,
        format!("postgres://postgres@127.0.0.1:{}/{db}\n", server.port()),
    )
    .unwrap();
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let mut command = support::command(dir.path(), &support::args("accounts.db", &[]));
    command
        .env("ACCOUNTSERVICE_DATABASE_URL_FILE", &url_file)
        .env("ACCOUNTSERVICE_DATABASE_PASSWORD_FILE", &password_file);
    let mut service = Service::from_command(command);
    let address = service.wait_until_listening();
    let answer = support::get(address, "/accounts/10007");
    assert_eq!(answer.status, 200, "{answer:?}");
    for line in service.drain_log() {
        assert!(
            !line.contains(PASSWORD),
            "the log shows the password: {line}"
        );
    }
    service.terminate();
    assert!(service.wait().success());
}

#[test]
fn without_the_server_binaries_the_tests_fail_with_one_line_saying_how_to_install_them() {
    let root = tempfile::tempdir().unwrap();
    assert_eq!(binaries_in(root.path()), Err(MISSING));
    assert_eq!(MISSING.lines().count(), 1, "{MISSING}");
    assert!(
        MISSING.contains("apt-get install -y postgresql"),
        "{MISSING}"
    );
    // The client package alone (psql, no initdb) is no server to start.
    let client_only = root.path().join("15/bin");
    std::fs::create_dir_all(&client_only).unwrap();
    std::fs::write(client_only.join("psql"), "").unwrap();
    assert_eq!(binaries_in(root.path()), Err(MISSING));
    // With several servers, the newest major version, compared as a number.
    for version in ["9", "15", "16"] {
        let bin = root.path().join(version).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("initdb"), "").unwrap();
    }
    assert_eq!(binaries_in(root.path()), Ok(root.path().join("16/bin")));
}

#[test]
fn the_next_host_is_tried_when_the_first_accepts_and_never_answers() {
    let server = shared();
    let db = server.create_database("failover");
    let hole = BlackHole::new();
    // As libpq does, `connect_timeout` bounds each host's attempt, the handshake included.
    let url = format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{},127.0.0.1:{}/{db}?connect_timeout=1",
        hole.port(),
        server.port()
    );
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut service = Service::start(
        dir.path(),
        &support::args("accounts.db", &["--database-url", &url]),
    );
    let address = service.wait_until_listening();
    let answer = support::get(address, "/accounts/10007");
    assert_eq!(answer.status, 200, "{answer:?}");
    let took = started.elapsed();
    println!("served through the second host {took:?} after the start");
    assert!(took < Duration::from_secs(1) + SLACK, "{took:?}");
    service.terminate();
    assert!(service.wait().success());
}
