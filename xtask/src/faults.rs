//! `cargo xtask faults`: the fault tests that need root, which `cargo test --workspace` lists as
//! ignored ("needs root") so that the README's test command passes for any developer.
//!
//! They mount a small tmpfs to fill a disk while seeding, check that a database file's mode
//! changes nothing for a service running as root, and drop a test PostgreSQL server's packets with
//! nftables to leave the pool a half-open connection. CI runs this task as root; run as anyone
//! else it fails at once with a clear message, and each test also fails (never passes) without
//! root.

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use xshell::{Shell, cmd};

use crate::docker::secs;

/// Runs the root-only fault tests of `crates/accountservice/tests/faults.rs` and of the
/// PostgreSQL tests (`tests/postgres/half_open.rs`).
pub fn run(sh: &Shell) -> Result<()> {
    let uid = cmd!(sh, "id -u")
        .quiet()
        .read()
        .context("cannot run `id -u`")?;
    ensure!(
        uid.trim() == "0",
        "cargo xtask faults needs root (uid 0, this is uid {}): its tests mount a tmpfs to fill a \
         disk, check what file modes do to a service running as root and drop packets with nftables; \
         run it as root, as CI does",
        uid.trim()
    );
    let started = Instant::now();
    cmd!(
        sh,
        "cargo test -p accountservice --test faults -- --ignored --test-threads 1"
    )
    .run()
    .context("the root-only fault tests failed")?;
    cmd!(
        sh,
        "cargo test -p accountservice --test postgres -- --ignored --test-threads 1"
    )
    .run()
    .context("the root-only PostgreSQL fault tests failed")?;
    println!(
        "faults: the root-only fault tests passed in {}",
        secs(started.elapsed())
    );
    Ok(())
}
