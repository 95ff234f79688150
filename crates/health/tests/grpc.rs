//! The gRPC health service over a real socket, called with tonic's own client: names, statuses,
//! `List`, `Watch` pushes and its end at shutdown.

// Test code: an unwrap that fails is a failed test, with the value in the message.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use health::grpc::{
    CancellationToken, HealthCheckRequest, HealthCheckResponse, HealthClient, HealthListRequest,
    HealthService, LIST_LIMIT, ServingStatus,
};
use health::{CheckOutcome, Health, Probes, Status, check_fn};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

/// How long anything asynchronous may take before a test fails.
const DEADLINE: Duration = Duration::from_secs(10);

/// A server on 127.0.0.1:0 serving a registry, and a connected client.
struct Served {
    client: HealthClient<Channel>,
    shutdown: CancellationToken,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

async fn serve(health: Health) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(HealthService::new(health, shutdown.clone()).into_server())
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(listener),
                shutdown.clone().cancelled_owned(),
            ),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Served {
        client: HealthClient::new(channel),
        shutdown,
        server,
    }
}

/// A registry with a readiness check `database` switched by the returned flag, a liveness
/// check `worker` that is up, and a non-critical `cache` that is down; one round done.
async fn registry() -> (Health, Arc<AtomicBool>) {
    let failing = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&failing);
    let health = Health::builder()
        .check(check_fn("database", move || {
            let failing = flag.load(Ordering::SeqCst);
            async move {
                if failing {
                    CheckOutcome::down("read failed")
                } else {
                    CheckOutcome::up()
                }
            }
        }))
        .check(check_fn("worker", || async { CheckOutcome::up() }).probes(Probes::LIVENESS))
        .check(
            check_fn("cache", || async {
                CheckOutcome::down("connection refused")
            })
            .non_critical(),
        )
        .build()
        .unwrap();
    health.refresh_now().await;
    (health, failing)
}

async fn check(client: &mut HealthClient<Channel>, name: &str) -> Result<ServingStatus, Code> {
    let request = HealthCheckRequest {
        service: name.to_owned(),
    };
    match client.check(request).await {
        Ok(response) => Ok(response.into_inner().status()),
        Err(status) => Err(status.code()),
    }
}

async fn watch(client: &mut HealthClient<Channel>, name: &str) -> Streaming<HealthCheckResponse> {
    let request = HealthCheckRequest {
        service: name.to_owned(),
    };
    client.watch(request).await.unwrap().into_inner()
}

/// The next message of a Watch call (`Err` with the code when the call ends), within the deadline.
async fn next(stream: &mut Streaming<HealthCheckResponse>) -> Result<ServingStatus, Code> {
    match tokio::time::timeout(DEADLINE, stream.message()).await {
        Err(_) => panic!("Watch sent nothing within {DEADLINE:?}"),
        Ok(Ok(Some(message))) => Ok(message.status()),
        Ok(Ok(None)) => Err(Code::Ok),
        Ok(Err(status)) => Err(status.code()),
    }
}

#[tokio::test]
async fn check_answers_each_scope_and_component_as_http_would() {
    let (health, _) = registry().await;
    let mut served = serve(health).await;
    let c = &mut served.client;
    use ServingStatus::{NotServing, Serving};
    // The cache is down but not critical: DEGRADED aggregates answer 200, so SERVING.
    for (name, expected) in [
        ("", Serving),
        ("liveness", Serving),
        ("readiness", Serving),
        ("database", Serving),
        ("worker", Serving),
        ("cache", NotServing),
    ] {
        assert_eq!(check(c, name).await, Ok(expected), "{name:?}");
    }
    assert_eq!(check(c, "no-such-component").await, Err(Code::NotFound));
}

#[tokio::test]
async fn a_manual_component_is_a_name_too_and_drives_its_scopes() {
    let (health, _) = registry().await;
    let mut served = serve(health.clone()).await;
    let c = &mut served.client;
    assert_eq!(check(c, "lifecycle").await, Err(Code::NotFound));
    health.set_manual(
        "lifecycle",
        Status::OutOfService,
        "draining",
        Probes::READINESS,
    );
    assert_eq!(check(c, "lifecycle").await, Ok(ServingStatus::NotServing));
    assert_eq!(check(c, "readiness").await, Ok(ServingStatus::NotServing));
    assert_eq!(check(c, "liveness").await, Ok(ServingStatus::Serving));
}

#[tokio::test]
async fn list_names_every_scope_and_component() {
    let (health, _) = registry().await;
    let mut served = serve(health).await;
    let list = served
        .client
        .list(HealthListRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut got: Vec<(String, ServingStatus)> = list
        .statuses
        .into_iter()
        .map(|(name, response)| (name, response.status()))
        .collect();
    got.sort();
    let expected: Vec<(String, ServingStatus)> = [
        ("", ServingStatus::Serving),
        ("cache", ServingStatus::NotServing),
        ("database", ServingStatus::Serving),
        ("liveness", ServingStatus::Serving),
        ("readiness", ServingStatus::Serving),
        ("worker", ServingStatus::Serving),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_owned(), s))
    .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn list_refuses_more_services_than_the_protocol_allows() {
    let health = Health::builder().build().unwrap();
    // The three scopes plus these make exactly the limit: still answered.
    for i in 0..LIST_LIMIT - 3 {
        health.set_manual(format!("c{i}"), Status::Up, "set", Probes::NONE);
    }
    let mut served = serve(health.clone()).await;
    let list = served.client.list(HealthListRequest {}).await.unwrap();
    assert_eq!(list.into_inner().statuses.len(), LIST_LIMIT);
    health.set_manual("one-more", Status::Up, "set", Probes::NONE);
    let refused = served.client.list(HealthListRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
}

#[tokio::test]
async fn watch_pushes_each_change_of_its_name_and_nothing_else() {
    let (health, failing) = registry().await;
    let mut served = serve(health.clone()).await;
    let mut database = watch(&mut served.client, "database").await;
    let mut liveness = watch(&mut served.client, "liveness").await;
    assert_eq!(next(&mut database).await, Ok(ServingStatus::Serving));
    assert_eq!(next(&mut liveness).await, Ok(ServingStatus::Serving));

    failing.store(true, Ordering::SeqCst);
    health.refresh_now().await;
    assert_eq!(next(&mut database).await, Ok(ServingStatus::NotServing));
    // A round that changes nothing sends nothing: the next message is the recovery.
    health.refresh_now().await;
    failing.store(false, Ordering::SeqCst);
    health.refresh_now().await;
    assert_eq!(next(&mut database).await, Ok(ServingStatus::Serving));

    // The database is not part of liveness: that watcher saw none of it, and its next message
    // is the one shutdown sends.
    served.shutdown.cancel();
    assert_eq!(next(&mut liveness).await, Ok(ServingStatus::NotServing));
    assert_eq!(next(&mut liveness).await, Err(Code::Unavailable));
}

#[tokio::test]
async fn watch_of_an_unknown_name_stays_open_and_reports_it_once_it_appears() {
    let (health, _) = registry().await;
    let mut served = serve(health.clone()).await;
    let mut late = watch(&mut served.client, "late").await;
    assert_eq!(next(&mut late).await, Ok(ServingStatus::ServiceUnknown));
    health.set_manual("late", Status::Down, "not yet", Probes::NONE);
    assert_eq!(next(&mut late).await, Ok(ServingStatus::NotServing));
    health.clear_manual("late");
    assert_eq!(next(&mut late).await, Ok(ServingStatus::ServiceUnknown));
}

#[tokio::test]
async fn watch_sees_a_result_turn_stale_without_any_new_round() {
    let health = Health::builder()
        .interval(Duration::from_millis(50))
        .timeout(Duration::from_millis(50))
        .staleness(Duration::from_millis(300))
        .check(check_fn("database", || async { CheckOutcome::up() }))
        .build()
        .unwrap();
    // One round and no refresher: nothing will publish again, only time passes.
    health.refresh_now().await;
    let mut served = serve(health).await;
    let mut database = watch(&mut served.client, "database").await;
    assert_eq!(next(&mut database).await, Ok(ServingStatus::Serving));
    assert_eq!(next(&mut database).await, Ok(ServingStatus::NotServing));
}

#[tokio::test]
async fn shutdown_ends_every_watch_so_the_server_stops() {
    let (health, _) = registry().await;
    let mut served = serve(health).await;
    let mut overall = watch(&mut served.client, "").await;
    let mut unknown = watch(&mut served.client, "no-such-component").await;
    assert_eq!(next(&mut overall).await, Ok(ServingStatus::Serving));
    assert_eq!(next(&mut unknown).await, Ok(ServingStatus::ServiceUnknown));

    served.shutdown.cancel();
    assert_eq!(next(&mut overall).await, Ok(ServingStatus::NotServing));
    assert_eq!(next(&mut overall).await, Err(Code::Unavailable));
    // An unknown name is not declared NOT_SERVING; its call just ends.
    assert_eq!(next(&mut unknown).await, Err(Code::Unavailable));
    let stopped = tokio::time::timeout(DEADLINE, served.server)
        .await
        .expect("the server stops once its calls ended");
    stopped.unwrap().unwrap();
}
