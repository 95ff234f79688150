//! The fleet: every replica's health, history and replacements, seen from any replica.
//!
//! With `--peers`, [`routes`] serves `GET /health/fleet` (JSON) and `GET /status` (an HTML page
//! that polls it). Peers are asked for their own `GET /health/history` only, so a view never
//! recurses, and only while someone looks: at most one round per health interval however many
//! viewers, on a task of its own, each peer under a timeout and a byte cap, at most
//! [`MAX_PEERS`] of them, their bodies together within [`ROUND_BYTES`]. What is kept is capped
//! at [`MAX_REPLICA_BYTES`] per replica and [`MAX_KEPT_BYTES`] in all (docs/failure-behaviour.md
//! states the whole bound).
//!
//! Modules, each using only those listed before it:
//! - `time`: the RFC 3339 timestamps the view writes;
//! - [`peers`]: parsing `--peers` and looking the replicas up;
//! - `history`: what a peer's answer must hold; `client`: one bounded request to one peer;
//! - `known`: what is kept of one replica and its weight in bytes, and the statuses the view
//!   adds ([`UNREACHABLE`], [`GONE`], [`SUPERSEDED`], [`NOT_ASKED`]);
//! - `slots`: the slot rule: of two answering replicas that report the same slot, the later
//!   started holds it and the other is [`SUPERSEDED`];
//! - `render`: the known replicas as the view shows them, transitions merged;
//! - `roster`: what is known of each replica round after round, including those that stopped
//!   answering, vanished or are past the cap (kept [`RETENTION`]) or were replaced at their
//!   address, within its [`Budget`] of bytes;
//! - `view`: [`Fleet`], the cached, single-flight rounds, each on its own task; `routes`: the
//!   HTTP surface.
//!
//! This module knows nothing of this replica's own health: a peer's state never changes it.

pub(crate) mod client;
mod history;
mod known;
pub mod peers;
mod render;
mod roster;
pub(crate) mod routes;
mod slots;
mod time;
mod view;

pub use client::HISTORY_PATH;
pub use known::{GONE, NOT_ASKED, SUPERSEDED, UNREACHABLE, VIEW_STATUSES};
pub use peers::Peers;
pub use roster::{Budget, MAX_KEPT_BYTES, MAX_KNOWN, MAX_REPLACED_PER_ADDRESS, MAX_REPLICA_BYTES};
pub use routes::routes;
pub use view::{Fleet, FleetOptions, MAX_BODY, MAX_PEERS, RETENTION, ROUND_BYTES};
