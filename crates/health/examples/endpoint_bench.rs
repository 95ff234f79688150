//! Benchmark: `/health` from `health::http::router` against a bare hyper server answering the
//! same bytes, and against an axum router whose handler returns those bytes (the floor any
//! axum handler stands on). All on one core, under the same hyper HTTP/1 connection loop,
//! loaded by `wrk` in the same run. Prints requests per second and the ratios.
//!
//! ```text
//! cargo run --release -p health --example endpoint_bench [-- SECONDS [CONNECTIONS]]
//! ```
//!
//! Needs `wrk` on the PATH. Defaults: 5 s per run, 50 connections, three alternating runs per
//! server; the ratios compare the best run of each (on a shared machine the best run is the
//! one least disturbed by other work).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Command, ExitCode};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, VARY};
use axum::http::{HeaderValue, Request, Response};
use health::http::{Details, HttpOptions};
use health::{CheckOutcome, Health, check_fn};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower::ServiceExt;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Server {
    /// hyper with a `service_fn` answering fixed bytes.
    Bare,
    /// An axum router whose one handler answers the same fixed bytes and headers.
    AxumFixed,
    /// `health::http::router`.
    Health,
}

const SERVERS: [Server; 3] = [Server::Bare, Server::AxumFixed, Server::Health];

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let connections: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(50);
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("endpoint_bench: wrk is not installed (apt-get install wrk)");
        return ExitCode::FAILURE;
    }
    let body = match expected_body() {
        Ok(body) => body,
        Err(err) => {
            eprintln!("endpoint_bench: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "GET /health, {}-byte body, wrk -t1 -c{connections} -d{seconds}s, server on one core",
        body.len()
    );
    let mut best = [0.0_f64; 3];
    for round in 1..=3 {
        for (i, server) in SERVERS.into_iter().enumerate() {
            match run(server, &body, seconds, connections) {
                Ok(rps) => {
                    println!("round {round}: {server:?}: {rps:.0} requests/s");
                    best[i] = best[i].max(rps);
                }
                Err(err) => {
                    eprintln!("endpoint_bench: {server:?}: {err}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    let [bare, axum_fixed, health] = best;
    println!("best: bare {bare:.0}, axum fixed {axum_fixed:.0}, health {health:.0} requests/s");
    println!(
        "ratios: health/bare = {:.3}, health/axum-fixed = {:.3}, axum-fixed/bare = {:.3}",
        health / bare,
        health / axum_fixed,
        axum_fixed / bare
    );
    ExitCode::SUCCESS
}

fn health_registry() -> Health {
    Health::builder()
        .check(check_fn("database", || async { CheckOutcome::up() }))
        .build()
        .unwrap_or_else(|err| unreachable!("the defaults are valid: {err}"))
}

fn options() -> HttpOptions {
    HttpOptions {
        details: Details::Components,
        service_id: "bench".into(),
        version: "1".into(),
        ..HttpOptions::default()
    }
}

/// The body the health endpoint answers, so the bare server can answer the same bytes.
fn expected_body() -> Result<Bytes, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let health = health_registry();
        health.refresh_now().await;
        let router: axum::Router = health::http::router(health, options());
        let request = Request::get("/health")
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
        let response = router.oneshot(request).await.map_err(|e| e.to_string())?;
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok(body.to_bytes())
    })
}

/// Starts one server on its own thread with a one-thread runtime, loads it, stops it.
fn run(server: Server, body: &Bytes, seconds: u64, connections: u32) -> Result<f64, String> {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    let addr = std_listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = oneshot::channel::<()>();
    let body = body.clone();
    let thread = std::thread::spawn(move || -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let listener = TcpListener::from_std(std_listener).map_err(|e| e.to_string())?;
            serve(server, listener, body, stopped).await;
            Ok(())
        })
    });
    std::thread::sleep(Duration::from_millis(200));
    let rps = wrk(addr, seconds, connections);
    let _ = stop.send(());
    thread
        .join()
        .map_err(|_| "server thread panicked".to_owned())??;
    rps
}

async fn serve(
    server: Server,
    listener: TcpListener,
    body: Bytes,
    mut stopped: oneshot::Receiver<()>,
) {
    let router: Option<axum::Router> = match server {
        Server::Bare => None,
        Server::AxumFixed => {
            let body = body.clone();
            let handler = move || {
                let body = body.clone();
                async move {
                    let mut response = Response::new(Body::from(body));
                    let headers = response.headers_mut();
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    headers.insert(VARY, HeaderValue::from_static("accept"));
                    response
                }
            };
            Some(axum::Router::new().route("/health", axum::routing::get(handler)))
        }
        Server::Health => {
            let health = health_registry();
            health.refresh_now().await;
            // Keep publishing rounds, so the bench includes re-rendering once a second.
            let _refresher = health.spawn_refresher(std::future::pending());
            Some(health::http::router(health, options()))
        }
    };
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let router = router.clone();
                let body = body.clone();
                async move {
                    match router {
                        Some(router) => router.oneshot(request.map(Body::new)).await,
                        None => {
                            let mut response = Response::new(Body::from(body));
                            response
                                .headers_mut()
                                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                            Ok::<_, Infallible>(response)
                        }
                    }
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn wrk(addr: SocketAddr, seconds: u64, connections: u32) -> Result<f64, String> {
    let output = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .arg(format!("http://{addr}/health"))
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        return Err(format!("wrk saw errors:\n{text}"));
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk output:\n{text}"))
}
