//! What the fleet view keeps of one replica, and the statuses the view adds to the replicas' own.
//!
//! Plain data: the roster fills it in round after round, the slot rule marks it superseded, and
//! the renderer shows it.

use std::{net::SocketAddr, time::SystemTime};

use super::history::PeerHistory;

/// The status of a replica that resolves but did not give a health answer this time.
pub const UNREACHABLE: &str = "UNREACHABLE";

/// The status of a replica that is no longer among the peers (gone from DNS or replaced).
pub const GONE: &str = "GONE";

/// The status of a replica that still answers but claims a slot another replica holds: both
/// report the same `slot`, and the other started later, so the orchestrator replaced this one
/// (e.g. a Swarm task cut off from its manager, back after its replacement started).
pub const SUPERSEDED: &str = "SUPERSEDED";

/// Every status the view can show, best first: the replicas' own, then the view's.
pub const VIEW_STATUSES: [&str; 8] = [
    "UP",
    "UNKNOWN",
    "DEGRADED",
    "OUT_OF_SERVICE",
    "DOWN",
    SUPERSEDED,
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
