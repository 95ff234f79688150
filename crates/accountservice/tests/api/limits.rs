//! Limits against hostile clients, over real sockets: oversized heads, URIs and bodies get a
//! status, slow and idle connections are closed, and a crowd of them does not stop `/health`.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::helpers::{TestApp, spawn_app, spawn_app_configured};

/// Sends raw bytes on a new connection and returns everything the server sends back before it
/// closes the connection (bounded).
async fn exchange(app: &TestApp, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(app.address)
        .await
        .expect("cannot connect");
    stream.write_all(request).await.expect("cannot send");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer));
    // A reset after the answer is fine: the answer is what matters.
    let _ = read.await.expect("the server neither answered nor closed");
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

#[tokio::test]
async fn a_request_head_over_the_limit_is_431() {
    let app = spawn_app().await;
    let request = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(32 * 1024)
    );
    let answer = exchange(&app, request.as_bytes()).await;
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 431"),
        "{answer:.200}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_uri_over_the_limit_is_414_with_a_json_reason() {
    let app = spawn_app().await;
    let request = format!(
        "GET /accounts/{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "1".repeat(9 * 1024)
    );
    let answer = exchange(&app, request.as_bytes()).await;
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 414"),
        "{answer:.200}"
    );
    assert!(answer.contains(r#"{"error":"request URI longer than 8192 bytes"}"#));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_100_kb_account_id_is_refused_with_a_status_not_a_dropped_connection() {
    let app = spawn_app().await;
    let request = format!(
        "GET /accounts/{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "9".repeat(100 * 1024)
    );
    let answer = exchange(&app, request.as_bytes()).await;
    // The request head is larger than the 16 KiB head limit, so hyper answers before routing.
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 431"),
        "{answer:.200}"
    );
    let (status, _) = app.get_json("/health").await;
    assert_eq!(status, 200);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_with_a_json_reason() {
    let app = spawn_app().await;
    let body = "x".repeat(4096);
    let request = format!(
        "POST /accounts/10000 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = exchange(&app, request.as_bytes()).await;
    assert!(
        status_line(&answer).starts_with("HTTP/1.1 413"),
        "{answer:.200}"
    );
    assert!(answer.contains("no route takes a body"), "{answer}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_disconnected_after_the_header_timeout() {
    let app = spawn_app_configured(|s| s.header_read_timeout = Duration::from_millis(500)).await;
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    let started = Instant::now();
    let mut buf = [0_u8; 256];
    let closed = loop {
        // One byte every 100 ms: the head is never complete.
        if stream.write_all(b"X").await.is_err() {
            break started.elapsed();
        }
        let read = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still connected"
        );
    };
    assert!(
        closed >= Duration::from_millis(400),
        "closed after {closed:?}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
    let app = spawn_app_configured(|s| s.header_read_timeout = Duration::from_millis(500)).await;
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0_u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Now idle: the server closes the connection on its own.
    let started = Instant::now();
    let rest = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("the idle connection was not closed");
    assert!(matches!(rest, Ok(0) | Err(_)), "{rest:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    app.stop().await.unwrap();
}

/// Descriptors left for everything but the crowd below: the other tests of this binary run at the
/// same time, each with its own service, database and clients.
const RESERVED_DESCRIPTORS: u64 = 256;

/// How many slow connections the crowd test opens: a thousand, or fewer when the descriptor limit
/// is lower than that needs. The soft limit is raised to the hard one first; each connection costs
/// two descriptors here (the client's socket and the server's, both in this process).
fn crowd_size() -> usize {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let fits = limit.saturating_sub(RESERVED_DESCRIPTORS) / 2;
    usize::try_from(fits.min(1000)).unwrap_or(1000)
}

#[tokio::test]
async fn a_crowd_of_slow_connections_does_not_stop_health_from_answering() {
    let crowd = crowd_size();
    println!("{crowd} slow connections (sized to the open-file limit, at most 1000)");
    assert!(crowd >= 100, "an open-file limit this low tests nothing");
    let app = spawn_app().await;
    let mut slow = Vec::new();
    for _ in 0..crowd {
        let mut stream = TcpStream::connect(app.address).await.unwrap();
        stream
            .write_all(b"GET /accounts/10000 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    let started = Instant::now();
    let (status, body) = app.get_json("/health").await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(took < Duration::from_secs(2), "/health took {took:?}");
    assert_eq!(app.get_account("10001").await.status(), 200);
    drop(slow);
    app.stop().await.unwrap();
}

/// A keep-alive connection that has been answered once, so the server has accepted it.
async fn served_keep_alive(app: &TestApp) -> TcpStream {
    let mut stream = TcpStream::connect(app.address)
        .await
        .expect("cannot connect");
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("cannot send");
    let mut buf = vec![0_u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("no answer")
        .expect("cannot read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    stream
}

#[tokio::test]
async fn at_the_connection_cap_new_clients_wait_and_are_served_when_one_closes() {
    let app = spawn_app_configured(|s| s.max_connections = Some(2)).await;
    // Both accepted and served (an answer proves it) before the third arrives; they stay open.
    let first = served_keep_alive(&app).await;
    let second = served_keep_alive(&app).await;
    let mut third = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/health/live");
        async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    // Something that does not happen can only be watched for a while.
    let early = tokio::time::timeout(Duration::from_millis(300), &mut third).await;
    assert!(
        early.is_err(),
        "a third connection was served at a cap of 2: {early:?}"
    );
    drop(first);
    let status = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("the waiting client was never served")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    drop(second);
    app.stop().await.unwrap();
}
