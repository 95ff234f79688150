//! gRPC health (`grpc.health.v1`) on the management port, asked with tonic's own client over
//! h2c, next to HTTP/1.1 on the same port: names, statuses, `Watch` across a forced failure and
//! the drain, its bounds, and the public port staying HTTP/1.1 only.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use accountservice::grpc::MAX_WATCHES;
use health::grpc::{HealthCheckRequest, HealthCheckResponse, HealthClient, ServingStatus};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::{Code, Streaming, transport::Channel};

use crate::helpers::{
    SlowApp, TIMEOUT, TestApp, http_client, serve_with_slow_route, settings, spawn_app_configured,
};

/// A service with a management port and the testability switches.
async fn spawn_with_management() -> TestApp {
    spawn_app_configured(|s| {
        s.management_port = Some(0);
        s.testability = true;
    })
    .await
}

/// A tonic client connected (HTTP/2 with prior knowledge) to `address`.
async fn client(address: SocketAddr) -> HealthClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("a valid URI")
        .connect_timeout(TIMEOUT)
        .connect()
        .await
        .expect("cannot connect");
    HealthClient::new(channel)
}

fn request(name: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: name.to_owned(),
    }
}

async fn check(client: &mut HealthClient<Channel>, name: &str) -> Result<ServingStatus, Code> {
    match tokio::time::timeout(TIMEOUT, client.check(request(name))).await {
        Ok(Ok(response)) => Ok(status(&response.into_inner())),
        Ok(Err(status)) => Err(status.code()),
        Err(_) => panic!("Check({name:?}) did not answer within {TIMEOUT:?}"),
    }
}

fn status(response: &HealthCheckResponse) -> ServingStatus {
    ServingStatus::try_from(response.status).expect("a known serving status")
}

async fn watch(client: &mut HealthClient<Channel>, name: &str) -> Streaming<HealthCheckResponse> {
    tokio::time::timeout(TIMEOUT, client.watch(request(name)))
        .await
        .expect("Watch did not answer")
        .expect("Watch failed")
        .into_inner()
}

/// The next message of a `Watch` call: a status, or how the call ended.
async fn next(stream: &mut Streaming<HealthCheckResponse>) -> Result<ServingStatus, Code> {
    match tokio::time::timeout(TIMEOUT, stream.message()).await {
        Ok(Ok(Some(response))) => Ok(status(&response)),
        Ok(Ok(None)) => Err(Code::Ok),
        Ok(Err(status)) => Err(status.code()),
        Err(_) => panic!("Watch sent nothing within {TIMEOUT:?}"),
    }
}

#[tokio::test]
async fn check_answers_every_name_on_the_management_port() {
    let app = spawn_with_management().await;
    let mut client = client(app.management.expect("a management port")).await;
    for name in ["", "liveness", "readiness", "database"] {
        assert_eq!(
            check(&mut client, name).await,
            Ok(ServingStatus::Serving),
            "{name:?}"
        );
    }
    // A manual component is a name only while it is set.
    for name in ["no-such-component", "testability", "lifecycle", "Database"] {
        assert_eq!(
            check(&mut client, name).await,
            Err(Code::NotFound),
            "{name}"
        );
    }

    // The database fault turns its name, the overall status, readiness and liveness
    // NOT_SERVING, as the HTTP endpoints say: the embedded file is the replica's own, a fault
    // a restart can cure.
    let down = app.get_management("/testability/database/down").await;
    assert_eq!(down.status(), StatusCode::OK);
    let deadline = Instant::now() + TIMEOUT;
    while check(&mut client, "database").await != Ok(ServingStatus::NotServing) {
        assert!(
            Instant::now() < deadline,
            "the database never turned NOT_SERVING"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(check(&mut client, "").await, Ok(ServingStatus::NotServing));
    assert_eq!(
        check(&mut client, "readiness").await,
        Ok(ServingStatus::NotServing)
    );
    assert_eq!(
        check(&mut client, "liveness").await,
        Ok(ServingStatus::NotServing)
    );
    assert_eq!(app.get_management("/health/ready").await.status(), 503);
    assert_eq!(app.get_management("/health/live").await.status(), 503);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn http1_keeps_working_on_the_port_that_speaks_grpc() {
    let app = spawn_with_management().await;
    let management = app.management.unwrap();
    let mut client = client(management).await;
    assert_eq!(check(&mut client, "").await, Ok(ServingStatus::Serving));
    // reqwest without HTTP/2 support: HTTP/1.1, keep-alive, on the same port in between calls.
    for path in ["/health", "/health/ready", "/metrics", "/health/history"] {
        let response = app.get_management(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.version(), reqwest::Version::HTTP_11, "{path}");
    }
    let unknown = app.get_management("/nothing").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(
        check(&mut client, "readiness").await,
        Ok(ServingStatus::Serving)
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn watch_sees_a_forced_failure_and_the_recovery() {
    let app = spawn_with_management().await;
    let mut client = client(app.management.unwrap()).await;
    let mut overall = watch(&mut client, "").await;
    let mut liveness = watch(&mut client, "liveness").await;
    let mut switch = watch(&mut client, "testability").await;
    assert_eq!(next(&mut overall).await, Ok(ServingStatus::Serving));
    assert_eq!(next(&mut liveness).await, Ok(ServingStatus::Serving));
    assert_eq!(next(&mut switch).await, Ok(ServingStatus::ServiceUnknown));

    let forced = app.get_management("/testability/healthy/false").await;
    assert_eq!(forced.status(), StatusCode::OK);
    assert_eq!(next(&mut overall).await, Ok(ServingStatus::NotServing));
    assert_eq!(next(&mut liveness).await, Ok(ServingStatus::NotServing));
    assert_eq!(next(&mut switch).await, Ok(ServingStatus::NotServing));
    assert_eq!(
        check(&mut client, "testability").await,
        Ok(ServingStatus::NotServing)
    );

    let restored = app.get_management("/testability/healthy/true").await;
    assert_eq!(restored.status(), StatusCode::OK);
    assert_eq!(next(&mut overall).await, Ok(ServingStatus::Serving));
    assert_eq!(next(&mut liveness).await, Ok(ServingStatus::Serving));
    assert_eq!(next(&mut switch).await, Ok(ServingStatus::ServiceUnknown));

    // At shutdown every Watch call gets NOT_SERVING (unless its last message said so, or that
    // the name is unknown) and ends with UNAVAILABLE, and the service stops.
    let stopping = tokio::spawn(app.stop());
    assert_eq!(next(&mut overall).await, Ok(ServingStatus::NotServing));
    assert_eq!(next(&mut overall).await, Err(Code::Unavailable));
    assert_eq!(next(&mut liveness).await, Ok(ServingStatus::NotServing));
    assert_eq!(next(&mut liveness).await, Err(Code::Unavailable));
    assert_eq!(next(&mut switch).await, Err(Code::Unavailable));
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn while_the_public_port_drains_watch_says_not_serving_then_ends_when_management_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(&dir.path().join("accounts.db"));
    settings.management_port = Some(0);
    // A public route that answers only when released holds the drain open.
    let slow = serve_with_slow_route(&settings).await;
    let management = slow.management.expect("a management port");
    let mut client = client(management).await;
    let mut readiness = watch(&mut client, "readiness").await;
    let mut liveness = watch(&mut client, "liveness").await;
    assert_eq!(next(&mut readiness).await, Ok(ServingStatus::Serving));
    assert_eq!(next(&mut liveness).await, Ok(ServingStatus::Serving));

    let http = http_client();
    let request = slow.slow_request(&http).await;
    let SlowApp {
        stop,
        mut server,
        release,
        ..
    } = slow;
    stop.send(()).unwrap();

    // The registry says draining: readiness stops serving at once, on gRPC as on HTTP.
    assert_eq!(next(&mut readiness).await, Ok(ServingStatus::NotServing));
    assert_eq!(
        check(&mut client, "lifecycle").await,
        Ok(ServingStatus::NotServing)
    );
    assert_eq!(check(&mut client, "").await, Ok(ServingStatus::NotServing));
    assert_eq!(
        check(&mut client, "liveness").await,
        Ok(ServingStatus::Serving)
    );
    let ready = http
        .get(format!("http://{management}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!server.is_finished(), "stopped before the drain ended");

    // The drain ends, then the management listener stops: the calls end, the service exits.
    release.notify_one();
    let answer = request.await.unwrap().unwrap();
    assert_eq!(answer.text().await.unwrap(), "done");
    assert_eq!(next(&mut readiness).await, Err(Code::Unavailable));
    assert_eq!(next(&mut liveness).await, Ok(ServingStatus::NotServing));
    assert_eq!(next(&mut liveness).await, Err(Code::Unavailable));
    tokio::time::timeout(TIMEOUT, &mut server)
        .await
        .expect("the stop did not end")
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(management).await.is_err());
}

#[tokio::test]
async fn open_watch_calls_are_capped() {
    let app = spawn_with_management().await;
    let management = app.management.unwrap();
    // Two connections: one carries at most 16 streams at once.
    let mut first = client(management).await;
    let mut second = client(management).await;
    let mut open = Vec::new();
    for i in 0..MAX_WATCHES {
        let client = if i % 2 == 0 { &mut first } else { &mut second };
        let mut stream = watch(client, "").await;
        assert_eq!(next(&mut stream).await, Ok(ServingStatus::Serving));
        open.push(stream);
    }
    let refused = tokio::time::timeout(TIMEOUT, first.watch(request("")))
        .await
        .expect("Watch did not answer")
        .expect_err("a Watch call past the cap was accepted");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    // Check is not capped, and a closed Watch call frees its place.
    assert_eq!(check(&mut second, "").await, Ok(ServingStatus::Serving));
    drop(open.pop());
    let deadline = Instant::now() + TIMEOUT;
    let mut again = loop {
        match first.watch(request("")).await {
            Ok(response) => break response.into_inner(),
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(Instant::now() < deadline, "the place was never freed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(next(&mut again).await, Ok(ServingStatus::Serving));
    drop((open, again));
    app.stop().await.unwrap();
}

/// Reads from `stream` until the server closes it; panics past the deadline.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) {
    let mut buffer = [0_u8; 1024];
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let read = tokio::time::timeout_at(deadline.into(), stream.read(&mut buffer))
            .await
            .expect("the server kept an idle connection open");
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn idle_connections_of_either_protocol_are_closed_after_the_header_read_timeout() {
    let app = spawn_app_configured(|s| {
        s.management_port = Some(0);
        s.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let management = app.management.unwrap();
    // Nothing sent at all: the protocol is never known.
    let mut silent = tokio::net::TcpStream::connect(management).await.unwrap();
    // HTTP/2: the preface and an empty SETTINGS frame, then no stream.
    let mut http2 = tokio::net::TcpStream::connect(management).await.unwrap();
    http2
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    // HTTP/1.1: half a request head.
    let mut http1 = tokio::net::TcpStream::connect(management).await.unwrap();
    http1.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    read_until_closed(&mut silent).await;
    read_until_closed(&mut http2).await;
    read_until_closed(&mut http1).await;
    // The listener itself serves on.
    assert_eq!(app.get_management("/health").await.status(), StatusCode::OK);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_public_port_does_not_speak_http2() {
    let app = spawn_with_management().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.address))
        .unwrap()
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT)
        .connect()
        .await;
    // hyper's HTTP/1.1 server answers the HTTP/2 preface as a bad request and closes; the
    // client sees the connection fail either at connect or at the call.
    if let Ok(channel) = channel {
        let mut client = HealthClient::new(channel);
        let error = client
            .check(request(""))
            .await
            .expect_err("the public port answered gRPC");
        assert_ne!(error.code(), Code::Ok);
    }
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
    app.stop().await.unwrap();
}
