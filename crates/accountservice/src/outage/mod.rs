//! Is it me, or everyone? When a check of a dependency every replica shares fails (one whose
//! failure a restart cannot cure: a database server), this replica asks a few of its peers
//! whether they reach it, and acts on the answer.
//!
//! - Most peers that answer reach it: a fault of this replica's own (a cut link, a broken pool,
//!   a bad secret). The `outage` health component turns `DOWN` for readiness at once, so
//!   balancers stop sending requests here, and after `--local-fault-grace` for liveness too, so
//!   the orchestrator replaces the replica, possibly elsewhere.
//! - Most cannot, as many can as cannot, no peer answers, or there is none to ask: an outage of
//!   the dependency. Nothing restarts and readiness stays in rotation (fail open); lookups
//!   answer 503 at once with `Retry-After` and the reason ("shared outage: 3 of 3 replicas
//!   cannot reach the database"), which `/health`, `/health/history` and so the fleet view show.
//!
//! The question costs the same whatever the fleet's size: at most [`SAMPLE`] peers, chosen at
//! random (SWIM's indirect probes are the model), at most once per health interval, only while
//! such a check fails; each peer answers `GET /health/{component}` from its own cache. A peer's
//! "reaches" from a check that began before this replica's failing one is not counted: those
//! peers are asked once more when their next check is due, within the interval, and the verdict
//! waits for them. The verdict is cleared the moment the check works again.
//!
//! - `verdict`: answers to a verdict, and the words for it;
//! - `sample`: which peers to ask, never this replica;
//! - `ask`: one bounded question to one peer;
//! - `state`: [`Outage`], the verdicts as lookups, the registry and `/metrics` read them;
//! - `watch`: [`Watcher`], the background task; `series`: the verdicts in `/metrics`.

mod ask;
mod sample;
mod series;
mod state;
mod verdict;
mod watch;

pub use sample::{Me, SAMPLE};
pub use series::OutageSeries;
pub use state::{COMPONENT, Outage, Record};
pub use verdict::{Answer, PeerAnswer, Verdict};
pub use watch::{WatchOptions, Watcher};
