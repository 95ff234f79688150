//! Benchmark: one healthy probe against a fast local 200 server, compared with a static
//! do-nothing binary run in the same session, interleaved so that a noisy, shared machine
//! weighs on both alike. Prints numbers; asserts nothing.
//!
//! ```text
//! # the probe, built as shipped, and the floor: `fn main() {}` with the same profile/flags
//! RUSTFLAGS='-C target-feature=+crt-static' cargo build -p healthchecker --profile probe \
//!     --target x86_64-unknown-linux-gnu
//! cargo run --release -p healthchecker --example probe_bench -- compare \
//!     target/x86_64-unknown-linux-gnu/probe/healthchecker /tmp/empty/.../empty 3000
//!
//! # or serve for hyperfine (which runs the commands one after the other, not interleaved)
//! cargo run --release -p healthchecker --example probe_bench -- serve 127.0.0.1:16767
//! hyperfine -N --warmup 100 --runs 3000 ./empty \
//!     'target/x86_64-unknown-linux-gnu/probe/healthchecker -port=16767'
//! ```

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{\"status\":\"UP\"}";
const USAGE: &str = "usage: probe_bench serve [ADDR] | probe_bench compare PROBE FLOOR [RUNS]";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve"] => announce_and_serve("127.0.0.1:16767"),
        ["serve", addr] => announce_and_serve(addr),
        ["compare", probe, floor] => compare(probe, floor, 3000),
        ["compare", probe, floor, runs] => compare(probe, floor, runs.parse().context("RUNS")?),
        _ => bail!(USAGE),
    }
}

fn announce_and_serve(addr: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("bind {addr}"))?;
    eprintln!("answering 200 on {}", listener.local_addr()?);
    serve(&listener)
}

/// Answers 200 to every connection, one at a time, forever.
fn serve(listener: &TcpListener) -> anyhow::Result<()> {
    for stream in listener.incoming() {
        // One bad client must not stop the server.
        match stream {
            Ok(stream) => {
                let _ = answer(stream);
            }
            Err(error) => eprintln!("accept: {error}"),
        }
    }
    Ok(())
}

/// Reads the request head, then answers and closes. Reading the whole head first makes the
/// close a clean FIN, not a reset.
fn answer(mut stream: TcpStream) -> std::io::Result<()> {
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

/// Times `runs` probes and `runs` floor runs, alternating, and prints both and their ratio.
fn compare(probe: &str, floor: &str, runs: usize) -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || serve(&listener));
    let port = format!("-port={}", addr.port());

    let check = Command::new(probe)
        .arg(&port)
        .output()
        .context("run the probe")?;
    if !check.status.success() {
        bail!("the probe is not healthy against the bench server: {check:?}");
    }
    let mut probe_times = Vec::with_capacity(runs);
    let mut floor_times = Vec::with_capacity(runs);
    for run in 0..runs + runs / 10 {
        let probe_time = time(Command::new(probe).arg(&port))?;
        let floor_time = time(&mut Command::new(floor))?;
        // The first tenth warms caches and is not counted.
        if run >= runs / 10 {
            probe_times.push(probe_time);
            floor_times.push(floor_time);
        }
    }
    let floor = Summary::of(floor_times);
    let probe = Summary::of(probe_times);
    println!("server {addr}, {runs} runs each, interleaved");
    println!(
        "{:<10} {:>9} {:>9} {:>9} {:>9}",
        "", "min", "p10", "median", "p90"
    );
    floor.print("floor");
    probe.print("probe");
    println!(
        "ratio probe/floor: median {:.2}, min {:.2}",
        probe.median.as_secs_f64() / floor.median.as_secs_f64(),
        probe.min.as_secs_f64() / floor.min.as_secs_f64()
    );
    Ok(())
}

fn time(command: &mut Command) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("spawn")?;
    let elapsed = start.elapsed();
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(elapsed)
}

struct Summary {
    min: Duration,
    p10: Duration,
    median: Duration,
    p90: Duration,
}

impl Summary {
    fn of(mut times: Vec<Duration>) -> Summary {
        times.sort_unstable();
        let at = |fraction: f64| times[((times.len() - 1) as f64 * fraction) as usize];
        Summary {
            min: at(0.0),
            p10: at(0.1),
            median: at(0.5),
            p90: at(0.9),
        }
    }

    fn print(&self, name: &str) {
        let ms = |duration: Duration| format!("{:.3} ms", duration.as_secs_f64() * 1e3);
        println!(
            "{name:<10} {:>9} {:>9} {:>9} {:>9}",
            ms(self.min),
            ms(self.p10),
            ms(self.median),
            ms(self.p90)
        );
    }
}
