//! [`Fleet`]: the fleet view, asked of the peers only when someone looks, at most once per
//! interval however many look at once.
//!
//! A round runs on a task of its own: viewers wait for its result, and one that hangs up
//! cancels nothing. Its memory is bounded: the bodies read at once by [`ROUND_BYTES`], each
//! answer by [`MAX_BODY`] and then, parsed, by [`MAX_REPLICA_BYTES`]; what is kept across
//! rounds by the roster's [`Budget`].

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use axum::body::Bytes;
use serde::Serialize;
use tokio::{
    sync::{Semaphore, watch},
    task::JoinSet,
};

use super::client::{self, Limits};
use super::peers::Peers;
use super::render::{ReplicaView, TransitionView};
use super::roster::{Budget, MAX_KEPT_BYTES, MAX_REPLICA_BYTES, Roster};
use super::time::rfc3339;

/// How long a replica that stopped answering, vanished or is not asked stays listed.
pub const RETENTION: Duration = Duration::from_secs(10 * 60);

/// The most peers asked in one round; the view says when more were found.
pub const MAX_PEERS: usize = 256;

/// The most bytes read from one peer's answer (a full 256-transition history is well below).
pub const MAX_BODY: usize = 256 * 1024;

/// The most body bytes one round holds at once, all peers together; a peer past it waits.
pub const ROUND_BYTES: usize = 4 * 1024 * 1024;

/// How the fleet view is gathered.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Who the peers are.
    pub peers: Peers,
    /// The shortest time between two rounds of asking the peers (the health interval).
    pub interval: Duration,
    /// For one peer's whole exchange, and for looking up the peers (every name together).
    pub timeout: Duration,
    /// This replica's instance name, shown as who answered.
    pub instance: String,
    /// See [`RETENTION`].
    pub retention: Duration,
    /// See [`MAX_PEERS`].
    pub max_peers: usize,
    /// See [`MAX_BODY`].
    pub max_body: usize,
    /// See [`ROUND_BYTES`]; raised to `max_body` when below.
    pub round_bytes: usize,
    /// See [`MAX_REPLICA_BYTES`] and [`MAX_KEPT_BYTES`]; the total is raised to `max_peers + 1`
    /// times the per-replica bytes when below, so the replicas answering always fit.
    pub budget: Budget,
}

impl FleetOptions {
    /// Options with the default retention and caps.
    pub fn new(peers: Peers, interval: Duration, timeout: Duration, instance: String) -> Self {
        Self {
            peers,
            interval,
            timeout,
            instance,
            retention: RETENTION,
            max_peers: MAX_PEERS,
            max_body: MAX_BODY,
            round_bytes: ROUND_BYTES,
            budget: Budget {
                per_replica: MAX_REPLICA_BYTES,
                total: MAX_KEPT_BYTES,
            },
        }
    }

    /// The options with every bound raised to what the others need.
    fn consistent(mut self) -> Self {
        self.round_bytes = self.round_bytes.max(self.max_body);
        self.budget.total = self
            .budget
            .total
            .max((self.max_peers.saturating_add(1)).saturating_mul(self.budget.per_replica));
        self
    }
}

/// The fleet view of one replica. Asking the peers never touches this replica's own health.
pub struct Fleet {
    shared: Arc<Shared>,
}

/// What the viewers and the round's task share.
struct Shared {
    options: FleetOptions,
    /// The last rendered view.
    cached: RwLock<Option<Cached>>,
    /// The round under way, if any: viewers arriving meanwhile wait for its result instead of
    /// starting rounds of their own. Taken before `cached` when both are.
    running: Mutex<Option<watch::Receiver<Option<Bytes>>>>,
    roster: Mutex<Roster>,
    rounds: AtomicU64,
    /// The bytes the current round's bodies may hold at once.
    round_bytes: Arc<Semaphore>,
}

/// A rendered view and the round it came from.
struct Cached {
    /// When the round started: the view is fresh for an interval from then.
    started: Instant,
    /// When the round ended.
    ended: Instant,
    body: Bytes,
}

/// Every replica's health as one replica sees it, asked of the peers at most once per
/// `intervalSeconds`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(utoipa::ToSchema))]
pub(super) struct FleetView<'a> {
    /// The replica that answered.
    instance: &'a str,
    /// `--peers` as given.
    peers: String,
    /// When the peers were asked.
    checked_at: String,
    /// Seconds between rounds at most.
    interval_seconds: f64,
    /// Why the lookup failed, else null.
    lookup_error: Option<String>,
    /// Replicas found by the lookup.
    found: usize,
    /// Replicas asked (at most the cap).
    asked: usize,
    /// Whether more were found than asked.
    truncated: bool,
    /// How many replicas are in each status, every status listed (zero included): `UP`,
    /// `UNKNOWN`, `DEGRADED`, `OUT_OF_SERVICE`, `DOWN`, `SUPERSEDED`, `NOT_ASKED`, `UNREACHABLE`,
    /// `GONE`.
    counts: BTreeMap<&'static str, usize>,
    /// Every replica known, answering or not, including those gone for a while.
    replicas: Vec<ReplicaView>,
    /// The replicas' status changes merged, newest first.
    transitions: Vec<TransitionView>,
}

impl Fleet {
    /// A fleet view that has not asked anyone yet.
    pub fn new(options: FleetOptions) -> Self {
        let options = options.consistent();
        Self {
            shared: Arc::new(Shared {
                cached: RwLock::new(None),
                running: Mutex::new(None),
                roster: Mutex::new(Roster::new(options.budget)),
                rounds: AtomicU64::new(0),
                round_bytes: Arc::new(Semaphore::new(options.round_bytes)),
                options,
            }),
        }
    }

    /// The options this view was built with (bounds raised to fit each other).
    pub fn options(&self) -> &FleetOptions {
        &self.shared.options
    }

    /// Rounds of asking the peers so far (each is one lookup plus one request per peer).
    pub fn rounds(&self) -> u64 {
        self.shared.rounds.load(Ordering::Relaxed)
    }

    /// The bytes the view keeps across rounds: every replica known and the last rendered view.
    pub fn kept_bytes(&self) -> usize {
        let roster = self
            .shared
            .roster
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes();
        let cached = self
            .shared
            .cached
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |cached| cached.body.len());
        roster + cached
    }

    /// The view as JSON: the cached one if its round started less than an interval ago, else
    /// the result of a new round (shared with every viewer who asks meanwhile). The round runs
    /// on its own task: dropping this future leaves it running for the others.
    pub async fn view(&self) -> Bytes {
        if let Some(body) = self.shared.fresh(None) {
            return body;
        }
        let arrived = Instant::now();
        let mut receiver = {
            let mut running = self
                .shared
                .running
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match running.as_ref() {
                Some(receiver) => receiver.clone(),
                None => {
                    // A round that ended after this viewer arrived is as new as one it would
                    // start now. Taking it matters when a round outlasts the interval (peers
                    // timing out): viewers queued behind it share it instead of each asking
                    // the peers again, one after another.
                    if let Some(body) = self.shared.fresh(Some(arrived)) {
                        return body;
                    }
                    let (sender, receiver) = watch::channel(None);
                    *running = Some(receiver.clone());
                    tokio::spawn(self.shared.clone().round(sender));
                    receiver
                }
            }
        };
        match receiver.wait_for(Option::is_some).await {
            Ok(body) => body.clone().unwrap_or_default(),
            // The round's task ended without a view: it panicked (logged by the runtime).
            Err(_) => Bytes::from_static(br#"{"error":"the round of asking the peers failed"}"#),
        }
    }
}

/// Clears the running round when the round's task ends, however it ends.
struct Running(Arc<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        *self
            .0
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Shared {
    /// The cached view if its round started less than an interval ago, or ended after
    /// `arrived`.
    fn fresh(&self, arrived: Option<Instant>) -> Option<Bytes> {
        let cached = self.cached.read().unwrap_or_else(PoisonError::into_inner);
        cached
            .as_ref()
            .filter(|cached| {
                cached.started.elapsed() < self.options.interval
                    || arrived.is_some_and(|arrived| cached.ended >= arrived)
            })
            .map(|cached| cached.body.clone())
    }

    /// One round on its own task: asks the peers, caches the view, hands it to the viewers.
    async fn round(self: Arc<Self>, sender: watch::Sender<Option<Bytes>>) {
        let _running = Running(self.clone());
        let started = Instant::now();
        let body = self.ask_peers().await;
        *self.cached.write().unwrap_or_else(PoisonError::into_inner) = Some(Cached {
            started,
            ended: Instant::now(),
            body: body.clone(),
        });
        // Nobody may be waiting any more; the view is cached for the next one all the same.
        let _ = sender.send(Some(body));
    }

    /// One round: look the peers up, ask each concurrently, record, render.
    async fn ask_peers(&self) -> Bytes {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        let options = &self.options;
        let resolved = options.peers.resolve(options.timeout).await;
        let lookup_failed = resolved.error.is_some() && resolved.targets.is_empty();
        let mut targets = if lookup_failed {
            self.roster
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .fallback_targets()
        } else {
            resolved.targets
        };
        let mut listed: Vec<String> = targets.iter().map(|t| t.listed.clone()).collect();
        listed.sort();
        let found = targets.len();
        targets.truncate(options.max_peers);

        let limits = Limits {
            timeout: options.timeout,
            max_body: options.max_body,
            max_answer: options.budget.per_replica,
        };
        let mut asking = JoinSet::new();
        for (index, target) in targets.iter().enumerate() {
            let target = target.clone();
            let budget = self.round_bytes.clone();
            asking.spawn(async move {
                let outcome = match target.connect {
                    Some(address) => client::fetch(address, &target.listed, limits, budget).await,
                    None => Err("its name did not resolve".to_owned()),
                };
                (index, outcome)
            });
        }
        let mut outcomes: Vec<Option<Result<_, String>>> = Vec::new();
        outcomes.resize_with(targets.len(), || None);
        while let Some(joined) = asking.join_next().await {
            match joined {
                Ok((index, outcome)) => outcomes[index] = Some(outcome),
                Err(error) => tracing::error!(%error, "asking a peer failed"),
            }
        }
        let asked: Vec<_> = targets
            .into_iter()
            .zip(outcomes)
            .map(|(target, outcome)| {
                let outcome = outcome.unwrap_or_else(|| Err("asking it failed".to_owned()));
                (target, outcome)
            })
            .collect();
        let asked_count = asked.len();

        let gone_reason = match &options.peers {
            Peers::Dns(name) => format!("no longer in DNS ({name})"),
            Peers::List(_) => "no longer listed".to_owned(),
        };
        let now = SystemTime::now();
        let view = {
            let mut roster = self.roster.lock().unwrap_or_else(PoisonError::into_inner);
            roster.record(asked, &listed, &gone_reason, options.retention, now);
            roster.view()
        };
        let (replicas, transitions, counts) = view;
        if let Some(error) = &resolved.error {
            tracing::warn!(%error, "fleet view: peer lookup failed; showing the replicas known");
        }
        let view = FleetView {
            instance: &options.instance,
            peers: options.peers.to_string(),
            checked_at: rfc3339(now),
            interval_seconds: options.interval.as_secs_f64(),
            lookup_error: resolved.error,
            found,
            asked: asked_count,
            truncated: found > asked_count,
            counts,
            replicas,
            transitions,
        };
        match serde_json::to_vec(&view) {
            Ok(body) => Bytes::from(body),
            Err(error) => {
                // Only maps with non-string keys fail to serialize; the view has none.
                tracing::error!(%error, "cannot render the fleet view");
                Bytes::from_static(br#"{"error":"cannot render the fleet view"}"#)
            }
        }
    }
}
