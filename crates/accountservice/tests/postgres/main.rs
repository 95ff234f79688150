//! The PostgreSQL backend against a real PostgreSQL server started by the tests (see
//! `support/postgres.rs`): lookups equal to the redb backend's, start-up with several replicas,
//! every fault the store must survive or refuse with a clear line, and the fleet's verdict on an
//! outage of the database (is it one replica's, or everyone's?). One shared server for the
//! tests that only need a database of their own; a server of their own for the tests that stop,
//! kill, fill or cut off from the network (that one needs root: `cargo xtask faults`).

#[path = "../support/mod.rs"]
mod support;

#[path = "../support/postgres.rs"]
mod pg;

mod app;
mod faults;
mod half_open;
mod lookups;
mod outage;
mod process;
mod tls;
