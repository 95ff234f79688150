//! Process-level tests: the real `healthchecker` binary against small servers of its own.

mod cli;
mod peers;
mod support;
