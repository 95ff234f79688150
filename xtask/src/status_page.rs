//! `cargo xtask status-page`: the fleet status page rendered by a real browser, from a running
//! fleet of real service processes.
//!
//! Three processes on 127.0.0.1, run as the image runs them: a public port and a management
//! port each, with `--peers` listing the three management ports. The fleet view, the status page,
//! the switches and `/metrics` are asked on the management ports (the public port answers 404
//! there). One replica is forced unhealthy through its testability switch, one is stopped (it
//! vanishes). Headless Chromium (Debian's, installed when missing) loads `/status` from the
//! remaining healthy one; the checks are made on the DOM after the page's scripts ran
//! (`--dump-dom`), not on the HTML source: one row per replica with its status in words and its
//! reason, the transitions across replicas, no error banner. A screenshot and the fleet JSON of
//! the run are kept under `target/status-page/`.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use xshell::{Shell, cmd};

use crate::browser::{Chromium, Dom};
use crate::project::Project;
use crate::server::Server;
use crate::wait::{self, Poll};

/// Replicas in the fleet.
const REPLICAS: usize = 3;

/// The replicas' health interval: how often the view may ask the peers.
const INTERVAL: &str = "0.5";

/// How long the service may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the fleet view may take to show a change.
const SHOW_DEADLINE: Duration = Duration::from_secs(20);

/// Virtual time the page gets before its DOM is dumped: its first fetch and render.
const RENDER_BUDGET: Duration = Duration::from_secs(5);

/// The screenshot's window.
const WINDOW: (u32, u32) = (1280, 720);

/// Builds the service, starts the fleet, renders the page, checks it, keeps the screenshot.
pub fn run(sh: &Shell, project: &Project) -> Result<()> {
    let started = Instant::now();
    let browser = Chromium::ensure(sh)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    cmd!(
        sh,
        "{cargo} build --package accountservice --bin accountservice"
    )
    .run()
    .context("building accountservice")?;
    let binary = project.target_dir.join("debug").join("accountservice");
    let out = project.target_dir.join("status-page");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let dir = tempfile::Builder::new()
        .prefix("accountservice-status-page-")
        .tempdir()
        .context("creating a temporary directory")?;
    let addresses = free_addresses(2 * REPLICAS)?;
    let (public, management) = addresses.split_at(REPLICAS);
    let peers = management
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut fleet = Vec::new();
    for (index, (public, management)) in public.iter().zip(management).enumerate() {
        fleet.push(start_replica(
            &binary,
            dir.path(),
            index,
            *public,
            *management,
            &peers,
        )?);
    }
    let [viewer, vanishing, failing]: [Replica; REPLICAS] = fleet
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected {REPLICAS} replicas"))?;
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()?;
    let get = |address: SocketAddr, path: &str| -> Result<(u16, String)> {
        let response = client.get(format!("http://{address}{path}")).send()?;
        Ok((response.status().as_u16(), response.text()?))
    };
    println!(
        "fleet: {REPLICAS} on 127.0.0.1 with a management port each, each with --peers {peers}"
    );
    let (status, _) = get(viewer.server.addr, "/health/fleet")?;
    ensure!(
        status == 404,
        "the public port answered {status} to /health/fleet, not 404"
    );

    let all_up = wait::until(
        "every replica UP in the fleet view",
        SHOW_DEADLINE,
        Duration::from_millis(200),
        || {
            let view = fleet_view(&get, viewer.management)?;
            let up = view["counts"]["UP"].as_u64().unwrap_or(0);
            Ok(if up == REPLICAS as u64 {
                Poll::Ready(view)
            } else {
                Poll::Pending(view.to_string())
            })
        },
    )?;
    println!("fleet: {} UP", all_up["counts"]["UP"]);
    measure_cost(&client, viewer.management, viewer.server.pid())?;

    let (status, body) = get(failing.management, "/testability/healthy/false")?;
    ensure!(status == 200, "forcing unhealthy answered {status}: {body}");
    let vanished_addr = vanishing.management;
    vanishing.server.stop(Duration::from_secs(10), true)?;
    println!(
        "fleet: {} forced unhealthy, {} stopped",
        failing.management, vanished_addr
    );

    let view = wait::until(
        "the fleet view to show one UP, one DOWN and one UNREACHABLE",
        SHOW_DEADLINE,
        Duration::from_millis(200),
        || {
            let view = fleet_view(&get, viewer.management)?;
            let seen = |address: SocketAddr| {
                replica(&view, address).map(|r| r["status"].as_str().unwrap_or("").to_owned())
            };
            let statuses = [
                seen(viewer.management),
                seen(failing.management),
                seen(vanished_addr),
            ];
            Ok(match statuses {
                [Some(a), Some(b), Some(c)] if a == "UP" && b == "DOWN" && c == "UNREACHABLE" => {
                    Poll::Ready(view)
                }
                _ => Poll::Pending(format!("{statuses:?}")),
            })
        },
    )?;
    let down = replica(&view, failing.management).context("the failing replica")?;
    ensure!(
        down["reason"] == "testability: forced unhealthy",
        "the DOWN replica's reason: {down}"
    );
    let gone = replica(&view, vanished_addr).context("the vanished replica")?;
    ensure!(
        gone["lastStatus"] == "UP",
        "the vanished replica keeps its last state: {gone}"
    );
    // `GET /health` on the public port, the original's contract.
    let (status, health) = get(viewer.server.addr, "/health")?;
    ensure!(
        status == 200,
        "the viewer's own health changed with its peers': {status} {health}"
    );
    let pretty = serde_json::to_string_pretty(&view)?;
    std::fs::write(out.join("fleet.json"), &pretty)?;

    let url = format!("http://{}/status", viewer.management);
    let rendered = Instant::now();
    let dom = wait::until(
        "the rendered status page to show the fleet",
        SHOW_DEADLINE * 2,
        Duration::from_millis(200),
        || {
            let dom = Dom(browser.dump_dom(&url, RENDER_BUDGET)?);
            Ok(
                match check_page(&dom, viewer.management, failing.management, vanished_addr) {
                    Ok(()) => Poll::Ready(dom),
                    Err(error) => Poll::Pending(format!("{error:#}")),
                },
            )
        },
    )?;
    println!(
        "browser: the rendered DOM shows the fleet ({:.1} s)",
        rendered.elapsed().as_secs_f64()
    );
    std::fs::write(out.join("status.html"), &dom.0)?;
    let screenshot = out.join("status.png");
    browser.screenshot(&url, &screenshot, WINDOW, RENDER_BUDGET)?;
    println!(
        "browser: screenshot {} ({} bytes)",
        relative(project, &screenshot).display(),
        std::fs::metadata(&screenshot)?.len()
    );

    // Stopped while forced unhealthy, the service drains and then exits 3 so that an
    // orchestrator's record says why; anything else is a failed shutdown.
    let status = failing.server.stop(Duration::from_secs(10), false)?;
    ensure!(
        status.code() == Some(3),
        "the replica stopped while forced unhealthy exited with {status}, not 3"
    );
    viewer.server.stop(Duration::from_secs(10), true)?;
    println!(
        "status-page: passed in {:.1} s; fleet JSON, DOM and screenshot in {}",
        started.elapsed().as_secs_f64(),
        relative(project, &out).display()
    );
    Ok(())
}

/// Viewers at once in the cost measurement.
const VIEWERS: usize = 1000;

/// How long the viewers keep asking.
const VIEWING: Duration = Duration::from_secs(5);

/// Prints what the view costs with every replica up: `/health/fleet` latency when it asks the
/// peers and when it answers from its cache, against `/health/live` on the same replica as the
/// yardstick; then the rounds of asking the peers while [`VIEWERS`] ask at once (counted by the
/// viewer's own `/health/history` requests in its `/metrics`, since it is one of its peers and
/// nobody else asks it). Only the bound on rounds is checked; the timings, and the viewer's
/// resident memory before and with the viewers' connections open, are printed.
fn measure_cost(client: &reqwest::blocking::Client, viewer: SocketAddr, pid: u32) -> Result<()> {
    let interval = Duration::from_secs_f64(INTERVAL.parse()?);
    let time = |path: &str| -> Result<Duration> {
        let started = Instant::now();
        let response = client.get(format!("http://{viewer}{path}")).send()?;
        ensure!(
            response.status() == 200,
            "{path} answered {}",
            response.status()
        );
        response.bytes()?;
        Ok(started.elapsed())
    };
    let mut asking = Vec::new();
    for _ in 0..10 {
        // Paced past the interval, so each request starts a round of asking the 3 peers.
        std::thread::sleep(interval + Duration::from_millis(50));
        asking.push(time("/health/fleet")?);
    }
    time("/health/fleet")?;
    let mut cached = Vec::new();
    let mut yardstick = Vec::new();
    for _ in 0..200 {
        cached.push(time("/health/fleet")?);
        yardstick.push(time("/health/live")?);
    }
    let (ask50, ask_max) = percentiles(&mut asking);
    let (cache50, cache_max) = percentiles(&mut cached);
    let (live50, live_max) = percentiles(&mut yardstick);
    let ratio = |d: Duration| d.as_secs_f64() / live50.as_secs_f64();
    println!(
        "cost: /health/fleet with {REPLICAS} replicas, asking them: median {:.2} ms (max {:.2} ms), {:.1}x /health/live",
        ms(ask50),
        ms(ask_max),
        ratio(ask50)
    );
    println!(
        "cost: /health/fleet from the cache: median {:.2} ms (max {:.2} ms), {:.1}x /health/live (median {:.2} ms, max {:.2} ms)",
        ms(cache50),
        ms(cache_max),
        ratio(cache50),
        ms(live50),
        ms(live_max)
    );

    let rounds_before = history_requests(client, viewer)?;
    let rss_before = resident_kib(pid)?;
    let mut rss_viewing = 0;
    let started = Instant::now();
    let viewers = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(VIEWERS)
        .build()?;
    let url = format!("http://{viewer}/health/fleet");
    let results: Vec<Result<u64>> = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| -> Result<u64> {
            let mut peak = 0;
            while started.elapsed() < VIEWING {
                peak = peak.max(resident_kib(pid)?);
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(peak)
        });
        let handles: Vec<_> = (0..VIEWERS)
            .map(|_| {
                let viewers = &viewers;
                let url = &url;
                scope.spawn(move || -> Result<u64> {
                    let mut answered = 0;
                    while started.elapsed() < VIEWING {
                        let response = viewers.get(url).send()?;
                        ensure!(
                            response.status() == 200,
                            "a viewer got {}",
                            response.status()
                        );
                        response.bytes()?;
                        answered += 1;
                    }
                    Ok(answered)
                })
            })
            .collect();
        let results = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a viewer panicked")))
            })
            .collect();
        match sampler.join() {
            Ok(Ok(peak)) => rss_viewing = peak,
            Ok(Err(error)) => println!("cost: the viewer's memory could not be read: {error:#}"),
            Err(_) => println!("cost: the memory sampler panicked"),
        }
        results
    });
    let elapsed = started.elapsed();
    let mut answered = 0;
    for result in results {
        answered += result?;
    }
    let rounds = history_requests(client, viewer)? - rounds_before;
    let intervals = elapsed.as_secs_f64() / interval.as_secs_f64();
    println!(
        "cost: {VIEWERS} concurrent viewers for {:.1} s ({answered} views, {:.0}/s): {rounds} rounds of asking the peers in {intervals:.1} intervals ({:.2} per interval)",
        elapsed.as_secs_f64(),
        answered as f64 / elapsed.as_secs_f64(),
        rounds as f64 / intervals
    );
    println!(
        "cost: the viewer's resident memory {:.1} MiB before, at most {:.1} MiB with the viewers' connections open",
        rss_before as f64 / 1024.0,
        rss_viewing as f64 / 1024.0
    );
    ensure!(
        rounds as f64 <= intervals.ceil() + 1.0,
        "{rounds} rounds in {intervals:.1} intervals: more than one per interval"
    );
    Ok(())
}

/// The resident memory of process `pid`, in KiB (`VmRSS` in `/proc/<pid>/status`).
fn resident_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))
}

/// `/health/history` requests the replica has answered, from its `/metrics`.
fn history_requests(client: &reqwest::blocking::Client, address: SocketAddr) -> Result<u64> {
    let text = client
        .get(format!("http://{address}/metrics"))
        .send()?
        .text()?;
    let mut total = 0.0;
    for line in text.lines() {
        if line.starts_with("http_requests_total{") && line.contains("route=\"/health/history\"") {
            let value = line.rsplit(' ').next().unwrap_or("0");
            total += value
                .parse::<f64>()
                .with_context(|| format!("metric line {line:?}"))?;
        }
    }
    Ok(total as u64)
}

/// The median and the largest of `samples`.
fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let median = samples.get(samples.len() / 2).copied().unwrap_or_default();
    let max = samples.last().copied().unwrap_or_default();
    (median, max)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The checks on the rendered page.
fn check_page(dom: &Dom, up: SocketAddr, down: SocketAddr, vanished: SocketAddr) -> Result<()> {
    let replicas = dom.by_id("replicas").context("no replicas table")?;
    let rows = Dom::rows(replicas);
    let row = |address: SocketAddr| {
        rows.iter()
            .find(|row| row.contains(&format!("data-address=\"{address}\"")))
            .copied()
            .with_context(|| format!("no row for {address}: {}", Dom::text(replicas)))
    };
    for (address, status, words) in [
        (up, "UP", vec!["up"]),
        (down, "DOWN", vec!["down", "testability: forced unhealthy"]),
        (
            vanished,
            "UNREACHABLE",
            vec!["unreachable", "last answer: up"],
        ),
    ] {
        let row = row(address)?;
        ensure!(
            row.contains(&format!("data-status=\"{status}\"")),
            "{address} is not shown {status}: {}",
            Dom::text(row)
        );
        let text = Dom::text(row);
        for word in words {
            ensure!(
                text.contains(word),
                "{address}'s row lacks {word:?}: {text}"
            );
        }
        ensure!(
            row.contains(&format!("badge s-{status}")),
            "{address}'s status has no colour of its own: {row}"
        );
    }
    ensure!(
        rows.len() == REPLICAS,
        "{} rows: {}",
        rows.len(),
        Dom::text(replicas)
    );
    let transitions = dom.by_id("transitions").context("no transitions table")?;
    let text = Dom::text(transitions);
    ensure!(
        text.contains("forced unhealthy"),
        "the transitions do not show the forced failure: {text}"
    );
    let problem = dom.by_id("problem").context("no problem banner")?;
    ensure!(
        Dom::text(problem).is_empty(),
        "the page shows a problem: {}",
        Dom::text(problem)
    );
    Ok(())
}

fn fleet_view(
    get: &impl Fn(SocketAddr, &str) -> Result<(u16, String)>,
    address: SocketAddr,
) -> Result<Value> {
    let (status, body) = get(address, "/health/fleet")?;
    if status != 200 {
        bail!("/health/fleet answered {status}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("fleet JSON: {body}"))
}

fn replica(view: &Value, address: SocketAddr) -> Option<&Value> {
    view["replicas"]
        .as_array()?
        .iter()
        .find(|r| r["address"] == address.to_string())
}

/// A replica of the fleet: its process (which knows its public address) and its management
/// port's address, where the fleet view, the page, the switches and `/metrics` are.
struct Replica {
    server: Server,
    management: SocketAddr,
}

/// Starts one replica on `public` and `management` with its own database and the whole fleet's
/// management ports as peers, as the image runs it.
fn start_replica(
    binary: &Path,
    dir: &Path,
    index: usize,
    public: SocketAddr,
    management: SocketAddr,
    peers: &str,
) -> Result<Replica> {
    let mut command = Command::new(binary);
    command
        .current_dir(dir)
        .args(["--bind", "127.0.0.1", "--port", &public.port().to_string()])
        .args(["--management-port", &management.port().to_string()])
        .arg("--db-path")
        .arg(dir.join(format!("replica-{index}.db")))
        .args([
            "--seed-accounts",
            "10",
            "--testability",
            "--health-interval",
            INTERVAL,
            "--peers",
            peers,
            "--log-filter",
            "warn,accountservice::startup=info",
        ]);
    let server = Server::spawn(&format!("replica {index}"), command, START_TIMEOUT)?;
    Ok(Replica { server, management })
}

/// `count` loopback addresses with ports free right now: the peers must be known before the
/// replicas start, so port 0 cannot be used. Another process could take one in between; the
/// replica then fails to bind and the task fails saying so.
fn free_addresses(count: usize) -> Result<Vec<SocketAddr>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()
        .context("finding free ports")?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().context("a bound address"))
        .collect()
}

fn relative(project: &Project, path: &Path) -> PathBuf {
    path.strip_prefix(&project.root)
        .map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
}
