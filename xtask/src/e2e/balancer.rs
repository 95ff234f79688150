//! Continuous load on a Swarm service, spread over the tasks Swarm itself would route to.
//!
//! The routing mesh and service VIPs need IPVS, which this kernel lacks, so the load cannot go
//! through Swarm's own balancer. It does the same job from the host instead: a poller follows
//! Swarm's task states (every 200 ms) and the workers send each request to one of the tasks that
//! are meant to run and are running, that is healthy (Swarm marks a task with a health check
//! `running` only once it is healthy). That is the set Swarm's DNS and VIPs use: a task about to
//! be stopped leaves it first, and Swarm waits 2 s for that to spread before it sends SIGTERM.
//! Requests are never retried: every failure counts.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use xshell::Shell;

use super::http::Client;
use crate::docker;

/// How often the poller reads the task states.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// Pause between two requests of one worker, to keep the load steady without starving the
/// engine's own work (health probes, task starts) on two cores.
const PAUSE: Duration = Duration::from_millis(5);

/// At most this many failures are kept for the report.
const KEEP_ERRORS: usize = 20;

/// Requests counted so far by a load generator (this one, or the one behind HAProxy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Answered 2xx with the account asked for.
    pub ok: u64,
    /// Anything else: refused, timed out, wrong status or body, or nowhere to send it.
    pub failed: u64,
}

impl Counts {
    /// Requests between `earlier` and `self`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            ok: self.ok - earlier.ok,
            failed: self.failed - earlier.failed,
        }
    }
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    ok: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<String>>,
    backends: RwLock<Vec<u16>>,
}

impl Shared {
    fn record_failure(&self, started: Instant, what: String) {
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

    fn backends(&self) -> Vec<u16> {
        self.backends
            .read()
            .map(|backends| backends.clone())
            .unwrap_or_default()
    }
}

/// Load running in background threads until [`Load::finish`] or drop.
pub struct Load {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<Result<()>>>,
}

/// Serving tasks' host ports, sorted.
fn serving_ports(sh: &Shell, service: &str) -> Result<Vec<u16>> {
    let mut ports: Vec<u16> = docker::service_tasks(sh, service)?
        .iter()
        .filter(|task| task.is_serving())
        .filter_map(|task| task.host_port)
        .collect();
    ports.sort_unstable();
    Ok(ports)
}

impl Load {
    /// Starts the poller and `workers` request loops against `service`.
    pub fn start(service: &str, workers: usize) -> Result<Self> {
        let started = Instant::now();
        let shared = Arc::new(Shared::default());
        let sh = Shell::new()?;
        let initial = serving_ports(&sh, service)?;
        println!("    balancer: serving tasks on ports {initial:?}");
        *shared
            .backends
            .write()
            .map_err(|_| anyhow!("backend list poisoned"))? = initial;

        let mut threads = Vec::new();
        let poller_shared = Arc::clone(&shared);
        let service = service.to_owned();
        threads.push(std::thread::spawn(move || -> Result<()> {
            let sh = Shell::new()?;
            while !poller_shared.stop.load(Ordering::Relaxed) {
                // A failed look keeps the last known set, as a balancer would.
                if let Ok(ports) = serving_ports(&sh, &service)
                    && ports != poller_shared.backends()
                {
                    println!(
                        "    balancer: at {:.2} s serving tasks on ports {ports:?}",
                        started.elapsed().as_secs_f64()
                    );
                    *poller_shared
                        .backends
                        .write()
                        .map_err(|_| anyhow!("backend list poisoned"))? = ports;
                }
                std::thread::sleep(POLL_EVERY);
            }
            Ok(())
        }));

        for worker in 0..workers {
            let shared = Arc::clone(&shared);
            let client = Client::new(Duration::from_secs(5))?;
            threads.push(std::thread::spawn(move || -> Result<()> {
                let mut sent: u32 = 0;
                while !shared.stop.load(Ordering::Relaxed) {
                    let backends = shared.backends();
                    sent = sent.wrapping_add(1);
                    let index = usize::try_from(sent)? + worker;
                    match backends.get(index % backends.len().max(1)) {
                        None => shared.record_failure(started, "no serving task".to_owned()),
                        Some(&port) => {
                            let id = 10_000 + (sent + u32::try_from(worker)?) % 100;
                            match client.account(port, id) {
                                Ok(_) => {
                                    shared.ok.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(err) => shared.record_failure(started, format!("{err:#}")),
                            }
                        }
                    }
                    std::thread::sleep(PAUSE);
                }
                Ok(())
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

    /// Stops the load and returns the totals and the first failures.
    pub fn finish(mut self) -> Result<(Counts, Vec<String>)> {
        self.stop()?;
        let errors = self
            .shared
            .errors
            .lock()
            .map(|errors| errors.clone())
            .map_err(|_| anyhow!("error list poisoned"))?;
        Ok((self.counts(), errors))
    }

    fn stop(&mut self) -> Result<()> {
        self.shared.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            thread
                .join()
                .map_err(|_| anyhow!("a load thread panicked"))?
                .context("a load thread failed")?;
        }
        Ok(())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            eprintln!("e2e load: {err:#}");
        }
    }
}
