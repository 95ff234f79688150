//! What the fleet view keeps of one replica, and the statuses the view adds to the replicas' own.
//!
//! Plain data: the roster fills it in round after round, the slot rule marks it superseded, and
//! the renderer shows it.

use std::{mem::size_of, net::SocketAddr, time::SystemTime};

use super::history::PeerHistory;

/// The status of a replica that resolves but did not give a health answer this time.
pub const UNREACHABLE: &str = "UNREACHABLE";

/// The status of a replica that is no longer among the peers (gone from DNS or replaced).
pub const GONE: &str = "GONE";

/// The status of a replica that still answers but claims a slot another replica holds: both
/// report the same `slot`, and the other started later, so the orchestrator replaced this one
/// (e.g. a Swarm task cut off from its manager, back after its replacement started).
pub const SUPERSEDED: &str = "SUPERSEDED";

/// The status of a replica still among the peers but not asked this round: more were found
/// than are asked in one round, and it is past the cap. What it said before is shown as its
/// last status, never as its status.
pub const NOT_ASKED: &str = "NOT_ASKED";

/// Every status the view can show, best first: the replicas' own, then the view's.
pub const VIEW_STATUSES: [&str; 9] = [
    "UP",
    "UNKNOWN",
    "DEGRADED",
    "OUT_OF_SERVICE",
    "DOWN",
    SUPERSEDED,
    NOT_ASKED,
    UNREACHABLE,
    GONE,
];

/// What is known about one replica.
#[derive(Debug, Clone)]
pub struct Known {
    /// The address it is listed under.
    pub address: String,
    /// Where it was last reached; used to ask again when a lookup fails.
    pub connect: Option<SocketAddr>,
    /// Its own status while it answers, else [`UNREACHABLE`] or [`GONE`].
    pub status: &'static str,
    /// Why it has that status.
    pub reason: Option<String>,
    /// When `status` last changed: the replica's own `since` while it answers.
    pub since: String,
    /// When it last answered.
    pub last_seen: Option<SystemTime>,
    /// When it stopped answering or vanished; `None` while it answers.
    pub missing_since: Option<SystemTime>,
    /// Its last health answer.
    pub answer: Option<PeerHistory>,
    /// While another answering replica holds the slot this one claims.
    pub superseded: Option<Superseded>,
}

impl Known {
    /// The bytes kept for this replica: its own size and every string and answer it holds.
    pub fn weight(&self) -> usize {
        size_of::<Self>()
            + self.address.capacity()
            + self.reason.as_ref().map_or(0, String::capacity)
            + self.since.capacity()
            + self.answer.as_ref().map_or(0, PeerHistory::weight)
            + self.superseded.as_ref().map_or(0, |s| {
                s.by.capacity() + s.reason.capacity() + s.since.capacity()
            })
    }
}

/// Why a replica is [`SUPERSEDED`], and since when.
#[derive(Debug, Clone)]
pub struct Superseded {
    /// The address of the replica holding the slot (as listed: unique in the view, where
    /// instance names need not be).
    pub by: String,
    /// Which slot and why the other holds it.
    pub reason: String,
    /// When this view first found it superseded (by anyone, without a break).
    pub since: String,
}
