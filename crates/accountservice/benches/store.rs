//! Store benchmark: seeding time at scale, and the cost of a point read inline versus through
//! `spawn_blocking` (the numbers behind the choice documented in `routes/accounts.rs`).
//!
//! Run in release: `cargo bench -p accountservice --bench store [-- ACCOUNTS]` (default 1,000,000).

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use accountservice::{
    domain::AccountId,
    seed::{DEFAULT_CHUNK_SIZE, seed_fake_accounts},
    store::{AccountStore, RedbStore},
};

fn main() -> anyhow::Result<()> {
    let accounts: u64 = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .map(|arg| arg.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("accounts.db");
    let store = Arc::new(RedbStore::open(&path, Duration::ZERO)?);

    let started = Instant::now();
    let report = seed_fake_accounts(store.as_ref(), accounts, DEFAULT_CHUNK_SIZE)?;
    let seed_time = started.elapsed();
    let size = std::fs::metadata(&path)?.len();
    println!(
        "seed {accounts} accounts (fresh file): {seed_time:.2?}, {} inserted, file {:.1} MB",
        report.inserted,
        size as f64 / 1e6
    );
    let started = Instant::now();
    let again = seed_fake_accounts(store.as_ref(), accounts, DEFAULT_CHUNK_SIZE)?;
    println!(
        "seed {accounts} accounts again (all present): {:.2?}, {} existing",
        started.elapsed(),
        again.existing
    );

    let ids: Vec<AccountId> = random_indices(accounts, 200_000)
        .map(|index| AccountId::parse(&(10_000 + index).to_string()))
        .collect::<Result<_, _>>()?;

    // Reopen so redb's own cache starts empty (the OS page cache stays warm, as after a
    // restart), and time the first touch of each id.
    drop(store);
    let store = Arc::new(RedbStore::open(&path, Duration::ZERO)?);
    let started = Instant::now();
    for id in &ids {
        black_box(store.get(id)?);
    }
    let first_touch = started.elapsed() / ids.len() as u32;
    println!("point read after reopen (first touch, random ids): {first_touch:?} per read");
    let started = Instant::now();
    for id in &ids {
        black_box(store.get(id)?);
    }
    let inline = started.elapsed() / ids.len() as u32;
    println!("point read inline (warm, random ids): {inline:?} per read");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (async_inline, blocking) = runtime.block_on(async {
        let started = Instant::now();
        for id in &ids {
            black_box(store.get(id)?);
            tokio::task::yield_now().await;
        }
        let async_inline = started.elapsed() / ids.len() as u32;
        let started = Instant::now();
        for id in &ids {
            let store = store.clone();
            let id = id.clone();
            black_box(tokio::task::spawn_blocking(move || store.get(&id)).await??);
        }
        let blocking = started.elapsed() / ids.len() as u32;
        anyhow::Ok((async_inline, blocking))
    })?;
    println!("point read inline in a task (+ yield): {async_inline:?} per read");
    println!(
        "point read via spawn_blocking: {blocking:?} per read ({:.1}x inline)",
        blocking.as_secs_f64() / inline.as_secs_f64()
    );
    Ok(())
}

/// A reproducible xorshift stream of indices below `bound`.
fn random_indices(bound: u64, count: usize) -> impl Iterator<Item = u64> {
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    (0..count).map(move |_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound.max(1)
    })
}
