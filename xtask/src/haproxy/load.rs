//! Continuous keep-alive load through HAProxy: a few client threads, each holding one
//! keep-alive connection and sending `GET /accounts/{id}` in a loop. Every answer that is not a
//! 2xx with the right account, and every transport error or timeout, counts as a failure.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};

/// Pause between two requests of one client: steady load that leaves CPU for the instances,
/// HAProxy and everything else on two shared cores.
const PAUSE: Duration = Duration::from_millis(2);

/// Longest a request may take through HAProxy before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// At most this many failures are kept for the report.
const KEEP_ERRORS: usize = 20;

pub use crate::e2e::balancer::Counts;

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    ok: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<String>>,
    kinds: Mutex<BTreeMap<String, u64>>,
}

/// Why one request failed.
struct Failure {
    /// A short class for the tally: the status, `timeout`, `connect`, `transport`, `body`.
    kind: String,
    /// The whole story for the report.
    detail: String,
}

impl From<reqwest::Error> for Failure {
    fn from(error: reqwest::Error) -> Self {
        let kind = if error.is_timeout() {
            "timeout"
        } else if error.is_connect() {
            "connect"
        } else {
            "transport"
        };
        Self {
            kind: kind.to_owned(),
            detail: format!("{:#}", anyhow::Error::from(error)),
        }
    }
}

/// What [`Load::finish`] reports.
pub struct Outcome {
    /// The totals.
    pub counts: Counts,
    /// Failures by kind (status, `timeout`, `connect`, `transport`, `body`).
    pub kinds: BTreeMap<String, u64>,
    /// The first failures, in full.
    pub errors: Vec<String>,
}

/// Load running in background threads until [`Load::finish`] or drop.
pub struct Load {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `clients` request loops against `base` (`http://127.0.0.1:PORT`).
    pub fn start(base: &str, clients: usize) -> Result<Self> {
        let started = Instant::now();
        let shared = Arc::new(Shared::default());
        let mut threads = Vec::new();
        for client_index in 0..clients {
            // One idle connection per client: each loop really reuses one keep-alive connection.
            let client = reqwest::blocking::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .pool_max_idle_per_host(1)
                .no_proxy()
                .build()
                .context("building the HTTP client")?;
            let shared = Arc::clone(&shared);
            let base = base.to_owned();
            threads.push(std::thread::spawn(move || {
                let mut sent: u64 = 0;
                while !shared.stop.load(Ordering::Relaxed) {
                    let id = 10_000 + (sent * 7 + client_index as u64) % 100;
                    sent += 1;
                    match get_account(&client, &base, id) {
                        Ok(()) => {
                            shared.ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(failure) => {
                            shared.failed.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut kinds) = shared.kinds.lock() {
                                *kinds.entry(failure.kind).or_default() += 1;
                            }
                            if let Ok(mut errors) = shared.errors.lock()
                                && errors.len() < KEEP_ERRORS
                            {
                                errors.push(format!(
                                    "at {:.3} s, client {client_index}: GET /accounts/{id}: {}",
                                    started.elapsed().as_secs_f64(),
                                    failure.detail
                                ));
                            }
                        }
                    }
                    std::thread::sleep(PAUSE);
                }
            }));
        }
        Ok(Self { shared, threads })
    }

    /// Requests so far.
    pub fn counts(&self) -> Counts {
        Counts {
            ok: self.shared.ok.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
        }
    }

    /// Stops the load and returns the totals, the failures by kind and the first ones.
    pub fn finish(mut self) -> Result<Outcome> {
        self.stop()?;
        let errors = self
            .shared
            .errors
            .lock()
            .map(|errors| errors.clone())
            .map_err(|_| anyhow!("error list poisoned"))?;
        let kinds = self
            .shared
            .kinds
            .lock()
            .map(|kinds| kinds.clone())
            .map_err(|_| anyhow!("failure tally poisoned"))?;
        Ok(Outcome {
            counts: self.counts(),
            kinds,
            errors,
        })
    }

    fn stop(&mut self) -> Result<()> {
        self.shared.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            thread
                .join()
                .map_err(|_| anyhow!("a load thread panicked"))?;
        }
        Ok(())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("haproxy load: {error:#}");
        }
    }
}

/// One `GET /accounts/{id}`: Ok only for a 2xx carrying that account.
fn get_account(client: &reqwest::blocking::Client, base: &str, id: u64) -> Result<(), Failure> {
    let response = client.get(format!("{base}/accounts/{id}")).send()?;
    let status = response.status();
    let body = response.text()?;
    // One line per failure in the report, whatever the body's layout.
    let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if !status.is_success() {
        return Err(Failure {
            kind: status.to_string(),
            detail: format!("answered {status}: {body:.200}"),
        });
    }
    if !body.contains(&format!("\"id\":\"{id}\"")) {
        return Err(Failure {
            kind: "body".to_owned(),
            detail: format!("answered {status} with another account: {body:.200}"),
        });
    }
    Ok(())
}
