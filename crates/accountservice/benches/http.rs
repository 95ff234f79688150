//! HTTP benchmark: `GET /accounts/10000` on the service against a bare hyper server answering
//! the same bytes, both on one worker thread, measured with `wrk` in the same run.
//!
//! Run in release: `cargo bench -p accountservice --bench http [-- SECONDS]` (default 5 s per
//! round, 2 rounds each, alternating). Needs `wrk` on the PATH; prints a skip notice otherwise.

use std::{
    convert::Infallible,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    process::Command,
    time::Duration,
};

use accountservice::{
    config::{LogFormat, Settings},
    startup::Application,
};
use http_body_util::Full;
use hyper::{Response, body::Bytes, header, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;

fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .map(|arg| arg.parse())
        .transpose()?
        .unwrap_or(5);
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("wrk not found: skipping the HTTP benchmark");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let service = start_service(dir.path().join("accounts.db"))?;
    let body = fetch_body(service)?;
    println!(
        "service answer: {} bytes: {}",
        body.len(),
        String::from_utf8_lossy(&body)
    );
    let bare = start_bare_hyper(Bytes::from(body))?;

    let mut ours = Vec::new();
    let mut yardstick = Vec::new();
    for _ in 0..2 {
        yardstick.push(wrk(bare, "/accounts/10000", seconds)?);
        ours.push(wrk(service, "/accounts/10000", seconds)?);
    }
    let best = |runs: &[f64]| runs.iter().copied().fold(0.0, f64::max);
    println!("bare hyper, fixed body: {yardstick:.0?} requests/s");
    println!("accountservice lookup:  {ours:.0?} requests/s");
    println!(
        "ratio (best of each): {:.2}",
        best(&ours) / best(&yardstick)
    );
    Ok(())
}

/// Runs `wrk` with one thread and 50 connections; returns requests per second.
fn wrk(address: SocketAddr, path: &str, seconds: u64) -> anyhow::Result<f64> {
    let output = Command::new("wrk")
        .args(["-t1", "-c50", &format!("-d{seconds}s")])
        .arg(format!("http://{address}{path}"))
        .output()?;
    let text = String::from_utf8(output.stdout)?;
    if text.contains("Non-2xx") {
        anyhow::bail!("wrk saw errors:\n{text}");
    }
    text.lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .map(|value| value.trim().parse::<f64>())
        .transpose()?
        .ok_or_else(|| anyhow::anyhow!("no Requests/sec in wrk output:\n{text}"))
}

/// A single-threaded runtime on its own thread, so each server gets one core's worth of work.
fn one_worker_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

fn start_service(db_path: std::path::PathBuf) -> anyhow::Result<SocketAddr> {
    let settings = Settings {
        port: 0,
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        db_path,
        seed_accounts: 100,
        log_format: LogFormat::Text,
        log_filter: "warn".into(),
        shutdown_timeout: Duration::from_secs(1),
        db_lock_timeout: Duration::ZERO,
        health_details: health::http::Details::Components,
        health_interval: Duration::from_secs(1),
        health_timeout: Duration::from_secs(1),
        pre_stop_delay: Duration::ZERO,
        testability: false,
        header_read_timeout: Duration::from_secs(10),
        max_header_bytes: 16 * 1024,
        max_connections: 10_000,
        max_concurrent_requests: 1024,
        peers: None,
        management_port: None,
        management_bind: None,
    };
    let runtime = one_worker_runtime()?;
    let app = runtime.block_on(Application::build(&settings))?;
    let address = app.local_addr();
    std::thread::spawn(move || runtime.block_on(app.run_until(std::future::pending())));
    Ok(address)
}

fn start_bare_hyper(body: Bytes) -> anyhow::Result<SocketAddr> {
    let runtime = one_worker_runtime()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let address = listener.local_addr()?;
    std::thread::spawn(move || {
        runtime.block_on(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let body = body.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_request| {
                        let body = body.clone();
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header(header::CONTENT_TYPE, "application/json")
                                    .body(Full::new(body))
                                    .unwrap_or_default(),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        })
    });
    Ok(address)
}

/// The service's answer for account 10000, read with a plain HTTP/1.1 request.
fn fetch_body(address: SocketAddr) -> anyhow::Result<Vec<u8>> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /accounts/10000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("malformed response"))?;
    Ok(response[split + 4..].to_vec())
}
