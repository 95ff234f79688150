//! A rolling update as the fleet view shows it: the view sampled from a replica all through the
//! update, each live replica's version in each sample, and the checks that the versions changed
//! replica by replica (old and new side by side, one more replica on the new version at a time,
//! every replica on it at the end).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail, ensure};

use super::client::Client;
use super::fleet;

/// How often the view is sampled: well under the seconds one replica's turn takes, so every
/// step of the update is seen.
pub const EVERY: Duration = Duration::from_millis(250);

/// Statuses of replicas the view lists but that no longer answer: not running any version.
const NOT_LIVE: [&str; 2] = ["GONE", "UNREACHABLE"];

/// One fleet view.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was asked for.
    pub at: Instant,
    /// The replica that answered.
    pub observer: String,
    /// Each live replica (address without port): its version and status.
    pub live: BTreeMap<String, (String, String)>,
}

impl Sample {
    fn from_view(at: Instant, view: &fleet::View) -> Self {
        let live = view
            .replicas
            .iter()
            .filter(|replica| !NOT_LIVE.contains(&replica.status.as_str()))
            .map(|replica| {
                let version = replica.version.clone().unwrap_or_else(|| "?".to_owned());
                (replica.ip().to_owned(), (version, replica.status.clone()))
            })
            .collect();
        Self {
            at,
            observer: view.instance.clone(),
            live,
        }
    }

    /// Live replicas reporting `version`.
    pub fn count(&self, version: &str) -> usize {
        self.live.values().filter(|(v, _)| v == version).count()
    }

    /// The one version every live replica reports, if they agree.
    pub fn single_version(&self) -> Option<&str> {
        let versions: BTreeSet<&str> = self.live.values().map(|(v, _)| v.as_str()).collect();
        match versions.len() {
            1 => versions.into_iter().next(),
            _ => None,
        }
    }

    /// `address version[ status]` for each live replica; the status only when not `UP`.
    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .live
            .iter()
            .map(|(address, (version, status))| {
                if status == "UP" {
                    format!("{address} {version}")
                } else {
                    format!("{address} {version} {status}")
                }
            })
            .collect();
        parts.join(", ")
    }
}

/// Samples the fleet view in the background until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    unread: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Asks `target` (a replica's address, or the service's DNS name, so that whichever replica
    /// is running answers) for its fleet view every [`EVERY`].
    pub fn start(client: &Client, target: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let unread = Arc::new(AtomicU64::new(0));
        let (client, target) = (client.clone(), target.to_owned());
        let (thread_stop, thread_samples, thread_unread) =
            (Arc::clone(&stop), Arc::clone(&samples), Arc::clone(&unread));
        let thread = std::thread::spawn(move || {
            while !thread_stop.load(Ordering::Relaxed) {
                let at = Instant::now();
                match fleet::ask(&client, &target) {
                    Ok(view) => {
                        let sample = Sample::from_view(at, &view);
                        let Ok(mut samples) = thread_samples.lock() else {
                            return;
                        };
                        samples.push(sample);
                    }
                    // A replica stopping under the request; the next sample asks again.
                    Err(_) => {
                        thread_unread.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(EVERY.saturating_sub(at.elapsed()));
            }
        });
        Self {
            stop,
            samples,
            unread,
            thread: Some(thread),
        }
    }

    /// The latest sample, if any.
    pub fn latest(&self) -> Option<Sample> {
        self.samples.lock().ok().and_then(|s| s.last().cloned())
    }

    /// Stops sampling; returns the samples and how many views could not be read.
    pub fn finish(mut self) -> Result<(Vec<Sample>, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .map_err(|_| anyhow!("the fleet sampler panicked"))?;
        }
        let samples = self
            .samples
            .lock()
            .map_err(|_| anyhow!("the fleet sampler poisoned its record"))?
            .clone();
        Ok((samples, self.unread.load(Ordering::Relaxed)))
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the samples showed of an update from `old` to `new` on `replicas` replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// For k = 1..=replicas: the first sample with at least k live replicas on the new version.
    pub new_reached: Vec<usize>,
    /// For k = 1..=replicas: the first sample with at most `replicas - k` on the old version.
    pub old_left: Vec<usize>,
    /// The first sample with both versions live.
    pub first_mixed: usize,
}

/// Checks that the samples show a rolling update from `old` to `new`: first every replica on
/// `old`; then old and new side by side; the count on `new` reaching each of 1..=replicas in a
/// different sample (one replica at a time, never several at once), as the count on `old` falls
/// through each of replicas-1..=0; and at the end every replica, and only those, on `new`. No
/// other version may appear.
pub fn check(samples: &[Sample], old: &str, new: &str, replicas: usize) -> Result<Progress> {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        bail!("the fleet view was never read");
    };
    ensure!(
        first.count(old) == replicas && first.live.len() == replicas,
        "before the update the view showed {}, expected {replicas} replicas on {old}",
        first.describe()
    );
    for (index, sample) in samples.iter().enumerate() {
        if let Some((address, (version, _))) =
            sample.live.iter().find(|(_, (v, _))| v != old && v != new)
        {
            bail!("sample {index}: {address} reports {version}, neither {old} nor {new}");
        }
    }
    let first_where = |what: &str, holds: &dyn Fn(&Sample) -> bool| {
        samples
            .iter()
            .position(holds)
            .ok_or_else(|| anyhow!("the fleet view never showed {what}"))
    };
    let first_mixed = first_where("both versions at once", &|s| {
        s.count(old) > 0 && s.count(new) > 0
    })?;
    let mut new_reached = Vec::new();
    let mut old_left = Vec::new();
    for k in 1..=replicas {
        new_reached.push(first_where(&format!("{k} replica(s) on {new}"), &|s| {
            s.count(new) >= k
        })?);
        old_left.push(first_where(
            &format!("at most {} replica(s) on {old}", replicas - k),
            &|s| s.count(old) <= replicas - k,
        )?);
    }
    for (what, steps) in [("on the new", &new_reached), ("off the old", &old_left)] {
        ensure!(
            steps.windows(2).all(|pair| pair[0] < pair[1]),
            "replicas moved {what} version several at once: the first samples with 1..={replicas} \
             moved are {steps:?} of {}",
            samples.len()
        );
    }
    ensure!(
        last.count(new) == replicas && last.live.len() == replicas,
        "at the end the view showed {}, expected {replicas} replicas on {new}",
        last.describe()
    );
    Ok(Progress {
        new_reached,
        old_left,
        first_mixed,
    })
}

/// Prints the samples whose live replicas differ from the one before, with their time from
/// `origin` (negative before it), the replica that answered and each replica's version.
pub fn print_timeline(samples: &[Sample], origin: Instant, old: &str, new: &str) {
    let mut previous: Option<&BTreeMap<String, (String, String)>> = None;
    for sample in samples {
        if previous == Some(&sample.live) {
            continue;
        }
        previous = Some(&sample.live);
        let offset = if sample.at >= origin {
            format!("+{:.2}", sample.at.duration_since(origin).as_secs_f64())
        } else {
            format!("-{:.2}", origin.duration_since(sample.at).as_secs_f64())
        };
        println!(
            "      {offset} s  {} old, {} new  (asked {}): {}",
            sample.count(old),
            sample.count(new),
            sample.observer,
            sample.describe()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "0.1.0";
    const NEW: &str = "0.1.0+lab-next";

    /// A sample at `ms` after `origin`: the replicas named in `old` live on OLD, those in `new`
    /// on NEW (names separated by spaces), each `UP` unless written `name:STATUS`.
    fn sample(origin: Instant, ms: u64, old: &str, new: &str) -> Sample {
        let replicas = |names: &str, version: &str| -> Vec<(String, (String, String))> {
            names
                .split_whitespace()
                .map(|name| {
                    let (address, status) = name.split_once(':').unwrap_or((name, "UP"));
                    (address.to_owned(), (version.to_owned(), status.to_owned()))
                })
                .collect()
        };
        Sample {
            at: origin + Duration::from_millis(ms),
            observer: "10.0.1.2".to_owned(),
            live: replicas(old, OLD)
                .into_iter()
                .chain(replicas(new, NEW))
                .collect(),
        }
    }

    /// A start-first update of three replicas as the view shows it, one turn at a time.
    fn rolling(origin: Instant) -> Vec<Sample> {
        vec![
            sample(origin, 0, "a b c", ""),
            sample(origin, 250, "a b c", "d"),
            sample(origin, 500, "a:OUT_OF_SERVICE b c", "d"),
            sample(origin, 750, "b c", "d"),
            sample(origin, 1000, "b c", "d e"),
            sample(origin, 1250, "c", "d e"),
            sample(origin, 1500, "c", "d e f"),
            sample(origin, 1750, "", "d e f"),
        ]
    }

    #[test]
    fn a_rolling_update_seen_replica_by_replica_passes() {
        let origin = Instant::now();
        let progress = check(&rolling(origin), OLD, NEW, 3).unwrap();
        assert_eq!(progress.new_reached, [1, 4, 6]);
        assert_eq!(progress.old_left, [3, 5, 7]);
        assert_eq!(progress.first_mixed, 1);
    }

    #[test]
    fn a_lagging_observer_going_back_one_step_still_passes() {
        let origin = Instant::now();
        let mut samples = rolling(origin);
        // Another replica, one round behind, answers once in the middle.
        samples.insert(5, samples[3].clone());
        check(&samples, OLD, NEW, 3).unwrap();
    }

    #[test]
    fn replicas_switching_together_fail() {
        let origin = Instant::now();
        let mut samples = rolling(origin);
        // Two new replicas appear in one step.
        samples.drain(1..4);
        let error = check(&samples, OLD, NEW, 3).unwrap_err().to_string();
        assert!(error.contains("several at once"), "{error}");

        let all_at_once = vec![
            sample(origin, 0, "a b c", ""),
            sample(origin, 250, "", "d e f"),
        ];
        let error = check(&all_at_once, OLD, NEW, 3).unwrap_err().to_string();
        assert!(error.contains("both versions at once"), "{error}");
    }

    #[test]
    fn an_update_that_does_not_finish_or_shows_a_stranger_fails() {
        let origin = Instant::now();
        let mut samples = rolling(origin);
        samples.pop();
        samples.push(samples[5].clone());
        let error = check(&samples, OLD, NEW, 3).unwrap_err().to_string();
        assert!(error.contains("never showed at most 0"), "{error}");

        let mut samples = rolling(origin);
        samples[2]
            .live
            .insert("x".to_owned(), ("0.0.9".to_owned(), "UP".to_owned()));
        let error = check(&samples, OLD, NEW, 3).unwrap_err().to_string();
        assert!(error.contains("reports 0.0.9"), "{error}");

        let error = check(&[], OLD, NEW, 3).unwrap_err().to_string();
        assert!(error.contains("never read"), "{error}");
    }

    #[test]
    fn the_timeline_sample_says_who_runs_what() {
        let origin = Instant::now();
        let samples = rolling(origin);
        assert_eq!(samples[2].count(OLD), 3);
        assert_eq!(samples[2].count(NEW), 1);
        assert_eq!(samples[0].single_version(), Some(OLD));
        assert_eq!(samples[2].single_version(), None);
        assert_eq!(
            samples[2].describe(),
            "a 0.1.0 OUT_OF_SERVICE, b 0.1.0, c 0.1.0, d 0.1.0+lab-next"
        );
    }
}
