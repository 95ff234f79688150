//! Thousands of open keep-alive connections at once: what they cost a server in memory, and how
//! long `/health` takes from one more client meanwhile.
//!
//! Each held connection has been served one `GET /health`, so the server has set it up
//! completely (task, buffers) and holds it as an idle keep-alive connection, the state a real
//! client pool leaves behind. They are opened in batches of 500, each batch answered before the
//! next, so the server's accept backlog never overflows.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use super::results::Held;
use crate::server::Server;

/// Bound on every connect, write and read.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST: &[u8] = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n";

/// Opens `count` keep-alive connections to `server`, each served one `/health`, reads the
/// server's memory and times one more `/health`, then closes them all.
pub fn hold(server: &mut Server, count: usize) -> Result<Held> {
    server.ensure_alive()?;
    let started = Instant::now();
    let mut streams = Vec::with_capacity(count);
    while streams.len() < count {
        let first = streams.len();
        for index in first..count.min(first + 500) {
            let stream = connect(server.addr)
                .with_context(|| format!("connection {} to {}", index + 1, server.name))?;
            streams.push(stream);
        }
        for (index, stream) in streams.iter_mut().enumerate().skip(first) {
            expect_ok(stream).with_context(|| {
                format!(
                    "/health on held connection {} to {}",
                    index + 1,
                    server.name
                )
            })?;
        }
    }
    let opening = started.elapsed().as_secs_f64();
    server.ensure_alive()?;
    let memory = server.memory()?;
    let started = Instant::now();
    connect(server.addr)
        .and_then(|mut stream| expect_ok(&mut stream))
        .with_context(|| format!("/health with {count} connections open to {}", server.name))?;
    let health = started.elapsed().as_secs_f64();
    drop(streams);
    server.ensure_alive()?;
    Ok(Held {
        connections: count,
        memory,
        opening,
        health,
    })
}

/// A new connection with `GET /health` sent on it.
fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(REQUEST)?;
    Ok(stream)
}

/// Reads one answer's first bytes and checks it is a 200. `/health` answers are a few hundred
/// bytes, so one read takes the whole of it in practice; what is left is never read, which does
/// not matter on a connection that is only held.
fn expect_ok(stream: &mut TcpStream) -> Result<()> {
    let mut buffer = [0_u8; 1024];
    let read = stream.read(&mut buffer)?;
    let head = &buffer[..read];
    ensure!(
        head.starts_with(b"HTTP/1.1 200"),
        "expected 200, got {:?}",
        String::from_utf8_lossy(&head[..read.min(80)])
    );
    Ok(())
}
