//! Every connection makes progress or goes: clients that send and never read lose their
//! connections after the write timeout, on both ports and both protocols, and the connection
//! caps fit the memory limit.

use std::time::{Duration, Instant};

use accountservice::{
    memory_limit::MemoryLimitSetting,
    startup::{Application, StartupError},
};
use reqwest::StatusCode;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpSocket, TcpStream},
};

use crate::helpers::{TIMEOUT, http_client, settings, spawn_app_configured};

/// The write timeout of these tests.
const BOUND: Duration = Duration::from_secs(2);

/// A connection to `address` with a receive buffer as small as the kernel allows, on which as
/// many pipelined requests as the server will take are written, and nothing is ever read.
async fn never_reading(address: std::net::SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .set_recv_buffer_size(1024)
        .expect("a receive buffer size");
    // Not megabytes of requests queued on our side either.
    socket
        .set_send_buffer_size(4096)
        .expect("a send buffer size");
    let stream = tokio::time::timeout(TIMEOUT, socket.connect(address))
        .await
        .expect("connect timed out")
        .expect("cannot connect");
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".repeat(64);

    // Written until the server stops taking them (its buffers and ours full), or for a while.
    let (deadline, mut offset) = (Instant::now() + TIMEOUT, 0);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), stream.writable()).await {
            // A short write leaves a request half sent: the next write goes on from there.
            Ok(Ok(())) => match stream.try_write(&request[offset..]) {
                Ok(written) => offset = (offset + written) % request.len(),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            },
            // Not writable for a while: the server stopped reading.
            _ => break,
        }
    }
    stream
}

#[tokio::test]
async fn clients_that_never_read_cannot_hold_the_connection_cap_past_the_write_timeout() {
    let cap = 3;
    let app = spawn_app_configured(|s| {
        s.max_connections = Some(cap);
        s.write_timeout = BOUND;
    })
    .await;
    let mut stalled = Vec::new();
    for _ in 0..cap {
        stalled.push(never_reading(app.address).await);
    }
    let started = Instant::now();
    let mut fresh = tokio::spawn({
        // A new client: none of its connections is already open.
        let client = http_client();
        let url = app.url("/health/live");
        async move { client.get(url).send().await.map(|r| r.status()) }
    });
    // The cap is theirs until the bound: something that does not happen can only be watched
    // for a while.
    let early = tokio::time::timeout(BOUND / 4, &mut fresh).await;
    assert!(early.is_err(), "the stalled clients did not fill the cap");
    let status = tokio::time::timeout_at((started + BOUND + Duration::from_secs(1)).into(), fresh)
        .await
        .expect("a fresh client was not served within the write timeout plus a second")
        .unwrap()
        .expect("the fresh request failed");
    assert_eq!(status, StatusCode::OK);
    // The stalled connections are gone, not merely waiting.
    let deadline = started + BOUND + Duration::from_secs(1);
    for stream in stalled {
        wait_closed(&stream, deadline).await;
    }
    app.stop().await.unwrap();
}

/// Waits, by `deadline`, for the server to close `stream` without reading from it (which would
/// let the server make progress again): the close (a reset, for the server drops unread
/// requests) fails the next write.
async fn wait_closed(stream: &TcpStream, deadline: Instant) {
    loop {
        tokio::time::timeout_at(deadline.into(), stream.writable())
            .await
            .expect("the server kept a stalled connection open past the write timeout")
            .expect("cannot wait for the socket");
        match stream.try_write(b"\r\n") {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
            // The server takes requests again only if it has sent everything it owed; give
            // it a moment so this loop does not spin.
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// An HTTP/2 frame: its 9-byte header and `payload`.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len())
        .expect("a small payload")
        .to_be_bytes();
    let mut frame = vec![length[1], length[2], length[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

#[tokio::test]
async fn an_http2_client_that_never_opens_its_window_loses_its_connection_after_the_write_timeout()
{
    let app = spawn_app_configured(|s| {
        s.management_port = Some(0);
        s.write_timeout = BOUND;
    })
    .await;
    let management = app.management.unwrap();
    let mut stream = TcpStream::connect(management).await.unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS: SETTINGS_INITIAL_WINDOW_SIZE (4) = 0, so no stream may be sent a byte of data
    // until a WINDOW_UPDATE that never comes.
    hello.extend(frame(0x4, 0, 0, &[0, 4, 0, 0, 0, 0]));
    // HEADERS, END_STREAM | END_HEADERS, on streams 1 and 3: GET /metrics (HPACK: :method GET,
    // :scheme http, then :path and :authority as literals with indexed names).
    let mut block = vec![0x82, 0x86, 0x04, 8];
    block.extend_from_slice(b"/metrics");
    block.extend_from_slice(&[0x01, 1, b'x']);
    hello.extend(frame(0x1, 0x5, 1, &block));
    hello.extend(frame(0x1, 0x5, 3, &block));
    stream.write_all(&hello).await.unwrap();
    let started = Instant::now();
    // Whatever the server sends (its SETTINGS, the response heads) is read, at the socket; at
    // the protocol's level nothing is, so the bodies wait.
    let mut buffer = [0_u8; 16 * 1024];
    loop {
        let read = tokio::time::timeout_at(
            (started + BOUND + Duration::from_secs(1)).into(),
            stream.read(&mut buffer),
        )
        .await
        .expect("the stalled HTTP/2 connection was still open after the write timeout");
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    assert!(
        started.elapsed() >= BOUND / 2,
        "closed before any stall could be timed"
    );
    assert_eq!(app.get_management("/health").await.status(), StatusCode::OK);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn on_the_management_port_http1_clients_that_never_read_are_closed_too() {
    let app = spawn_app_configured(|s| {
        s.management_port = Some(0);
        s.write_timeout = BOUND;
    })
    .await;
    let management = app.management.unwrap();
    let stream = never_reading(management).await;
    // The stall began while the requests were being written.
    wait_closed(&stream, Instant::now() + BOUND + Duration::from_secs(1)).await;
    assert_eq!(app.get_management("/health").await.status(), StatusCode::OK);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_connection_cap_that_does_not_fit_the_memory_limit_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut too_many = settings(&dir.path().join("accounts.db"));
    too_many.memory_limit = MemoryLimitSetting::Bytes(64 << 20);
    too_many.max_connections = Some(10_000);
    let refused = Application::build(&too_many).await.err();
    let Some(StartupError::Memory(error)) = refused else {
        panic!("a cap of 10,000 in 64 MiB was not refused: {refused:?}");
    };
    let message = error.to_string();
    assert!(message.contains("--max-connections 10000") && !message.contains('\n'));

    // Left to itself the service picks a cap that fits, and serves.
    let app = spawn_app_configured(|s| s.memory_limit = MemoryLimitSetting::Bytes(64 << 20)).await;
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
    app.stop().await.unwrap();
}
