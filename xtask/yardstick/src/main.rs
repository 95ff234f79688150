//! The benchmark yardstick: a bare hyper server that answers every request with one fixed JSON body.
//!
//! `cargo xtask bench` runs it beside the service, on the same core, under the same load, so every
//! figure of the service can be reported as a ratio to "what this machine can do over HTTP at all"
//! measured in the same run. It has no routing, no database and no middleware on purpose: it is the
//! ceiling a real service is compared against.
//!
//! Usage: `yardstick <port> <body>`; it prints `listening on <addr>` once it accepts connections.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("yardstick: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(port), Some(body)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: yardstick <port> <body>");
    };
    let port: u16 = port
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid port {port:?}"))?;
    let body = Bytes::from(body);
    // The same runtime flavour as the service: a multi-thread runtime sized by the CPU affinity
    // mask, so pinning both with `taskset` gives both the same resources.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(SocketAddr::from(([127, 0, 0, 1], port)), body))
}

async fn serve(addr: SocketAddr, body: Bytes) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let content_type = HeaderValue::from_static("application/json");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        let content_type = content_type.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_request: Request<hyper::body::Incoming>| {
                let mut response = Response::new(Full::new(body.clone()));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, content_type.clone());
                async move { Ok::<_, Infallible>(response) }
            });
            // A client that resets its connection is normal under load; nothing to report.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
