//! The command line and environment, as Docker's HEALTHCHECK will use them.

use crate::support::{Server, healthchecker, healthchecker_env};

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

#[test]
fn the_seeds_dash_port_equals_form_works() {
    let server = Server::answering(OK);
    let port = format!("-port={}", server.port());
    healthchecker(&[&port])
        .assert_code(0)
        .assert_line_starts_with("healthy: 200 OK");
    assert!(server.request().starts_with("GET /health HTTP/1.1\r\n"));
}

#[test]
fn every_spelling_of_port_works() {
    for spelling in [&["-port"][..], &["--port"], &["-port="], &["--port="]] {
        let server = Server::answering(OK);
        let args: Vec<String> = match spelling {
            [flag] if flag.ends_with('=') => vec![format!("{flag}{}", server.port())],
            [flag] => vec![flag.to_string(), server.port()],
            _ => unreachable!(),
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        healthchecker(&args).assert_code(0);
    }
}

#[test]
fn a_url_sets_host_port_and_path() {
    let server = Server::answering(OK);
    let url = format!("http://127.0.0.1:{}/ready?deep=1", server.port());
    healthchecker(&["--url", &url]).assert_code(0);
    let request = server.request();
    assert!(
        request.starts_with("GET /ready?deep=1 HTTP/1.1\r\n"),
        "{request:?}"
    );
    assert!(request.contains(&format!("Host: 127.0.0.1:{}\r\n", server.port())));
}

#[test]
fn path_and_host_flags_are_used() {
    let server = Server::answering(OK);
    healthchecker(&["-host=127.0.0.1", "-path", "/live", "-port", &server.port()]).assert_code(0);
    assert!(server.request().starts_with("GET /live HTTP/1.1\r\n"));
}

#[test]
fn environment_variables_stand_in_for_missing_flags() {
    let server = Server::answering(OK);
    let port = server.port();
    let run = healthchecker_env(
        &[],
        &[
            ("HEALTHCHECK_PORT", &port),
            ("HEALTHCHECK_PATH", "/from-env"),
        ],
    );
    run.assert_code(0);
    assert!(server.request().starts_with("GET /from-env HTTP/1.1\r\n"));
}

#[test]
fn the_timeout_variable_bounds_the_probe() {
    let server = Server::start(crate::support::hang);
    let run = healthchecker_env(
        &[],
        &[
            ("HEALTHCHECK_PORT", &server.port()),
            ("HEALTHCHECK_TIMEOUT", "300ms"),
        ],
    );
    run.assert_code(1)
        .assert_line_starts_with("unhealthy: no response within 300ms");
}

#[test]
fn flags_win_over_environment_variables() {
    let server = Server::answering(OK);
    let run = healthchecker_env(
        &["--port", &server.port(), "--path", "/flag"],
        &[("HEALTHCHECK_PORT", "1"), ("HEALTHCHECK_PATH", "/env")],
    );
    run.assert_code(0);
    assert!(server.request().starts_with("GET /flag HTTP/1.1\r\n"));
}

#[test]
fn quiet_silences_only_the_healthy_line() {
    let server = Server::answering(OK);
    let run = healthchecker(&["-q", "--port", &server.port()]);
    run.assert_code(0);
    assert_eq!(run.stdout, "");

    let port = crate::support::closed_port().to_string();
    healthchecker(&["--quiet", "--port", &port])
        .assert_code(1)
        .assert_line_starts_with("unhealthy: connection refused");
}

#[test]
fn bad_flags_exit_1_with_one_line_on_stderr_and_nothing_on_stdout() {
    let cases: [&[&str]; 9] = [
        &["--bogus"],
        &["-port=http"],
        &["--port"],
        &["--port", "70000"],
        &["--timeout", "2"],
        &["--host", "example.com"],
        &["--url", "https://127.0.0.1/health"],
        &["--url", "http://127.0.0.1/", "--port", "1"],
        &["stray"],
    ];
    for args in cases {
        let run = healthchecker(args);
        run.assert_code(1);
        assert_eq!(run.stdout, "", "{args:?}");
        assert!(
            run.stderr.starts_with("healthchecker: "),
            "{args:?}: {run:?}"
        );
        assert!(run.stderr.ends_with(" (see --help)\n"), "{args:?}: {run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {run:?}");
    }
}

#[test]
fn a_bad_environment_variable_is_a_usage_error_naming_it() {
    let run = healthchecker_env(&[], &[("HEALTHCHECK_TIMEOUT", "soon")]);
    run.assert_code(1);
    assert!(run.stderr.contains("HEALTHCHECK_TIMEOUT"), "{run:?}");
}

#[test]
fn help_exits_0_and_documents_the_interface() {
    let run = healthchecker(&["--help"]);
    run.assert_code(0);
    for needle in [
        "-port=6767",
        "--url",
        "HEALTHCHECK_PORT",
        "Exit status",
        "default: 6767",
    ] {
        assert!(run.stdout.contains(needle), "{needle:?} missing from help");
    }
    assert_eq!(healthchecker(&["-help"]).stdout, run.stdout);
}

#[test]
fn version_exits_0_and_prints_the_version() {
    let run = healthchecker(&["--version"]);
    run.assert_code(0);
    assert_eq!(
        run.stdout,
        format!("healthchecker {}\n", env!("CARGO_PKG_VERSION"))
    );
}
