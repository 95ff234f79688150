//! Process tests: the real `accountservice` binary, its signals, exit codes and messages.

mod support;

use std::{
    net::SocketAddr,
    path::Path,
    process::ExitStatus,
    time::{Duration, Instant},
};

use support::{Connection, Failure, Service, TIMEOUT, args, command};

/// Runs the binary to completion (bounded) and returns its status, stderr and run time.
fn run_to_exit(dir: &Path, args: &[&str]) -> (ExitStatus, String, Duration) {
    let started = Instant::now();
    let (status, stderr) = support::run_to_exit(dir, args, TIMEOUT);
    (status, stderr, started.elapsed())
}

async fn get(address: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(TIMEOUT)
        .build()
        .expect("client");
    let response = client
        .get(format!("http://{address}{path}"))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

#[tokio::test]
async fn the_service_answers_then_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(dir.path(), &args("accounts.db", &[]));
    service.wait_for_line("starting accountservice");
    let seeded = service.wait_for_line("seeded 100 fake accounts");
    assert!(
        seeded.contains("100 inserted, 0 already present"),
        "{seeded}"
    );
    let address = service.wait_until_listening();
    assert_ne!(address.port(), 0);

    let (status, body) = get(address, "/accounts/10042").await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "Person_42");

    service.terminate();
    let status = service.wait();
    assert_eq!(status.code(), Some(0), "{:#?}", service.rest_of_log());
    let log = service.rest_of_log().join("\n");
    assert!(log.contains("received SIGTERM"), "{log}");
    assert!(log.contains("database closed"), "{log}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(dir.path(), &args("accounts.db", &["--log-format", "json"]));
    let line = service.wait_for_line("listening on");
    let json: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(json["level"], "INFO");
    assert!(json["address"].as_str().unwrap().starts_with("127.0.0.1:"));
    service.terminate();
    assert_eq!(service.wait().code(), Some(0));
}

#[tokio::test]
async fn a_restart_keeps_the_data_and_inserts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Service::start(dir.path(), &args("accounts.db", &[]));
    first.wait_until_listening();
    first.terminate();
    assert_eq!(first.wait().code(), Some(0));

    let mut second = Service::start(dir.path(), &args("accounts.db", &[]));
    let seeded = second.wait_for_line("seeded 100 fake accounts");
    assert!(
        seeded.contains("0 inserted, 100 already present"),
        "{seeded}"
    );
    let address = second.wait_until_listening();
    let (status, body) = get(address, "/accounts/10099").await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "Person_99");
    second.terminate();
    assert_eq!(second.wait().code(), Some(0));
}

#[test]
fn a_second_instance_on_the_same_file_fails_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Service::start(dir.path(), &args("accounts.db", &[]));
    first.wait_until_listening();

    let (status, stderr, took) = run_to_exit(dir.path(), &args("accounts.db", &[]));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("accountservice: error: database file"),
        "{stderr}"
    );
    assert!(stderr.contains("in use by another process"), "{stderr}");
    // The default lock wait is 2 s.
    assert!(took < Duration::from_secs(6), "took {took:?}");
}

#[test]
fn a_corrupt_file_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let contents = b"this is not a database\n".repeat(1000);
    std::fs::write(dir.path().join("accounts.db"), &contents).unwrap();

    let (status, stderr, _) = run_to_exit(dir.path(), &args("accounts.db", &[]));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not a redb database"), "{stderr}");
    assert!(stderr.contains("left untouched"), "{stderr}");
    assert_eq!(
        std::fs::read(dir.path().join("accounts.db")).unwrap(),
        contents
    );
}

#[test]
fn an_unwritable_location_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plain-file"), b"x").unwrap();
    let (status, stderr, _) = run_to_exit(dir.path(), &args("plain-file/accounts.db", &[]));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot open database file plain-file/accounts.db: "),
        "{stderr}"
    );
}

#[test]
fn a_port_that_cannot_be_bound_exits_non_zero() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut arguments = args("accounts.db", &[]);
    arguments[3] = &port;
    let (status, stderr, _) = run_to_exit(dir.path(), &arguments);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}: ")),
        "{stderr}"
    );
}

#[test]
fn a_management_port_in_use_or_equal_to_the_port_exits_one_with_one_line_before_serving() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let in_use = args("accounts.db", &["--management-port", &port]);
    let mut same = args("accounts.db", &["--management-port", &port]);
    same[3] = &port;
    for (arguments, expected) in [
        (in_use, format!("cannot listen on 127.0.0.1:{port}: ")),
        (
            same,
            format!("the management port must differ from the public port ({port})"),
        ),
    ] {
        let (status, stderr, _) = run_to_exit(dir.path(), &arguments);
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&expected), "{stderr}");
        assert!(
            !dir.path().join("accounts.db").exists(),
            "the database was opened"
        );
    }
}

#[test]
fn invalid_arguments_exit_two_with_usage() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stderr, _) = run_to_exit(dir.path(), &["--port", "eighty"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--port"), "{stderr}");
}

#[test]
fn help_documents_every_setting_and_its_environment_variable() {
    let output = command(Path::new("."), &["--help"]).output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for name in [
        "--port",
        "ACCOUNTSERVICE_PORT",
        "--bind",
        "ACCOUNTSERVICE_BIND",
        "--db-path",
        "ACCOUNTSERVICE_DB_PATH",
        "--seed-accounts",
        "ACCOUNTSERVICE_SEED_ACCOUNTS",
        "--log-format",
        "ACCOUNTSERVICE_LOG_FORMAT",
        "--shutdown-timeout",
        "--db-lock-timeout",
        "--health-details",
        "ACCOUNTSERVICE_HEALTH_DETAILS",
        "--health-interval",
        "--health-timeout",
        "--pre-stop-delay",
        "--testability",
        "ACCOUNTSERVICE_TESTABILITY",
        "--close-grace",
        "ACCOUNTSERVICE_CLOSE_GRACE",
        "--release",
        "ACCOUNTSERVICE_RELEASE",
        "--slot",
        "ACCOUNTSERVICE_SLOT",
        "Exit status:",
    ] {
        assert!(help.contains(name), "--help lacks {name}:\n{help}");
    }
}

#[test]
fn settings_are_read_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("env.db"), b"not a database").unwrap();
    let mut command = command(dir.path(), &[]);
    command.env("ACCOUNTSERVICE_DB_PATH", "env.db");
    command.env("ACCOUNTSERVICE_PORT", "0");
    let output = command.output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("env.db is not a redb database"), "{stderr}");
}

#[tokio::test]
async fn a_release_label_from_the_environment_is_in_the_version_and_a_bad_one_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let labelled = format!("{}+3f2a9c1", env!("CARGO_PKG_VERSION"));
    let mut labelled_run = command(dir.path(), &args("accounts.db", &[]));
    labelled_run.env("ACCOUNTSERVICE_RELEASE", "3f2a9c1");
    let mut service = Service::from_command(labelled_run);
    let starting = service.wait_for_line("starting accountservice");
    assert!(starting.contains(&labelled), "{starting}");
    let address = service.wait_until_listening();
    let (status, history) = get(address, "/health/history").await;
    assert_eq!((status, &history["version"]), (200, &labelled.into()));
    service.terminate();
    assert_eq!(service.wait().code(), Some(0));

    for (label, says) in [
        ("v 2", "contains ' '"),
        ("tag_1", "contains '_'"),
        ("v2\tx", "contains '\\t'"),
        ("", "is empty"),
    ] {
        let mut refused = command(dir.path(), &args("other.db", &[]));
        refused.env("ACCOUNTSERVICE_RELEASE", label);
        let mut service = Service::from_command(refused);
        let status = service.wait();
        let stderr = service.stderr();
        assert_eq!(status.code(), Some(2), "{label:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{label:?}: {stderr}");
        assert!(stderr.contains("--release"), "{stderr}");
        assert!(stderr.contains(says), "{label:?}: {stderr}");
        assert!(
            !dir.path().join("other.db").exists(),
            "nothing may start before the arguments are checked"
        );
    }
}

#[tokio::test]
async fn testability_is_switched_on_by_its_environment_variable_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = command(dir.path(), &args("accounts.db", &[]));
    command.env("ACCOUNTSERVICE_TESTABILITY", "true");
    let mut service = Service::from_command(command);
    service.wait_for_line("testability routes are ON");
    let address = service.wait_until_listening();
    let (status, body) = get(address, "/testability/healthy/false").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(address, "/health").await;
    assert_eq!(status, 503);
    assert_eq!(body["reason"], "testability: forced unhealthy");
    service.terminate();
    assert_eq!(service.wait().code(), Some(3));
}

#[tokio::test]
async fn a_stop_while_unhealthy_drains_then_exits_three_with_one_line_naming_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(dir.path(), &args("accounts.db", &["--testability"]));
    let address = service.wait_until_listening();
    let (status, _) = get(address, "/testability/database/down").await;
    assert_eq!(status, 200);
    let (status, body) = get(address, "/health").await;
    assert_eq!(
        (status, &body["reason"]),
        (503, &"database: read failed".into())
    );

    service.terminate();
    let status = service.wait();
    let stderr = service.stderr();
    let log = service.rest_of_log().join("\n");
    assert_eq!(status.code(), Some(3), "{stderr}\n{log}");
    assert_eq!(
        stderr,
        "accountservice: stopped while unhealthy: database: read failed\n"
    );
    // Drained and closed as on any stop, then the reason in the log too.
    assert!(log.contains("drained"), "{log}");
    assert!(log.contains("database closed"), "{log}");
    let line = log
        .lines()
        .find(|line| line.contains("stopped while unhealthy"))
        .unwrap_or_else(|| panic!("no reason in the log: {log}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("database: read failed"), "{line}");
}

#[tokio::test]
async fn by_default_testability_is_off_and_its_routes_are_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(dir.path(), &args("accounts.db", &[]));
    let address = service.wait_until_listening();
    let (status, _) = get(address, "/testability/healthy/false").await;
    assert_eq!(status, 404);
    let (status, body) = get(address, "/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "UP");
    service.terminate();
    let status = service.wait();
    assert_eq!(status.code(), Some(0));
    let log = service.rest_of_log().join("\n");
    assert!(!log.contains("testability routes are ON"), "{log}");
}

#[test]
fn a_malformed_peers_list_exits_2_at_once_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (peers, says) in [
        ("tasks.accountservice", "has no port"),
        ("10.0.0.1:6767,,10.0.0.2:6767", "an empty peer address"),
        ("host:99999", "is not a port number"),
    ] {
        let (status, stderr, took) =
            run_to_exit(dir.path(), &args("accounts.db", &["--peers", peers]));
        assert_eq!(status.code(), Some(2), "{peers}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{peers}: {stderr}");
        assert!(stderr.contains("--peers"), "{stderr}");
        assert!(stderr.contains(says), "{peers}: {stderr}");
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert!(
            !dir.path().join("accounts.db").exists(),
            "nothing may start before the arguments are checked"
        );
    }
}

/// The management listener's address, from its start-up line.
fn management_address(service: &mut Service) -> SocketAddr {
    let line = service.wait_for_line("management endpoints");
    line.split("on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|address| address.parse().ok())
        .unwrap_or_else(|| panic!("no management address in {line}"))
}

#[test]
fn a_stop_with_an_idle_keep_alive_connection_on_each_port_answers_draining_then_closes_both() {
    let dir = tempfile::tempdir().unwrap();
    // A grace long enough that the drain is still on when the polling below begins.
    let mut service = Service::start(
        dir.path(),
        &args(
            "accounts.db",
            &["--management-port", "0", "--close-grace", "3"],
        ),
    );
    let management = management_address(&mut service);
    let public = service.wait_until_listening();
    let mut public_idle = Connection::open(public).unwrap();
    assert_eq!(public_idle.get("/health").unwrap().status, 200);
    let mut management_idle = Connection::open(management).unwrap();
    assert_eq!(management_idle.get("/health/live").unwrap().status, 200);

    let signalled = Instant::now();
    service.terminate();
    // The public listener waits out its grace for its idle connection; meanwhile the
    // management port still answers, and says the instance is draining.
    let (answer, _) = support::poll_until(management, "/health/ready", TIMEOUT, |answer| {
        answer.status == 503
    });
    assert!(answer.body.contains("draining"), "{answer:?}");
    // Then the server closes both idle connections, having sent nothing more on them.
    for (port, idle) in [
        ("public", &mut public_idle),
        ("management", &mut management_idle),
    ] {
        match idle.read_answer() {
            Err(Failure::ClosedUnanswered(_)) => {}
            other => panic!("the idle {port} connection: {other:?}"),
        }
    }
    let status = service.wait();
    println!(
        "idle keep-alive connection on each port, --close-grace 3: exit {:?} {:?} after SIGTERM",
        status.code(),
        signalled.elapsed()
    );
    assert_eq!(status.code(), Some(0), "{}", service.stderr());
    let log = service.rest_of_log().join("\n");
    assert!(log.contains("drained"), "{log}");
    assert!(log.contains("management listener stopped"), "{log}");
    assert!(
        !log.contains("management connections closed after the grace"),
        "{log}"
    );
}

#[tokio::test]
async fn the_startup_probe_shows_seeding_progress_on_the_management_port_then_passes_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(
        dir.path(),
        &args(
            "accounts.db",
            &["--management-port", "0", "--seed-accounts", "200000"],
        ),
    );
    let management = management_address(&mut service);

    // Poll (bounded) until start-up completes, keeping every answer seen on the way.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        let (status, body) = get(management, "/health/started").await;
        seen.push((status, body.clone()));
        if status == 200 {
            assert_eq!(body, serde_json::json!({"status": "UP"}));
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["status"], "OUT_OF_SERVICE");
        assert!(
            Instant::now() < deadline,
            "start-up never completed: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen.iter().any(|(_, body)| body["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("seeding, ") && r.ends_with(" of 200000 accounts)"))),
        "no seeding progress seen: {seen:?}"
    );
    // Never back to 503, also after the public port listens.
    service.wait_until_listening();
    for path in ["/startupz", "/health/started"] {
        assert_eq!(get(management, path).await.0, 200, "{path}");
    }
    service.terminate();
    assert_eq!(service.wait().code(), Some(0));
}

#[tokio::test]
async fn an_empty_or_off_management_port_variable_means_one_port_and_a_bad_one_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    for value in ["", "off"] {
        let mut one_port = command(dir.path(), &args("accounts.db", &[]));
        one_port.env("ACCOUNTSERVICE_MANAGEMENT_PORT", value);
        let mut service = Service::from_command(one_port);
        let address = service.wait_until_listening();
        // Every operator route is back on the one port.
        let (status, body) = get(address, "/health/ready").await;
        assert_eq!((status, &body["status"]), (200, &"UP".into()), "{value:?}");
        service.terminate();
        assert_eq!(service.wait().code(), Some(0), "{value:?}");
        let log = service.rest_of_log().join("\n");
        assert!(!log.contains("management endpoints"), "{value:?}: {log}");
    }

    for value in ["6768x", "65536", "none"] {
        let mut refused = command(dir.path(), &args("other.db", &[]));
        refused.env("ACCOUNTSERVICE_MANAGEMENT_PORT", value);
        let mut service = Service::from_command(refused);
        let status = service.wait();
        let stderr = service.stderr();
        assert_eq!(status.code(), Some(2), "{value:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{value:?}: {stderr}");
        assert!(stderr.contains("--management-port"), "{stderr}");
        assert!(stderr.contains("`off`"), "{value:?}: {stderr}");
        assert!(
            !dir.path().join("other.db").exists(),
            "nothing may start before the arguments are checked"
        );
    }
}

#[tokio::test]
async fn a_stop_while_a_store_call_never_returns_exits_three_inside_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let grace = Duration::from_secs(4);
    let mut service = Service::start(
        dir.path(),
        &args("accounts.db", &["--testability", "--stop-grace", "4"]),
    );
    let address = service.wait_until_listening();
    // Every store call now blocks for good: the database check's read holds a thread of the
    // blocking pool (and the store) forever, and the check times out.
    let (status, body) = get(address, "/testability/database/hang").await;
    assert_eq!((status, &body["database"]), (200, &"hang".into()));
    let (status, body) = get(address, "/health").await;
    assert_eq!(status, 503, "{body}");
    // "timed out after 1s", then "read still blocked" while that read has not returned.
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        ["database: timed out", "database: read still blocked"]
            .iter()
            .any(|expected| reason.starts_with(expected)),
        "{body}"
    );

    let signalled = Instant::now();
    service.terminate();
    let status = service.wait();
    let took = signalled.elapsed();
    let stderr = service.stderr();
    let log = service.rest_of_log().join("\n");
    println!(
        "a stop with a store call that never returns, --stop-grace 4: exit {status:?} after {took:?}"
    );
    assert_eq!(status.code(), Some(3), "{stderr}\n{log}");
    assert!(
        took < grace,
        "took {took:?}, more than the grace {grace:?}\n{log}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("accountservice: stopped while unhealthy: database: "),
        "{stderr}"
    );
    assert!(log.contains("the database is still in use"), "{log}");
}

#[test]
fn a_second_sigterm_ends_the_drain_at_once_and_the_exit_code_still_tells_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    // An idle keep-alive connection holds the drain for the whole close grace.
    let mut service = Service::start(
        dir.path(),
        &args(
            "accounts.db",
            &[
                "--stop-grace",
                "60",
                "--shutdown-timeout",
                "50",
                "--close-grace",
                "45",
            ],
        ),
    );
    let address = service.wait_until_listening();
    let mut idle = Connection::open(address).unwrap();
    assert_eq!(idle.get("/health").unwrap().status, 200);

    service.terminate();
    service.wait_for_line("draining in-flight requests");
    let again = Instant::now();
    service.terminate();
    let status = service.wait();
    let took = again.elapsed();
    let log = service.rest_of_log().join("\n");
    println!("a second SIGTERM during a 45 s close grace: exit {status:?} after {took:?}");
    assert_eq!(status.code(), Some(0), "{}\n{log}", service.stderr());
    assert!(took < Duration::from_secs(5), "took {took:?}\n{log}");
    assert!(log.contains("received SIGTERM again"), "{log}");
    assert!(log.contains("drain cut short"), "{log}");
    match idle.read_answer() {
        Err(Failure::ClosedUnanswered(_)) => {}
        other => panic!("the idle connection: {other:?}"),
    }
}

#[test]
fn settings_whose_stop_cannot_fit_the_grace_or_out_of_range_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, says) in [
        (
            &["--shutdown-timeout", "8"][..],
            "more than --stop-grace 10s",
        ),
        (&["--pre-stop-delay", "9"], "leaves no time to drain"),
        (
            &[
                "--stop-grace",
                "30",
                "--shutdown-timeout",
                "5",
                "--close-grace",
                "6",
            ],
            "is longer than the drain",
        ),
        (&["--health-interval", "7e18"], "--health-interval"),
        (&["--close-grace", "1e19"], "--close-grace"),
        (&["--stop-grace", "NaN"], "--stop-grace"),
        (
            &["--max-concurrent-requests", "18446744073709551616"],
            "--max-concurrent-requests",
        ),
        (
            &["--memory-limit", "64m", "--max-connections", "10000"],
            "does not fit the memory limit",
        ),
    ] {
        let (status, stderr, took) = run_to_exit(dir.path(), &args("accounts.db", extra));
        assert_eq!(status.code(), Some(2), "{extra:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{extra:?}: {stderr}");
        assert!(stderr.starts_with("accountservice: "), "{stderr}");
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert!(
            !dir.path().join("accounts.db").exists(),
            "nothing may start before the settings are checked"
        );
    }
}

#[test]
fn a_store_outage_under_load_logs_its_error_once_then_how_many_were_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(dir.path(), &args("accounts.db", &["--testability"]));
    let address = service.wait_until_listening();
    assert_eq!(
        support::get(address, "/testability/database/down").status,
        200
    );
    let mut client = Connection::open(address).unwrap();
    let failures = 2000;
    for _ in 0..failures {
        assert_eq!(client.get("/accounts/10000").unwrap().status, 503);
    }
    // Past the 10 s window the next failure comes after the count of those left out (polled,
    // bounded).
    let started = Instant::now();
    let summary = loop {
        assert_eq!(client.get("/accounts/10000").unwrap().status, 503);
        if let Some(line) = service
            .drain_log()
            .iter()
            .find(|line| line.contains("more like"))
        {
            break line.clone();
        }
        assert!(started.elapsed() < TIMEOUT, "no summary line");
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = service.drain_log().to_vec();
    let errors: Vec<&String> = log
        .iter()
        .filter(|line| line.contains("account store failed"))
        .collect();
    println!(
        "{failures} failed lookups and more: {} lines, then {summary}",
        errors.len()
    );
    assert!(summary.contains("WARN"), "{summary}");
    // The first in full, the summary, the first of the next window.
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].contains("ERROR") && errors[0].contains("fault injected"),
        "{}",
        errors[0]
    );
    assert!(errors[1].contains("more like"), "{}", errors[1]);
    let left_out: u64 = errors[1]
        .split("... ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .map(|count| count.replace(',', ""))
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no count in {}", errors[1]));
    assert!(left_out >= failures - 1, "{}", errors[1]);
    service.terminate();
    assert_eq!(service.wait().code(), Some(3));
}
