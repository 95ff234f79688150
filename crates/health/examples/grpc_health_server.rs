//! A gRPC health server (`grpc.health.v1.Health`) whose components a test can fail and recover.
//!
//! ```text
//! cargo run -p health --features grpc --example grpc_health_server -- [--port N] [--bind ADDR] [--interval-ms N]
//! ```
//!
//! Components, each a real check run by the background refresher every `--interval-ms`
//! (default 100):
//!
//! | component | probes | critical | failing it turns `NOT_SERVING` |
//! |---|---|---|---|
//! | `database` | readiness | yes | `database`, `""`, `readiness` |
//! | `worker` | liveness and readiness | yes | `worker`, `""`, `liveness`, `readiness` |
//! | `cache` | readiness | no | `cache` only (the aggregates are `DEGRADED`, still serving) |
//!
//! Prints `listening on ADDR` once it accepts calls (`--port 0`, the default, picks a free
//! port). Then reads commands from stdin, one per line, and answers each on stdout:
//! `fail NAME` -> `ok fail NAME`, `recover NAME` -> `ok recover NAME`, anything else
//! `error: ...`. End of stdin, SIGTERM or Ctrl-C shut it down gracefully: every `Watch` call
//! gets `NOT_SERVING` and ends with `UNAVAILABLE`, then the process prints `stopped` and exits 0.
//! Bad arguments: one line on stderr, exit 2.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use health::grpc::{CancellationToken, HealthService};
use health::{CheckOutcome, Health, Probes, check_fn};
use tokio_stream::wrappers::TcpListenerStream;

/// What the command line asks for.
struct Args {
    bind: IpAddr,
    port: u16,
    interval: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 0,
        interval: Duration::from_millis(100),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => {
                args.port = value
                    .parse()
                    .map_err(|e| format!("--port {value:?}: {e}"))?
            }
            "--bind" => {
                args.bind = value
                    .parse()
                    .map_err(|e| format!("--bind {value:?}: {e}"))?
            }
            "--interval-ms" => {
                let ms: u64 = value
                    .parse()
                    .map_err(|e| format!("--interval-ms {value:?}: {e}"))?;
                if ms == 0 {
                    return Err("--interval-ms must be at least 1".to_owned());
                }
                args.interval = Duration::from_millis(ms);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("grpc_health_server: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("grpc_health_server: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("grpc_health_server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The failure switch of every component, by name.
type Switches = BTreeMap<&'static str, Arc<AtomicBool>>;

fn registry(args: &Args) -> Result<(Health, Switches), health::BuildError> {
    let mut switches = Switches::new();
    let mut builder = Health::builder()
        .interval(args.interval)
        .timeout(args.interval);
    for (name, probes, critical) in [
        ("database", Probes::READINESS, true),
        ("worker", Probes::ALL, true),
        ("cache", Probes::READINESS, false),
    ] {
        let failing = Arc::new(AtomicBool::new(false));
        switches.insert(name, Arc::clone(&failing));
        let check = check_fn(name, move || {
            let failing = failing.load(Ordering::Acquire);
            async move {
                if failing {
                    CheckOutcome::down("failed on request")
                } else {
                    CheckOutcome::up()
                }
            }
        })
        .probes(probes);
        builder = if critical {
            builder.check(check)
        } else {
            builder.check(check.non_critical())
        };
    }
    Ok((builder.build()?, switches))
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let (health, switches) = registry(&args)?;
    health.refresh_now().await;
    let shutdown = CancellationToken::new();
    let refresher = health.spawn_refresher(shutdown.clone().cancelled_owned());

    let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.bind, args.port))
        .await
        .map_err(|e| format!("binding {}:{}: {e}", args.bind, args.port))?;
    let addr = listener.local_addr()?;

    let server = tonic::transport::Server::builder()
        .add_service(HealthService::new(health, shutdown.clone()).into_server())
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            shutdown.clone().cancelled_owned(),
        );
    // Calls wait in the listen backlog until the server runs, just below.
    println!("listening on {addr}");
    std::io::stdout().flush()?;

    // Commands come from a plain thread: a blocking read of stdin has no place on the runtime.
    let commands = shutdown.clone();
    std::thread::spawn(move || read_commands(&switches, &commands));
    tokio::spawn(stop_on_signal(shutdown.clone()));
    server.await?;
    refresher.await?;
    println!("stopped");
    Ok(())
}

/// Applies `fail NAME` and `recover NAME` lines until stdin ends, then starts the shutdown.
fn read_commands(switches: &Switches, shutdown: &CancellationToken) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            [verb @ ("fail" | "recover"), name] => match switches.get(name) {
                Some(switch) => {
                    switch.store(*verb == "fail", Ordering::Release);
                    format!("ok {verb} {name}")
                }
                None => format!(
                    "error: unknown component {name:?} (known: {})",
                    switches.keys().copied().collect::<Vec<_>>().join(", ")
                ),
            },
            _ => format!("error: expected `fail NAME` or `recover NAME`, got {line:?}"),
        };
        println!("{answer}");
        let _ = std::io::stdout().flush();
    }
    shutdown.cancel();
}

/// Starts the shutdown on SIGTERM or Ctrl-C.
async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    shutdown.cancel();
}
