//! The fleet view as the scenarios read it: `GET /health/fleet` asked of one replica from inside
//! the lab, each listed replica matched to its Swarm task (by address) for its node and slot, and
//! a watch that samples the view while a fault plays out to catch two replicas it counts as
//! serving (`UP`, not superseded) in the same slot, and for how long.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use serde::Deserialize;

use super::client::Client;
use super::node::Node;
use super::swarm;
use crate::docker::{MANAGEMENT_PORT, Task};

/// The service's own health interval (its default): the fleet view asks the peers at most once
/// per interval, so it may be this much behind.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// `--peers` for the service: every task of it, looked up in Swarm's DNS each round, asked on
/// its management port (the image's 6768), where `/health/history` is.
pub const PEERS: &str = "ACCOUNTSERVICE_PEERS=tasks.accountservice:6768";

/// The answer of `GET /health/fleet`, reduced to what the scenarios check.
#[derive(Debug, Clone, Deserialize)]
pub struct View {
    /// The replica that answered.
    pub instance: String,
    /// Every replica it knows of.
    pub replicas: Vec<Replica>,
}

/// One replica in the fleet view.
#[derive(Debug, Clone, Deserialize)]
pub struct Replica {
    /// `host:port` as listed by DNS.
    pub address: String,
    /// `UP`, `DOWN`, ..., `SUPERSEDED`, `UNREACHABLE`, `GONE`.
    pub status: String,
    /// While `SUPERSEDED`: the address of the replica the view found holding its slot.
    #[serde(default, rename = "supersededBy")]
    pub superseded_by: Option<String>,
    /// While superseded, unreachable or gone: the status of its last answer.
    #[serde(default, rename = "lastStatus")]
    pub last_status: Option<String>,
    /// Why it is not `UP`, from its last answer (a shared outage names itself here).
    #[serde(default)]
    pub reason: Option<String>,
    /// The version from its last answer (`0.1.0`, or `0.1.0+<release>` with a release label).
    #[serde(default)]
    pub version: Option<String>,
}

impl Replica {
    /// The address without the port.
    pub fn ip(&self) -> &str {
        self.address
            .rsplit_once(':')
            .map_or(self.address.as_str(), |(ip, _)| ip)
    }
}

impl View {
    /// The status the view gives the replica at `ip`, if listed.
    pub fn status_of(&self, ip: &str) -> Option<&str> {
        self.replicas
            .iter()
            .find(|replica| replica.ip() == ip)
            .map(|replica| replica.status.as_str())
    }

    /// Slots (`slots`: the manager's, by address, not what the replicas claim) held by more
    /// than one replica the view shows `UP` and not superseded, with their addresses.
    pub fn duplicate_slots(&self, slots: &BTreeMap<String, u64>) -> BTreeMap<u64, Vec<String>> {
        let mut claims: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for replica in self
            .replicas
            .iter()
            .filter(|replica| replica.status == "UP" && replica.superseded_by.is_none())
        {
            if let Some(slot) = slots.get(replica.ip()) {
                claims
                    .entry(*slot)
                    .or_default()
                    .push(replica.address.clone());
            }
        }
        claims.retain(|_, addresses| addresses.len() > 1);
        claims
    }

    /// Replicas shown superseded while they answer `UP`: without the slot rule, each would be
    /// a second replica `UP` in its slot.
    pub fn superseded_up(&self) -> Vec<&str> {
        self.replicas
            .iter()
            .filter(|replica| {
                replica.superseded_by.is_some() && replica.last_status.as_deref() == Some("UP")
            })
            .map(|replica| replica.address.as_str())
            .collect()
    }
}

/// Asks the replica at `ip` for its fleet view, on its management port.
pub fn ask(client: &Client, ip: &str) -> Result<View> {
    let url = format!("http://{ip}:{MANAGEMENT_PORT}/health/fleet");
    let answer = client
        .get(std::slice::from_ref(&url))?
        .into_iter()
        .next()
        .context("no answer")?;
    ensure!(
        answer.status == Some(200),
        "{url} answered {:?}: {}",
        answer.status,
        answer.body
    );
    serde_json::from_str(&answer.body).with_context(|| format!("fleet JSON {}", answer.body))
}

/// Task address to slot, for every task the manager knows (stale and replaced ones included).
/// Swarm gives the address of a task it shut down to a later one, of any slot: where tasks
/// share an address, the one meant to run has it, whatever order the history lists them in.
pub fn slots(tasks: &[Task]) -> BTreeMap<String, u64> {
    let (live, past): (Vec<&Task>, Vec<&Task>) = tasks
        .iter()
        .partition(|task| task.desired_state == "running");
    past.into_iter()
        .chain(live)
        .filter_map(|task| Some((task.addresses.first()?.clone(), task.slot?)))
        .collect()
}

/// What a [`Watch`] saw.
#[derive(Debug, Default, Clone)]
pub struct Watched {
    /// Views read.
    pub samples: u64,
    /// Views that could not be read (a lookup or the observer timing out).
    pub unread: u64,
    /// Views showing a slot claimed by two replicas `UP`.
    pub duplicate_samples: u64,
    /// When the first and the last such view was asked for.
    pub first_duplicate: Option<Instant>,
    /// See `first_duplicate`.
    pub last_duplicate: Option<Instant>,
    /// The longest run of such views: from the first to the last view of a run asked for
    /// without a clean view in between (an unreadable view does not end a run).
    pub longest_run: Duration,
    /// When the current run started; `None` after a clean view.
    run_started: Option<Instant>,
    /// Views showing a replica superseded while it answers `UP` (a duplicate the slot rule
    /// resolved), and when the first and last were asked for.
    pub superseded_samples: u64,
    /// See `superseded_samples`.
    pub first_superseded: Option<Instant>,
    /// See `superseded_samples`.
    pub last_superseded: Option<Instant>,
    /// The first duplicate seen, for the report.
    pub example: Option<String>,
}

/// Samples the fleet view of one replica in the background until stopped.
pub struct Watch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Watched>>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    /// Starts sampling the view of the replica at `observer` every 100 ms, asking the first node
    /// (the manager) for the tasks' slots.
    pub fn start(client: &Client, observer: &str) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Watched::default()));
        let client = client.clone();
        let observer = observer.to_owned();
        let manager = Node::new(1)?;
        let mut slots = self::slots(&swarm::tasks(&manager.sh)?);
        let (thread_stop, thread_seen) = (Arc::clone(&stop), Arc::clone(&seen));
        let thread = std::thread::spawn(move || {
            while !thread_stop.load(Ordering::Relaxed) {
                let sampled = Instant::now();
                // Without a leader the manager cannot list tasks; the slots known stay true.
                if let Ok(tasks) = swarm::tasks(&manager.sh) {
                    slots.extend(self::slots(&tasks));
                }
                let view = ask(&client, &observer);
                let Ok(mut seen) = thread_seen.lock() else {
                    return;
                };
                match view {
                    Ok(view) => {
                        seen.samples += 1;
                        if !view.superseded_up().is_empty() {
                            seen.superseded_samples += 1;
                            seen.first_superseded.get_or_insert(sampled);
                            seen.last_superseded = Some(sampled);
                        }
                        let duplicates = view.duplicate_slots(&slots);
                        if duplicates.is_empty() {
                            seen.run_started = None;
                        } else {
                            seen.duplicate_samples += 1;
                            seen.first_duplicate.get_or_insert(sampled);
                            seen.last_duplicate = Some(sampled);
                            let run =
                                sampled.duration_since(*seen.run_started.get_or_insert(sampled));
                            seen.longest_run = seen.longest_run.max(run);
                            seen.example.get_or_insert_with(|| {
                                format!("slots claimed twice: {duplicates:?}")
                            });
                        }
                    }
                    Err(_) => seen.unread += 1,
                }
                drop(seen);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Ok(Self {
            stop,
            seen,
            thread: Some(thread),
        })
    }

    /// Stops sampling and returns what was seen.
    pub fn finish(mut self) -> Result<Watched> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .map_err(|_| anyhow!("the fleet watch panicked"))?;
        }
        let seen = self
            .seen
            .lock()
            .map_err(|_| anyhow!("the fleet watch poisoned its record"))?;
        Ok(seen.clone())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The addresses of tasks, as a set.
pub fn ips(tasks: &[Task]) -> BTreeSet<String> {
    tasks
        .iter()
        .filter_map(|task| task.addresses.first().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(replicas: &[(&str, &str)]) -> View {
        View {
            instance: "10.0.1.4".to_owned(),
            replicas: replicas
                .iter()
                .map(|(address, status)| Replica {
                    address: (*address).to_owned(),
                    status: (*status).to_owned(),
                    version: None,
                    reason: None,
                    superseded_by: None,
                    last_status: None,
                })
                .collect(),
        }
    }

    fn task(desired_state: &str, slot: u64, address: &str) -> Task {
        Task {
            id: format!("task-{slot}-{address}-{desired_state}"),
            desired_state: desired_state.to_owned(),
            state: desired_state.to_owned(),
            error: None,
            message: String::new(),
            container_id: None,
            host_port: None,
            management_host_port: None,
            image: "accountservice:latest".to_owned(),
            node_id: None,
            slot: Some(slot),
            addresses: vec![address.to_owned()],
        }
    }

    #[test]
    fn an_address_given_again_belongs_to_the_task_meant_to_run_in_any_order() {
        let old = task("shutdown", 3, "10.0.1.6");
        let new = task("running", 1, "10.0.1.6");
        let other = task("running", 2, "10.0.1.10");
        for tasks in [
            vec![old.clone(), new.clone(), other.clone()],
            vec![new.clone(), old.clone(), other.clone()],
        ] {
            assert_eq!(
                slots(&tasks),
                BTreeMap::from([("10.0.1.10".to_owned(), 2), ("10.0.1.6".to_owned(), 1)])
            );
        }
        // A task shut down keeps its slot where nothing took its address.
        assert_eq!(slots(&[old]), BTreeMap::from([("10.0.1.6".to_owned(), 3)]));
    }

    #[test]
    fn two_replicas_up_in_one_slot_are_a_duplicate_but_a_gone_one_is_not() {
        let slots = BTreeMap::from([
            ("10.0.1.4".to_owned(), 1),
            ("10.0.1.5".to_owned(), 2),
            ("10.0.1.9".to_owned(), 2),
        ]);
        let both_up = view(&[
            ("10.0.1.4:6768", "UP"),
            ("10.0.1.5:6768", "UP"),
            ("10.0.1.9:6768", "UP"),
        ]);
        assert_eq!(
            both_up.duplicate_slots(&slots),
            BTreeMap::from([(
                2,
                vec!["10.0.1.5:6768".to_owned(), "10.0.1.9:6768".to_owned()]
            )])
        );
        let one_gone = view(&[
            ("10.0.1.4:6768", "UP"),
            ("10.0.1.5:6768", "GONE"),
            ("10.0.1.9:6768", "UP"),
        ]);
        assert!(one_gone.duplicate_slots(&slots).is_empty());
        let mut superseded = both_up.clone();
        superseded.replicas[1].status = "SUPERSEDED".to_owned();
        superseded.replicas[1].superseded_by = Some("10.0.1.9:6768".to_owned());
        superseded.replicas[1].last_status = Some("UP".to_owned());
        assert!(superseded.duplicate_slots(&slots).is_empty());
        assert_eq!(superseded.superseded_up(), ["10.0.1.5:6768"]);
        assert!(both_up.superseded_up().is_empty());
        assert_eq!(one_gone.status_of("10.0.1.5"), Some("GONE"));
        assert_eq!(one_gone.status_of("10.0.1.7"), None);
    }

    #[test]
    fn a_fleet_answer_parses_with_the_fields_it_has() {
        let view: View = serde_json::from_str(
            r#"{"instance":"10.0.1.4","peers":"tasks.accountservice:6768","found":3,
                "replicas":[{"address":"10.0.1.5:6768","instance":"10.0.1.5","status":"UP",
                             "version":"0.1.0+v2","since":"2026-12-02T14:00:00Z"},
                            {"address":"10.0.1.6:6768","instance":"10.0.1.6","status":"SUPERSEDED",
                             "slot":2,"supersededBy":"10.0.1.5:6768"}],"transitions":[]}"#,
        )
        .unwrap();
        assert_eq!(view.replicas[0].ip(), "10.0.1.5");
        assert_eq!(view.replicas[0].status, "UP");
        assert_eq!(view.replicas[0].version.as_deref(), Some("0.1.0+v2"));
        assert_eq!(view.replicas[0].superseded_by, None);
        assert_eq!(
            view.replicas[1].superseded_by.as_deref(),
            Some("10.0.1.5:6768")
        );
    }
}
