//! A minimal, fast HTTP server that answers every request with `200 {"status":"UP"}`: the
//! peer for timing the probe, so the measurement is the probe and not a slow server.
//!
//! ```text
//! cargo run --release -p healthchecker --example ok_server -- 127.0.0.1:6767
//! hyperfine -N --warmup 50 --runs 2000 ./empty \
//!     'target/x86_64-unknown-linux-gnu/probe/healthchecker -port=6767'
//! ```

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{\"status\":\"UP\"}";

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6767".to_owned());
    let listener = TcpListener::bind(&addr)?;
    eprintln!("answering 200 on {addr}");
    for stream in listener.incoming() {
        // One bad client must not stop the server.
        match stream {
            Ok(stream) => {
                let _ = serve(stream);
            }
            Err(error) => eprintln!("accept: {error}"),
        }
    }
    Ok(())
}

/// Reads the request head, then answers and closes. Reading the whole head first means the
/// close is a clean FIN, not a reset.
fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0; 4096];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
        match stream.read(&mut buf[len..])? {
            0 => return Ok(()),
            read => len += read,
        }
    }
    stream.write_all(RESPONSE)
}
