//! The in-lab client: this very binary, run inside the network namespace of a container attached
//! to the lab's overlay network, so that its requests travel the lab network as a real client's
//! would (the host has no route into the lab).
//!
//! The controller side ([`Client`]) starts it with `nsenter --net` into the client container's
//! namespace and `unshare --mount`, in a private mount namespace where `/etc/resolv.conf` names
//! Docker's embedded DNS server (127.0.0.11), so `tasks.<service>` resolves to every healthy task
//! on every node, as for any container on the network. It joins the lab's client cgroup first, so
//! tear-down finds it whatever happens to the run.
//!
//! The in-lab side (`xtask lab-client`) has two modes: `get` (one request per URL, one JSON line
//! per answer) and `load` (continuous requests spread over what `tasks.<service>` resolves to,
//! re-resolved every 200 ms as a DNS round-robin client does; a JSON progress line every second;
//! stops when its stdin closes and prints a final JSON line with the failures).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use super::cgroup;
use super::names::ROOT;

/// The cgroup every in-lab client process joins.
pub const CGROUP: &str = "aslab-client";

/// How often the load re-resolves the service name.
const RESOLVE_EVERY: Duration = Duration::from_millis(200);

/// At most this many failures are kept for the report.
const KEEP_ERRORS: usize = 20;

/// `xtask lab-client`: runs inside the lab (started by the lab task, not by hand).
#[derive(Debug, Args)]
pub struct Options {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// One GET per URL; one JSON line per answer.
    Get {
        /// Full URLs.
        urls: Vec<String>,
    },
    /// Continuous GET /accounts/{id} spread over every address of `target` until stdin closes.
    Load {
        /// `host:port`, e.g. `tasks.accountservice:6767`.
        target: String,
        /// Request loops running at once.
        #[arg(long, default_value_t = 4)]
        workers: usize,
    },
    /// Resolves `host:port` once and prints the addresses as a JSON array.
    Resolve {
        /// `host:port`.
        target: String,
    },
}

/// One answer of `get`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    /// The URL asked.
    pub url: String,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// The body, or the error when no answer came.
    pub body: String,
}

/// A progress or final line of `load`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadReport {
    /// Requests answered 200 with the right account.
    pub ok: u64,
    /// Every other outcome: refused, reset, timed out, wrong status or body, no address.
    pub failed: u64,
    /// The addresses the name resolved to last.
    pub backends: Vec<String>,
    /// Successful answers by the instance that gave them (`servedBy`).
    pub served_by: BTreeMap<String, u64>,
    /// The first failures (only in the final line).
    pub errors: Vec<String>,
    /// Answers by outcome: `200`, `503` (with `Retry-After`), any other status, or `no answer`.
    #[serde(default)]
    pub outcomes: BTreeMap<String, u64>,
    /// The 99th percentile of the time to an answer (or to the error), in milliseconds.
    #[serde(default)]
    pub p99_ms: u64,
    /// The slowest answer (or error), in milliseconds.
    #[serde(default)]
    pub max_ms: u64,
    /// Whether this is the final line.
    pub done: bool,
}

/// Runs the in-lab side.
pub fn run(options: &Options) -> Result<()> {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        // A fresh connection per request: a pooled connection to a replica that has just
        // drained would fail for reasons of the client's making.
        .pool_max_idle_per_host(0)
        .build()?;
    let mut out = std::io::stdout().lock();
    match &options.mode {
        Mode::Get { urls } => {
            for url in urls {
                let answer = match http.get(url).send() {
                    Ok(response) => Answer {
                        url: url.clone(),
                        status: Some(response.status().as_u16()),
                        body: response.text().unwrap_or_default(),
                    },
                    Err(err) => Answer {
                        url: url.clone(),
                        status: None,
                        body: format!("{err:#}"),
                    },
                };
                writeln!(out, "{}", serde_json::to_string(&answer)?)?;
            }
            Ok(())
        }
        Mode::Resolve { target } => {
            let addrs = resolve(target)?;
            writeln!(out, "{}", serde_json::to_string(&addrs)?)?;
            Ok(())
        }
        Mode::Load { target, workers } => load(&http, target, *workers, &mut out),
    }
}

fn resolve(target: &str) -> Result<Vec<String>> {
    let mut addrs: Vec<String> = target
        .to_socket_addrs()
        .with_context(|| format!("resolving {target}"))?
        .map(|addr| addr.to_string())
        .collect();
    addrs.sort();
    Ok(addrs)
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    ok: AtomicU64,
    failed: AtomicU64,
    backends: RwLock<Vec<SocketAddr>>,
    served_by: Mutex<BTreeMap<String, u64>>,
    errors: Mutex<Vec<String>>,
    outcomes: Mutex<BTreeMap<String, u64>>,
    /// Answers by whole milliseconds taken, the last bucket holding everything slower: a fixed
    /// size whatever the load's length.
    latency: Mutex<Vec<u64>>,
}

/// Latency buckets: 1 ms each up to the client's timeout.
const LATENCY_BUCKETS: usize = 5_001;

impl Shared {
    fn fail(&self, started: Instant, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut errors) = self.errors.lock()
            && errors.len() < KEEP_ERRORS
        {
            errors.push(format!(
                "at {:.2} s: {what}",
                started.elapsed().as_secs_f64()
            ));
        }
    }

    /// Counts one outcome and how long it took.
    fn record(&self, outcome: &str, took: Duration) {
        if let Ok(mut outcomes) = self.outcomes.lock() {
            *outcomes.entry(outcome.to_owned()).or_default() += 1;
        }
        if let Ok(mut latency) = self.latency.lock() {
            if latency.is_empty() {
                latency.resize(LATENCY_BUCKETS, 0);
            }
            let bucket = usize::try_from(took.as_millis())
                .unwrap_or(usize::MAX)
                .min(LATENCY_BUCKETS - 1);
            latency[bucket] += 1;
        }
    }

    /// The 99th percentile and the slowest, in milliseconds.
    fn latency(&self) -> (u64, u64) {
        let Ok(latency) = self.latency.lock() else {
            return (0, 0);
        };
        percentile_and_max(&latency)
    }

    fn report(&self, done: bool) -> LoadReport {
        let (p99_ms, max_ms) = self.latency();
        LoadReport {
            outcomes: self
                .outcomes
                .lock()
                .map(|map| map.clone())
                .unwrap_or_default(),
            p99_ms,
            max_ms,
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            backends: self
                .backends
                .read()
                .map(|list| list.iter().map(SocketAddr::to_string).collect())
                .unwrap_or_default(),
            served_by: self
                .served_by
                .lock()
                .map(|map| map.clone())
                .unwrap_or_default(),
            errors: if done {
                self.errors
                    .lock()
                    .map(|errors| errors.clone())
                    .unwrap_or_default()
            } else {
                Vec::new()
            },
            done,
        }
    }
}

/// The 99th percentile and the largest bucket in use of a histogram of 1 ms buckets.
fn percentile_and_max(buckets: &[u64]) -> (u64, u64) {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return (0, 0);
    }
    let rank = total - total / 100;
    let mut seen = 0;
    let mut p99 = 0;
    for (ms, count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= rank {
            p99 = ms as u64;
            break;
        }
    }
    let max = buckets.iter().rposition(|count| *count > 0).unwrap_or(0) as u64;
    (p99, max)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Account {
    id: String,
    served_by: String,
}

fn load(
    http: &reqwest::blocking::Client,
    target: &str,
    workers: usize,
    out: &mut impl Write,
) -> Result<()> {
    let started = Instant::now();
    let shared = Arc::new(Shared::default());
    let first: Vec<SocketAddr> = target.to_socket_addrs()?.collect();
    if first.is_empty() {
        bail!("{target} resolves to nothing");
    }
    *shared.backends.write().map_err(|_| anyhow!("poisoned"))? = first;

    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let resolver = Arc::clone(&shared);
    let name = target.to_owned();
    threads.push(std::thread::spawn(move || {
        while !resolver.stop.load(Ordering::Relaxed) {
            // A failed lookup keeps the last answer, as a client library would.
            if let Ok(addrs) = name.to_socket_addrs() {
                let mut addrs: Vec<SocketAddr> = addrs.collect();
                addrs.sort();
                if !addrs.is_empty()
                    && let Ok(mut backends) = resolver.backends.write()
                {
                    *backends = addrs;
                }
            }
            std::thread::sleep(RESOLVE_EVERY);
        }
    }));
    for worker in 0..workers {
        let shared = Arc::clone(&shared);
        let http = http.clone();
        threads.push(std::thread::spawn(move || {
            let mut sent = worker;
            while !shared.stop.load(Ordering::Relaxed) {
                sent += 1;
                let backend = shared
                    .backends
                    .read()
                    .ok()
                    .and_then(|list| list.get(sent % list.len().max(1)).copied());
                let Some(backend) = backend else {
                    shared.fail(started, "no address".to_owned());
                    continue;
                };
                let id = 10_000 + sent % 100;
                let url = format!("http://{backend}/accounts/{id}");
                let asked = Instant::now();
                let result = ask(&http, &url, id);
                let outcome = match &result {
                    Ok(_) => "200".to_owned(),
                    Err(err) => match err.downcast_ref::<Refused>() {
                        Some(refused) => refused.outcome(),
                        None => "no answer".to_owned(),
                    },
                };
                shared.record(&outcome, asked.elapsed());
                match result {
                    Ok(served_by) => {
                        shared.ok.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut map) = shared.served_by.lock() {
                            *map.entry(served_by).or_default() += 1;
                        }
                    }
                    Err(err) => shared.fail(started, format!("{url}: {err:#}")),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }));
    }
    let reporter = Arc::clone(&shared);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    // Stdin closing (or any line) is the signal to stop.
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        let _ = tx.send(());
    });
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
        rx.recv_timeout(Duration::from_secs(1))
    {
        writeln!(out, "{}", serde_json::to_string(&reporter.report(false))?)?;
        out.flush()?;
    }
    shared.stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow!("a load thread panicked"))?;
    }
    writeln!(out, "{}", serde_json::to_string(&shared.report(true))?)?;
    out.flush()?;
    Ok(())
}

/// An answer other than 200: its status, whether it said when to retry, and its body.
#[derive(Debug)]
struct Refused {
    status: u16,
    retry_after: bool,
    body: String,
}

impl Refused {
    /// `503` with `Retry-After`, `503 without Retry-After`, or the status.
    fn outcome(&self) -> String {
        match (self.status, self.retry_after) {
            (503, true) => "503".to_owned(),
            (503, false) => "503 without Retry-After".to_owned(),
            (status, _) => status.to_string(),
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.body)
    }
}

impl std::error::Error for Refused {}

/// One request; the instance that answered on success.
fn ask(http: &reqwest::blocking::Client, url: &str, id: usize) -> Result<String> {
    let response = http.get(url).send()?;
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    let body = response.text()?;
    if status != 200 {
        return Err(Refused {
            status,
            retry_after,
            body,
        }
        .into());
    }
    let account: Account = serde_json::from_str(&body).with_context(|| body.clone())?;
    if account.id != id.to_string() {
        bail!("asked for {id}, got {}", account.id);
    }
    Ok(account.served_by)
}

/// The controller's handle on the in-lab client: which network namespace it runs in.
#[derive(Debug, Clone)]
pub struct Client {
    /// `/proc/<pid>/ns/net` of the client container's process.
    netns: PathBuf,
}

impl Client {
    /// A client in the network namespace of process `pid` (the client container's).
    pub fn new(pid: u32) -> Result<Self> {
        std::fs::write(
            PathBuf::from(ROOT).join("resolv.conf"),
            "nameserver 127.0.0.11\noptions ndots:0\n",
        )?;
        cgroup::create(CGROUP)?;
        Ok(Self {
            netns: PathBuf::from(format!("/proc/{pid}/ns/net")),
        })
    }

    fn command(&self, args: &[&str]) -> Result<Command> {
        let procs = cgroup::tracking_root().join(CGROUP).join("cgroup.procs");
        let exe = std::env::current_exe().context("locating xtask's own binary")?;
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.netns.display()))
            .args(["--", "unshare", "--mount", "--", "sh", "-c"])
            .arg(
                "set -e; echo $$ > \"$1\"; mount --bind \"$2\" /etc/resolv.conf; shift 2; exec \"$@\"",
            )
            .arg("sh")
            .arg(procs)
            .arg(PathBuf::from(ROOT).join("resolv.conf"))
            .arg(exe)
            .arg("lab-client")
            .args(args);
        Ok(command)
    }

    /// GETs each URL from inside the lab.
    pub fn get(&self, urls: &[String]) -> Result<Vec<Answer>> {
        let mut args = vec!["get"];
        args.extend(urls.iter().map(String::as_str));
        let output = self.command(&args)?.stdin(Stdio::null()).output()?;
        if !output.status.success() {
            bail!(
                "the in-lab client failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).with_context(|| line.to_owned()))
            .collect()
    }

    /// What `target` (`host:port`) resolves to inside the lab.
    pub fn resolve(&self, target: &str) -> Result<Vec<String>> {
        let output = self
            .command(&["resolve", target])?
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            bail!(
                "resolving {target} in the lab failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(serde_json::from_slice(&output.stdout)?)
    }

    /// Starts continuous load on `target` from inside the lab.
    pub fn load(&self, target: &str, workers: usize) -> Result<Load> {
        let workers = workers.to_string();
        let mut child = self
            .command(&["load", target, "--workers", &workers])?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("no stdout")?;
        let latest = Arc::new(Mutex::new(None::<LoadReport>));
        let writer = Arc::clone(&latest);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(report) = serde_json::from_str::<LoadReport>(&line)
                    && let Ok(mut latest) = writer.lock()
                {
                    *latest = Some(report);
                }
            }
        });
        Ok(Load {
            child,
            stdin,
            latest,
            reader: Some(reader),
        })
    }
}

/// Load running inside the lab until [`Load::finish`].
pub struct Load {
    child: Child,
    stdin: Option<ChildStdin>,
    latest: Arc<Mutex<Option<LoadReport>>>,
    reader: Option<JoinHandle<()>>,
}

impl Load {
    /// The latest progress line (None before the first).
    pub fn progress(&self) -> Option<LoadReport> {
        self.latest.lock().ok().and_then(|latest| latest.clone())
    }

    /// Stops the load and returns its final report.
    pub fn finish(mut self) -> Result<LoadReport> {
        drop(self.stdin.take());
        let status = self.child.wait()?;
        if let Some(reader) = self.reader.take() {
            reader
                .join()
                .map_err(|_| anyhow!("the report reader panicked"))?;
        }
        let report = self
            .progress()
            .context("the load client reported nothing")?;
        if !status.success() || !report.done {
            bail!("the load client ended with {status} before its final report");
        }
        Ok(report)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if self.reader.is_some() {
            // Started by us; its PID is ours to kill.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_report_survives_its_json_line() {
        let report = LoadReport {
            ok: 3,
            failed: 1,
            backends: vec!["10.0.1.5:6767".to_owned()],
            served_by: BTreeMap::from([("10.0.1.5".to_owned(), 3)]),
            errors: vec!["at 1.00 s: refused".to_owned()],
            done: true,
            outcomes: BTreeMap::from([("200".to_owned(), 3), ("503".to_owned(), 1)]),
            p99_ms: 12,
            max_ms: 40,
        };
        let line = serde_json::to_string(&report).unwrap();
        assert!(!line.contains('\n'));
        let back: LoadReport = serde_json::from_str(&line).unwrap();
        assert_eq!(back.ok, 3);
        assert_eq!(back.failed, 1);
        assert_eq!(back.served_by["10.0.1.5"], 3);
        assert_eq!(back.outcomes["503"], 1);
        assert_eq!((back.p99_ms, back.max_ms), (12, 40));
        assert!(back.done);
    }

    #[test]
    fn the_99th_percentile_of_a_histogram_leaves_out_the_slowest_hundredth() {
        let mut buckets = vec![0; LATENCY_BUCKETS];
        buckets[3] = 99;
        buckets[900] = 1;
        assert_eq!(percentile_and_max(&buckets), (3, 900));
        buckets[900] = 2;
        assert_eq!(percentile_and_max(&buckets), (900, 900));
        assert_eq!(percentile_and_max(&vec![0; LATENCY_BUCKETS]), (0, 0));
    }

    #[test]
    fn resolving_an_address_gives_it_back() {
        assert_eq!(resolve("127.0.0.1:6767").unwrap(), ["127.0.0.1:6767"]);
    }
}
