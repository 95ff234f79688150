//! The probe against peers that answer well, badly, slowly or not at all.

use std::io::Write;
use std::thread;
use std::time::Duration;

use crate::support::{Server, closed_port, endless, hang, healthchecker};

/// Slack allowed past the probe's own timeout for process start and exit on a busy machine.
const MARGIN: Duration = Duration::from_millis(1500);

#[test]
fn a_200_is_healthy_and_says_so_with_the_time_taken() {
    let server =
        Server::answering("HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"status\":\"UP\"}");
    let run = healthchecker(&["--port", &server.port()]);
    run.assert_code(0)
        .assert_line_starts_with("healthy: 200 OK in ");
    assert!(run.stdout.trim_end().ends_with(" ms"), "{run:?}");
    assert!(run.stderr.is_empty(), "{run:?}");
}

#[test]
fn the_request_is_a_get_with_host_connection_close_and_user_agent() {
    let server = Server::answering("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    healthchecker(&["--port", &server.port()]).assert_code(0);
    let request = server.request();
    let mut lines = request.split("\r\n");
    assert_eq!(lines.next(), Some("GET /health HTTP/1.1"));
    let headers: Vec<&str> = lines.filter(|line| !line.is_empty()).collect();
    let host = format!("Host: 127.0.0.1:{}", server.port());
    let agent = format!("User-Agent: healthchecker/{}", env!("CARGO_PKG_VERSION"));
    for expected in [host.as_str(), "Connection: close", agent.as_str()] {
        assert!(
            headers.contains(&expected),
            "{expected:?} missing from {request:?}"
        );
    }
}

#[test]
fn a_503_is_unhealthy_and_quotes_the_body() {
    let server = Server::answering(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 18\r\n\r\n{\"status\":\"DOWN\"}\n",
    );
    let run = healthchecker(&["-port", &server.port()]);
    run.assert_code(1);
    assert_eq!(
        run.stdout,
        "unhealthy: 503 Service Unavailable: {\"status\":\"DOWN\"}\n"
    );
}

#[test]
fn a_chunked_error_body_is_decoded_before_quoting() {
    let server = Server::answering(
        "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ndisk \r\n4\r\nfull\r\n0\r\n\r\n",
    );
    let run = healthchecker(&["--port", &server.port()]);
    run.assert_code(1);
    assert_eq!(
        run.stdout,
        "unhealthy: 500 Internal Server Error: disk full\n"
    );
}

#[test]
fn a_long_error_body_with_control_characters_is_cut_and_escaped_on_one_line() {
    let server = Server::start(|stream| {
        let body = format!("line one\r\nline two\x1b[31m{}", "x".repeat(5000));
        let head = format!(
            "HTTP/1.1 500 Oops\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body.as_bytes());
    });
    let run = healthchecker(&["--port", &server.port()]);
    run.assert_code(1)
        .assert_line_starts_with(r"unhealthy: 500 Oops: line one\r\nline two\x1b[31mxxx");
    assert!(run.stdout.ends_with("...\n"), "{run:?}");
    assert!(run.stdout.len() < 700, "{} bytes", run.stdout.len());
}

#[test]
fn an_endless_error_body_is_cut_without_waiting_for_the_timeout() {
    let server =
        Server::start(|stream| endless(stream, b"HTTP/1.1 503 Busy\r\n\r\n", &[b'z'; 4096]));
    let run = healthchecker(&["--port", &server.port(), "--timeout", "5s"]);
    run.assert_code(1)
        .assert_line_starts_with("unhealthy: 503 Busy: zzz");
    assert!(run.elapsed < Duration::from_secs(4), "{run:?}");
}

#[test]
fn a_refused_connection_is_unhealthy_and_names_the_address() {
    let port = closed_port();
    let run = healthchecker(&["--port", &port.to_string()]);
    run.assert_code(1);
    assert_eq!(
        run.stdout,
        format!("unhealthy: connection refused (127.0.0.1:{port})\n")
    );
}

#[test]
fn a_peer_that_accepts_and_never_answers_fails_within_the_timeout() {
    let server = Server::start(hang);
    let run = healthchecker(&["--port", &server.port(), "--timeout", "500ms"]);
    run.assert_code(1);
    assert_eq!(
        run.stdout,
        format!("unhealthy: no response within 500ms ({})\n", server.addr)
    );
    assert!(run.elapsed >= Duration::from_millis(500), "{run:?}");
    assert!(run.elapsed < Duration::from_millis(500) + MARGIN, "{run:?}");
}

#[test]
fn a_peer_trickling_one_byte_at_a_time_cannot_stretch_the_timeout() {
    let server = Server::start(|stream| {
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: "
            .iter()
            .chain([b'a'; 1000].iter())
            .take(200)
        {
            if stream.write_all(&[*byte]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
    });
    let run = healthchecker(&["--port", &server.port(), "--timeout", "500ms"]);
    run.assert_code(1)
        .assert_line_starts_with("unhealthy: incomplete response within 500ms (");
    assert!(run.elapsed < Duration::from_millis(500) + MARGIN, "{run:?}");
}

#[test]
fn garbage_instead_of_http_is_unhealthy() {
    let server = Server::answering("SSH-2.0-OpenSSH_9.6\r\n\r\n");
    let run = healthchecker(&["--port", &server.port()]);
    run.assert_code(1).assert_line_starts_with(&format!(
        "unhealthy: invalid HTTP response from {}: ",
        server.addr
    ));
}

#[test]
fn oversized_headers_are_unhealthy_without_reading_them_all() {
    let server =
        Server::start(|stream| endless(stream, b"HTTP/1.1 200 OK\r\nX-Big: ", &[b'a'; 1024]));
    let run = healthchecker(&["--port", &server.port()]);
    run.assert_code(1);
    assert_eq!(
        run.stdout,
        format!(
            "unhealthy: response headers exceed 16384 bytes ({})\n",
            server.addr
        )
    );
}

#[test]
fn too_many_headers_are_unhealthy() {
    let server = Server::start(|stream| {
        let headers = "X-A: b\r\n".repeat(100);
        let _ = stream.write_all(format!("HTTP/1.1 200 OK\r\n{headers}\r\n").as_bytes());
    });
    let run = healthchecker(&["--port", &server.port()]);
    run.assert_code(1)
        .assert_line_starts_with("unhealthy: invalid HTTP response from ");
    assert!(run.stdout.contains("too many headers"), "{run:?}");
}

/// Decision: the status line decides. A 2xx is healthy as soon as its head is in, so a
/// slow or endless body neither delays nor fails the probe.
#[test]
fn a_200_with_an_endless_body_is_healthy_at_once() {
    let server = Server::start(|stream| endless(stream, b"HTTP/1.1 200 OK\r\n\r\n", &[b'a'; 4096]));
    let run = healthchecker(&["--port", &server.port(), "--timeout", "5s"]);
    run.assert_code(0)
        .assert_line_starts_with("healthy: 200 OK in ");
    assert!(run.elapsed < Duration::from_secs(4), "{run:?}");
}

#[test]
fn a_connection_closed_mid_response_is_unhealthy() {
    let server = Server::answering("HTTP/1.1 200 OK\r\nContent-Le");
    let run = healthchecker(&["--port", &server.port()]);
    run.assert_code(1);
    assert_eq!(
        run.stdout,
        format!(
            "unhealthy: connection closed mid-response after 27 bytes ({})\n",
            server.addr
        )
    );
}

#[test]
fn a_connection_closed_without_an_answer_is_unhealthy() {
    let server = Server::answering("");
    let run = healthchecker(&["--port", &server.port()]);
    run.assert_code(1);
    assert_eq!(
        run.stdout,
        format!(
            "unhealthy: connection closed without a response ({})\n",
            server.addr
        )
    );
}

#[test]
fn an_http_1_0_200_is_healthy() {
    let server = Server::answering("HTTP/1.0 200 OK\r\n\r\n{\"status\":\"UP\"}");
    healthchecker(&["--port", &server.port()])
        .assert_code(0)
        .assert_line_starts_with("healthy: 200 OK in ");
}

#[test]
fn any_2xx_is_healthy() {
    let server = Server::answering("HTTP/1.1 204 No Content\r\n\r\n");
    healthchecker(&["--port", &server.port()])
        .assert_code(0)
        .assert_line_starts_with("healthy: 204 No Content in ");
}

#[test]
fn an_interim_100_continue_is_skipped() {
    let server = Server::answering(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    );
    healthchecker(&["--port", &server.port()])
        .assert_code(0)
        .assert_line_starts_with("healthy: 200 OK in ");
}

#[test]
fn a_redirect_is_not_followed_and_is_unhealthy() {
    let server = Server::answering(
        "HTTP/1.1 301 Moved Permanently\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n",
    );
    let run = healthchecker(&["--port", &server.port()]);
    run.assert_code(1);
    assert_eq!(
        run.stdout,
        "unhealthy: 301 Moved Permanently (redirect to http://127.0.0.1:1/elsewhere not followed)\n"
    );
}

#[test]
fn ipv6_loopback_works_as_host_and_in_a_url() {
    let by_host = Server::start_on("[::1]:0", |stream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    });
    healthchecker(&["--host", "::1", "--port", &by_host.port()]).assert_code(0);
    assert!(
        by_host
            .request()
            .contains(&format!("Host: [::1]:{}\r\n", by_host.port()))
    );

    let by_url = Server::start_on("[::1]:0", |stream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    });
    let url = format!("http://[::1]:{}/ready", by_url.port());
    healthchecker(&["--url", &url])
        .assert_code(0)
        .assert_line_starts_with("healthy: 200 OK");
    assert!(by_url.request().starts_with("GET /ready HTTP/1.1\r\n"));
}

#[test]
fn localhost_falls_back_to_ipv6_when_ipv4_refuses() {
    let server = Server::start_on("[::1]:0", |stream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    });
    // Only valid while nothing listens on 127.0.0.1 with the same port number; a clash
    // would make the probe reach that other listener instead.
    healthchecker(&["--host", "localhost", "--port", &server.port()])
        .assert_code(0)
        .assert_line_starts_with("healthy: 200 OK");
    assert!(
        server
            .request()
            .contains(&format!("Host: localhost:{}\r\n", server.port()))
    );
}

#[test]
fn localhost_reports_every_address_it_tried() {
    let port = closed_port();
    let run = healthchecker(&["--host", "localhost", "--port", &port.to_string()]);
    run.assert_code(1);
    assert_eq!(
        run.stdout,
        format!("unhealthy: connection refused (127.0.0.1:{port}, [::1]:{port})\n")
    );
}

#[test]
fn the_worst_line_fits_in_the_4096_bytes_docker_keeps() {
    let server = Server::start(|stream| {
        let mut response = b"HTTP/1.1 302 ".to_vec();
        response.extend_from_slice(&[0xff; 1000]);
        response.extend_from_slice(b"\r\nLocation: ");
        response.extend_from_slice(&[0xfd; 1000]);
        response.extend_from_slice(b"\r\n\r\n");
        response.extend_from_slice(&[0xfe; 5000]);
        let _ = stream.write_all(&response);
    });
    let run = healthchecker(&["--port", &server.port()]);
    run.assert_code(1).assert_line_starts_with("unhealthy: 302");
    assert!(run.stdout.len() <= 4096, "{} bytes", run.stdout.len());
    assert!(run.stdout.contains(r"(redirect to \xfd\xfd"), "{run:?}");
    assert!(run.stdout.contains(r": \xfe\xfe"), "{run:?}");
}
