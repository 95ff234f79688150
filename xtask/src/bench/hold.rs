//! Thousands of open keep-alive connections at once: what they cost a server in memory, and how
//! long `/health` takes from one more client meanwhile (issue 7: memory stays bounded under
//! 10,000 concurrent connections).
//!
//! Each held connection has been served one `GET /health`, so the server has set it up
//! completely (task, buffers) and holds it as an idle keep-alive connection, the state a
//! real client pool leaves behind. They are opened in batches, each batch answered before the
//! next, so the server's accept backlog never overflows.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use super::procfs::Memory;
use crate::server::Server;

/// Connections opened before their answers are read.
const BATCH: usize = 500;
/// Bound on every connect, write and read.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST: &[u8] = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n";

/// What holding the connections cost.
#[derive(Debug, Clone, Copy)]
pub struct Held {
    /// Connections held open at once (the `/health` client comes on top).
    pub connections: usize,
    /// The server's memory while they were open.
    pub memory: Memory,
    /// How long opening and serving them took.
    pub opening: Duration,
    /// One `GET /health` on a new connection while they were open: connect to last byte.
    pub health: Duration,
}

/// Opens `count` keep-alive connections to `server`, each served one `/health`, reads the
/// server's memory and times one more `/health`, then closes them all.
pub fn hold(server: &mut Server, count: usize) -> Result<Held> {
    server.ensure_alive()?;
    let started = Instant::now();
    let mut streams = Vec::with_capacity(count);
    while streams.len() < count {
        let batch = BATCH.min(count - streams.len());
        let first = streams.len();
        for _ in 0..batch {
            let mut stream =
                TcpStream::connect_timeout(&server.addr, IO_TIMEOUT).with_context(|| {
                    format!(
                        "opening connection {} to {}",
                        streams.len() + 1,
                        server.name
                    )
                })?;
            stream.set_read_timeout(Some(IO_TIMEOUT))?;
            stream.set_write_timeout(Some(IO_TIMEOUT))?;
            stream.write_all(REQUEST)?;
            streams.push(stream);
        }
        for (index, stream) in streams[first..].iter_mut().enumerate() {
            expect_ok(stream).with_context(|| {
                format!(
                    "/health on held connection {} to {}",
                    first + index + 1,
                    server.name
                )
            })?;
        }
    }
    let opening = started.elapsed();
    server.ensure_alive()?;
    let memory = server.memory()?;
    let health = time_health(server.addr)
        .with_context(|| format!("/health with {count} connections open to {}", server.name))?;
    drop(streams);
    server.ensure_alive()?;
    Ok(Held {
        connections: count,
        memory,
        opening,
        health,
    })
}

/// Reads one answer's first bytes and checks it is a 200. `/health` answers are a few hundred
/// bytes, so one read takes the whole of it in practice; what is left is never read, which
/// does not matter on a connection that is only held.
fn expect_ok(stream: &mut TcpStream) -> Result<()> {
    let mut buffer = [0_u8; 1024];
    let read = stream.read(&mut buffer)?;
    ensure!(
        buffer[..read].starts_with(b"HTTP/1.1 200"),
        "expected 200, got {:?}",
        String::from_utf8_lossy(&buffer[..read.min(80)])
    );
    Ok(())
}

/// `GET /health` on a new connection, connect to answer.
fn time_health(addr: SocketAddr) -> Result<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(REQUEST)?;
    expect_ok(&mut stream)?;
    Ok(started.elapsed())
}
