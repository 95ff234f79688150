//! Thousands of open keep-alive connections: their cost in server memory, and `/health` from one
//! more client meanwhile. Each has been served one `GET /health`, so the server holds it fully set
//! up (task, buffers) as a real client pool leaves it; they open in batches of 500, each answered
//! before the next, so the server's accept backlog never overflows.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use super::results::Held;
use crate::server::Server;

/// Bound on every connect, write and read.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens `count` keep-alive connections to `server`, reads the server's memory and times one
/// more `/health`, then closes them all.
pub fn hold(server: &mut Server, count: usize) -> Result<Held> {
    server.ensure_alive()?;
    let (started, name) = (Instant::now(), server.name.clone());
    let streams = open(server, count)?;
    let opening = started.elapsed().as_secs_f64();
    server.ensure_alive()?;
    let (memory, started) = (server.memory()?, Instant::now());
    let one_more = connect(server.addr).and_then(|mut stream| expect_ok(&mut stream));
    one_more.with_context(|| format!("/health with {count} connections open to {name}"))?;
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

/// Opens `count` keep-alive connections to `server`, each served one `GET /health`, in batches
/// of 500.
pub fn open(server: &Server, count: usize) -> Result<Vec<TcpStream>> {
    let name = &server.name;
    let mut streams = Vec::with_capacity(count);
    for first in (0..count).step_by(500) {
        for index in first..count.min(first + 500) {
            let stream = connect(server.addr);
            streams.push(stream.with_context(|| format!("connection {index} to {name}"))?);
        }
        for (index, stream) in streams.iter_mut().enumerate().skip(first) {
            expect_ok(stream).with_context(|| format!("held connection {index} to {name}"))?;
        }
    }
    Ok(streams)
}

/// A new connection with `GET /health` sent on it.
fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n")?;
    Ok(stream)
}

/// Reads the answer's first bytes and checks it is a 200. One read takes all of a `/health`
/// answer in practice; a rest left unread does not matter on a connection that is only held.
fn expect_ok(stream: &mut TcpStream) -> Result<()> {
    let mut buffer = [0_u8; 1024];
    let read = stream.read(&mut buffer)?;
    let shown = String::from_utf8_lossy(&buffer[..read.min(80)]);
    let ok = buffer[..read].starts_with(b"HTTP/1.1 200");
    ensure!(ok, "expected 200, got {shown:?}");
    Ok(())
}
