//! The PostgreSQL backend against a real PostgreSQL server started by the tests (see
//! `support/postgres.rs`): lookups equal to the redb backend's, start-up with several replicas,
//! and every fault the store must survive or refuse with a clear line. One shared server for the
//! tests that only need a database of their own; a server of their own for the tests that stop,
//! kill or fill it.

#[path = "../support/mod.rs"]
mod support;

#[path = "../support/postgres.rs"]
mod pg;

mod app;
mod faults;
mod lookups;
mod process;
