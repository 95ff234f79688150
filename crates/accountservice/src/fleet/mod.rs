//! The fleet: every replica's health, history and replacements, seen from any replica.
//!
//! With `--peers`, [`routes`] serves `GET /health/fleet` (JSON) and `GET /status` (an HTML page
//! that polls it). Peers are asked for their own `GET /health/history` only, so a view never
//! recurses, and only while someone looks: at most one round per health interval however many
//! viewers, each peer under a timeout and a byte cap, at most [`MAX_PEERS`] of them.
//!
//! - [`peers`]: parsing `--peers` and looking the replicas up;
//! - `client`: one bounded request to one peer; `history`: what its answer must hold;
//! - `roster`: what is known of each replica, including those that stopped answering or
//!   vanished (kept [`RETENTION`]), and the slot rule: of two answering replicas that report
//!   the same slot, the later started holds it and the other is [`SUPERSEDED`];
//! - `view`: [`Fleet`], the cached, single-flight rounds; `routes`: the HTTP surface;
//! - `time`: the RFC 3339 timestamps the view writes.
//!
//! This module knows nothing of this replica's own health: a peer's state never changes it.

mod client;
mod history;
pub mod peers;
mod roster;
pub(crate) mod routes;
mod time;
mod view;

pub use client::HISTORY_PATH;
pub use peers::Peers;
pub use roster::{GONE, SUPERSEDED, UNREACHABLE, VIEW_STATUSES};
pub use routes::routes;
pub use view::{Fleet, FleetOptions, MAX_BODY, MAX_PEERS, RETENTION};
